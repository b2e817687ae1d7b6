# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Under which hierarchy tpm_quote creates its attestation key, and with which authorization.

Shared by the pytss and cli quote methods and by tpm_facts (the EK template).

The AK is created the way attestation agents such as keylime create theirs: under
the endorsement key (EK), derived from the TCG default EK template (EK Credential
Profile, L-1 RSA 2048 / L-2 ECC P256) in the endorsement hierarchy. That works
whether or not the owner hierarchy has a password (managed fleets often set one),
and the parent is the key of the TPM's EK certificate, so a verifier can bind the
AK to the TPM's identity (credential activation). The null hierarchy would need no
password either, but a key under it is bound to nothing: its seed changes at every
TPM reset and no certificate names it.

The hierarchy is chosen from TPM2_PT_PERMANENT (ownerAuthSet, endorsementAuthSet):
  - endorsement password empty: the endorsement hierarchy (EK parent);
  - endorsement password set and given (``endorsement_auth``): the endorsement hierarchy with it;
  - endorsement password set, not given, owner password empty: the owner hierarchy (an SRK-like
    primary, as tpmfleet did before) - the run still proves the path;
  - both set and none given: a clear failure that names the cause and the fix, before
    anything is presented to the TPM.
A hierarchy authorization (owner, endorsement, platform) is exempt from dictionary-attack
protection (TPM 2.0 Part 1 and the reference implementation's IsDAExempted: every permanent
handle but TPM_RH_LOCKOUT), so a wrong endorsement password cannot lock the TPM out; tpmfleet
still presents a given password only where it is needed, stops at the first refusal, and
never retries it (the role retries only a busy TPM). The password is never logged, returned
or put on a command line (the cli method passes it in a 0600 file of a 0700 directory).
"""

from __future__ import annotations

import contextlib
import hashlib
import re

from ansible_collections.tpmfleet.tpm.plugins.module_utils.quote_verify import parse_public, spki_der
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti import HAS_PYTSS, TpmAccessError

if HAS_PYTSS:
    from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_SE, TPMA_OBJECT
    from tpm2_pytss.types import TPM2B_DIGEST, TPM2B_NONCE, TPM2B_PUBLIC, TPMT_SYM_DEF

ENDORSEMENT = "endorsement"
OWNER = "owner"

# TCG EK Credential Profile, default EK templates L-1 (RSA 2048) and L-2 (ECC P256):
# fixedTPM|fixedParent|sensitiveDataOrigin|adminWithPolicy|restricted|decrypt, policy A (PolicySecret(endorsement)).
EK_ATTRIBUTES = 0x000300B2
EK_POLICY_A = bytes.fromhex("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa")
EK_TEMPLATES = {"rsa2048": "rsa2048:aes128cfb", "ecc_p256": "ecc256:aes128cfb"}
# The EK that is the parent of an AK of each key_algorithm (tpm2_createek -G of the same name).
EK_FOR_AK = {"ecc": "ecc_p256", "rsa": "rsa2048"}

PT_PERMANENT = 0x200
OWNER_AUTH_SET = 1 << 0
ENDORSEMENT_AUTH_SET = 1 << 1
LOCKOUT_AUTH_SET = 1 << 2

# TPM2B_AUTH of a hierarchy: at most the size of the TPM's largest digest (SHA-512: 64 bytes).
MAX_AUTH_BYTES = 64
AUTH_OPTION = "endorsement_auth (role variable tpm_verify_endorsement_auth)"
CLEAR_ENDORSEMENT = "tpm2_changeauth -c endorsement -p <current password>"
CLEAR_OWNER = "tpm2_changeauth -c owner -p <current password>"


def ek_template(algorithm):
    """TPM2B_PUBLIC of the TCG default EK template (L-1 RSA 2048 or L-2 ECC P256)."""
    tmpl = TPM2B_PUBLIC.parse(EK_TEMPLATES[algorithm], objectAttributes=TPMA_OBJECT(EK_ATTRIBUTES))
    tmpl.publicArea.authPolicy = EK_POLICY_A
    if algorithm == "rsa2048":
        tmpl.publicArea.parameters.rsaDetail.exponent = 0
        tmpl.publicArea.unique.rsa = b"\0" * 256
    else:
        tmpl.publicArea.unique.ecc.x = b"\0" * 32
        tmpl.publicArea.unique.ecc.y = b"\0" * 32
    return tmpl


def auth_flags(permanent):
    """{owner, endorsement, lockout}: whether each hierarchy has a password, from TPM2_PT_PERMANENT."""
    return {
        "owner": bool(permanent & OWNER_AUTH_SET),
        "endorsement": bool(permanent & ENDORSEMENT_AUTH_SET),
        "lockout": bool(permanent & LOCKOUT_AUTH_SET),
    }


_GETCAP_FLAG = re.compile(r"^\s*(ownerAuthSet|endorsementAuthSet|lockoutAuthSet):\s*([01])\s*$", re.MULTILINE)
_GETCAP_NAMES = {"ownerAuthSet": "owner", "endorsementAuthSet": "endorsement", "lockoutAuthSet": "lockout"}


def auth_flags_from_getcap(text):
    """The same flags from ``tpm2_getcap properties-variable`` (its TPM2_PT_PERMANENT block)."""
    found = {_GETCAP_NAMES[m.group(1)]: m.group(2) == "1" for m in _GETCAP_FLAG.finditer(text)}
    if set(found) != set(_GETCAP_NAMES.values()):
        raise TpmAccessError(
            "cli",
            "tpm2_getcap properties-variable did not show TPM2_PT_PERMANENT (ownerAuthSet, endorsementAuthSet, "
            "lockoutAuthSet): update tpm2-tools or use method=pytss",
        )
    return found


def auth_value_error(value):
    """Why ``value`` cannot be a hierarchy password ('' when it can). Never quotes the value."""
    if value is None or value == "":
        return ""
    if "\0" in value:
        return f"{AUTH_OPTION} contains a NUL character; give the password as set with tpm2_changeauth"
    size = len(value.encode("utf-8"))
    if size > MAX_AUTH_BYTES:
        return (
            f"{AUTH_OPTION} is {size} bytes long; a TPM hierarchy password has at most {MAX_AUTH_BYTES} bytes: "
            "give the password as set with tpm2_changeauth"
        )
    return ""


def choose_hierarchy(flags, endorsement_auth):
    """``(hierarchy, use_password)`` for a new AK, or TpmAccessError('auth') naming the cause and the fix.

    Decided before anything is presented to the TPM."""
    if not flags["endorsement"]:
        return ENDORSEMENT, False
    if endorsement_auth:
        return ENDORSEMENT, True
    if not flags["owner"]:
        return OWNER, False
    raise TpmAccessError(
        "auth",
        "the TPM's endorsement and owner hierarchies both have a password (TPM2_PT_PERMANENT endorsementAuthSet "
        "and ownerAuthSet), so no attestation key can be created without one; nothing was presented to the TPM. "
        f"Give the endorsement password in {AUTH_OPTION}, kept in Ansible Vault (no_log: it is never logged or "
        f"returned), or clear it on the host with {CLEAR_ENDORSEMENT}",
        auth_set=flags,
    )


def persist_error(flags, handle):
    """TpmAccessError when a new AK cannot be persisted at ``handle`` because the owner has a password."""
    if not flags["owner"]:
        return None
    return TpmAccessError(
        "auth",
        f"persisting the AK at persistent_handle 0x{handle:08x} needs the owner authorization "
        "(TPM2_EvictControl), and the owner hierarchy has a password (TPM2_PT_PERMANENT ownerAuthSet); tpmfleet "
        "does not take the owner password and created nothing. Omit persistent_handle (a transient AK under "
        "the endorsement key proves the path without it), or clear the owner password on the host with "
        f"{CLEAR_OWNER}",
        auth_set=flags,
    )


def auth_refused(hierarchy, used_password):
    """TpmAccessError for TPM_RC_BAD_AUTH/AUTH_FAIL on the hierarchy: what was presented (never the value)."""
    if used_password:
        what = (
            f"the TPM refused the endorsement password given in {AUTH_OPTION}. It was presented once and is not "
            "retried; a hierarchy password is exempt from dictionary-attack lockout, so nothing is locked. Put the "
            f"current endorsement password in the variable (Ansible Vault), or clear it with {CLEAR_ENDORSEMENT}"
        )
    else:
        clear = CLEAR_ENDORSEMENT if hierarchy == ENDORSEMENT else CLEAR_OWNER
        what = (
            f"the {hierarchy} hierarchy refused the empty password although TPM2_PT_PERMANENT said it had none "
            f"(it was set while this task ran?): run the task again, or clear it with {clear}"
        )
    return TpmAccessError("auth", f"creating the attestation key under the {hierarchy} hierarchy failed: {what}")


def hierarchy_notes(flags, hierarchy, endorsement_auth):
    """Warnings about the choice (shared by both methods); never contain the password."""
    notes = []
    if endorsement_auth and not flags["endorsement"]:
        notes.append(
            "endorsement_auth is set but the TPM's endorsement hierarchy has no password: it was not presented"
        )
    if hierarchy != ENDORSEMENT:
        notes.append(
            "the endorsement hierarchy has a password (endorsementAuthSet) and none was given: the test AK was "
            "created under the owner hierarchy instead. Consumers that create their AK under the EK (keylime) need "
            "that password; give it to tpm_verify in tpm_verify_endorsement_auth (Ansible Vault) to test their path"
        )
    return notes


def plan_new_ak(flags, endorsement_auth, persistent_handle):
    """What both methods decide, from the TPM's auth flags, before a new AK is created:
    ``(hierarchy, use_password, notes)``; raises TpmAccessError('auth') when no hierarchy can be used or the AK
    could not be persisted at ``persistent_handle``. Nothing is presented to the TPM."""
    hierarchy, use_password = choose_hierarchy(flags, endorsement_auth)
    notes = hierarchy_notes(flags, hierarchy, endorsement_auth)
    if persistent_handle:
        error = persist_error(flags, persistent_handle)
        if error:
            raise error
    return hierarchy, use_password, notes


def parent_result(hierarchy, parent_bytes):
    """How the AK was made: its hierarchy and the SHA-256 of its parent's SubjectPublicKeyInfo (under the
    endorsement hierarchy the EK's, which tpm_facts reports as ek.public_key_sha256)."""
    if hierarchy is None:
        return {"hierarchy": None, "parent": None, "parent_public_key_sha256": None}
    return {
        "hierarchy": hierarchy,
        "parent": "ek" if hierarchy == ENDORSEMENT else "srk",
        "parent_public_key_sha256": hashlib.sha256(spki_der(parse_public(parent_bytes))).hexdigest(),
    }


# --------------------------------------------------------------------------
# pytss: the EK's policy (PolicySecret(TPM_RH_ENDORSEMENT)), as tpm2_createak does
# --------------------------------------------------------------------------


def ek_policy_session(ectx):
    """A policy session satisfying the EK's authPolicy; the caller flushes it."""
    session = ectx.start_auth_session(
        tpm_key=ESYS_TR.NONE,
        bind=ESYS_TR.NONE,
        nonce_caller=None,
        session_type=TPM2_SE.POLICY,
        symmetric=TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL),
        auth_hash=TPM2_ALG.SHA256,
    )
    try:
        ectx.policy_secret(ESYS_TR.ENDORSEMENT, session, TPM2B_NONCE(), TPM2B_DIGEST(), TPM2B_NONCE(), 0)
    except Exception:
        flush_quietly(ectx, session)
        raise
    return session


def flush_quietly(ectx, handle):
    if handle is None:
        return
    with contextlib.suppress(Exception):  # best effort; the original error is more useful (a used session may be gone)
        ectx.flush_context(handle)
