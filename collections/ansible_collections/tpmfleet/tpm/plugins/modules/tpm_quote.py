#!/usr/bin/python
# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tpm_quote
short_description: Produce TPM quotes over controller nonces, verified on the controller
description:
  - Creates (or reuses) an attestation key (AK) - a restricted signing key - and makes O(count) TPM2_Quote over the
    PCR selection O(pcrs), one per nonce.
  - The AK is created as attestation agents such as keylime create theirs, under the endorsement key (EK) derived
    from the TCG default EK template in the endorsement hierarchy, so an owner password (common on managed fleets)
    does not matter and the AK's parent is the key of the TPM's EK certificate (RV(ak.parent_public_key_sha256)).
    Which hierarchies have a password is read from the TPM (TPM2_PT_PERMANENT). When the endorsement hierarchy has
    one, O(endorsement_auth) is presented (once; a wrong one fails the task and is not retried - hierarchy
    passwords are exempt from dictionary-attack lockout); without it the AK is created under a storage primary of
    the owner hierarchy if that has no password (with a warning), and otherwise the task fails naming the cause
    and the fix, without presenting anything to the TPM.
  - Must run through the tpmfleet C(tpm_quote) action plugin (automatic when C(action_plugins) points at
    plugins/action). The action plugin makes a fresh random nonce per quote on the controller, then verifies each
    quote there with C(cryptography) (signature with the returned AK key, TPMS_ATTEST magic and type, nonce,
    PCR selection, PCR digest recomputed from the returned values) and fails the task if any check fails.
  - With O(persistent_handle) the AK is persisted there once and reused afterwards (changed only when it had to
    be created). Transient objects are always flushed, even on errors.
  - O(method=cli) does the same with the tpm2-tools CLI (tpm2_createek, tpm2_startauthsession and
    tpm2_policysecret for the EK's policy, tpm2_create, tpm2_load, tpm2_quote), like an agent in direct quote mode;
    results have the same format.
version_added: "0.1.0"
author: tpmfleet contributors (@tpmfleet)
options:
  tcti:
    description: TCTI to use, e.g. C(device:/dev/tpmrm0), C(tabrmd), C(swtpm:host=127.0.0.1,port=2321).
    type: str
    required: true
  count:
    description: Number of consecutive quotes, each over its own nonce.
    type: int
    default: 2
  pcrs:
    description: PCR selection in tpm2-tools syntax (C(sha256:0,1,2+sha1:0), C(sha256:all) and ranges C(0-7)).
    type: str
    default: sha256:0,1,2,3,4,5,6,7
  key_algorithm:
    description: AK algorithm - ECC NIST P-256 with ECDSA/SHA-256, or RSA-2048 with RSASSA-PKCS1v1.5/SHA-256.
    type: str
    choices: [ecc, rsa]
    default: ecc
  persistent_handle:
    description:
      - Persistent handle at which to keep the AK, in the owner range C(0x81020000-0x817FFFFF), e.g.
        C(0x81020001). Refused before the TPM is touched - the storage root key range C(0x81000000-0x8100FFFF),
        the endorsement key range C(0x81010000-0x8101FFFF) (the RSA EK is C(0x81010001), the ECC EK
        C(0x81010002)) and the platform range C(0x81800000-0x81FFFFFF) (TCG registry of reserved handles).
      - A tpmfleet AK of O(key_algorithm) already there is reused; an empty handle gets a new AK persisted (not
        in check mode). Any other object at the handle fails the task, naming what it is and a free handle -
        tpmfleet never uses, replaces or evicts an object it did not create.
      - Persisting a new AK needs the owner authorization (TPM2_EvictControl); when the owner hierarchy has a
        password the task fails before creating anything (tpmfleet does not take the owner password). Reusing an
        AK already persisted there needs no password.
      - When omitted a transient AK is created and flushed on every run.
    type: str
  endorsement_auth:
    description:
      - The password of the TPM's endorsement hierarchy, presented only when the TPM says it has one
        (endorsementAuthSet). Keep it in Ansible Vault; it is never logged, returned or put on a command line
        (O(method=cli) passes it to tpm2-tools in a 0600 file that is removed afterwards).
      - The text as set with C(tpm2_changeauth -c endorsement TEXT), at most 64 bytes in UTF-8.
    type: str
  method:
    description: C(pytss) quotes in-process through tpm2-pytss (fast); C(cli) through the tpm2-tools binaries.
    type: str
    choices: [pytss, cli]
    default: pytss
  timeout:
    description: Upper bound in seconds for the whole module.
    type: float
    default: 30
  nonces:
    description:
      - Set by the action plugin (hex strings, one per quote). Do not set it yourself; the module refuses to run
        without it.
    type: list
    elements: str
requirements:
  - cryptography on the managed host (python3-tpm2-pytss pulls it in on Debian/Ubuntu)
  - tpm2-tools for O(method=cli)
  - cryptography on the controller (verification)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - tpmfleet.tpm.tpm2
attributes:
  check_mode:
    support: full
    details: Quotes are made and verified, but no AK is persisted (reported as changed when one would be).
  diff_mode:
    support: full
    details: Shows the AK that would be persisted.
  platform:
    platforms: posix
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
seealso:
  - module: tpmfleet.tpm.tpm_check
  - module: tpmfleet.tpm.tpm_facts
"""

EXAMPLES = r"""
- name: Two quotes with a transient ECC AK, verified on the controller
  tpmfleet.tpm.tpm_quote:
    tcti: device:/dev/tpmrm0
  become: true
  register: quote

- name: Persisted RSA AK, quotes via the tpm2-tools CLI like a direct-mode agent
  tpmfleet.tpm.tpm_quote:
    tcti: device:/dev/tpm0
    method: cli
    key_algorithm: rsa
    persistent_handle: "0x81020001"
    pcrs: sha256:0-7+sha1:0,7
    count: 3
  become: true

- name: Timings of the quote
  ansible.builtin.debug:
    var: quote.timings_ms
"""

RETURN = r"""
tcti:
  description: The TCTI used.
  returned: always
  type: str
method:
  description: C(pytss) or C(cli).
  returned: always
  type: str
pcr_selection:
  description: The normalised PCR selection that was quoted.
  returned: success
  type: str
  sample: sha256:0,1,2,3,4,5,6,7
ak:
  description: The attestation key.
  returned: success
  type: dict
  contains:
    algorithm: {description: C(ecc) or C(rsa), type: str}
    key: {description: 'Key type and size, C(ecc_p256) or C(rsa2048).', type: str}
    public_pem: {description: SubjectPublicKeyInfo PEM of the AK, type: str}
    public: {description: Base64 of the marshalled TPM2B_PUBLIC, type: str}
    name: {description: TPM name of the AK (hex), type: str}
    handle: {description: Persistent handle or null, type: str}
    persisted: {description: Whether the AK lives at the persistent handle, type: bool}
    reused: {description: Whether an already persisted AK was used, type: bool}
    hierarchy: {description: 'C(endorsement) or C(owner): where a new AK was created (null when reused).', type: str}
    parent:
      description: C(ek) (TCG default EK template) or C(srk) (owner storage primary); null when reused.
      type: str
    parent_public_key_sha256:
      description: >-
        SHA-256 of the parent's SubjectPublicKeyInfo (under the EK, the same as tpm_facts' ek.public_key_sha256);
        null when reused.
      type: str
quotes:
  description: One entry per nonce.
  returned: success
  type: list
  elements: dict
  contains:
    nonce: {description: The nonce (hex) - the quote's extraData, type: str}
    message: {description: Base64 of the TPMS_ATTEST (what tpm2_quote -m writes), type: str}
    signature: {description: 'Base64 signature in a standard encoding - DER ECDSA-Sig-Value, or raw RSA.', type: str}
    signature_format: {description: 'One of C(ecdsa-der), C(rsassa-pkcs1v15) or C(rsapss).', type: str}
    signature_tpmt: {description: Base64 of the marshalled TPMT_SIGNATURE (tpm2_checkquote -s), type: str}
    pcrs: {description: "PCR values, C({bank: {index: hex}})", type: dict}
    quote_ms: {description: Time for this quote including its PCR read, type: float}
timings_ms:
  description: Per-step wall times in milliseconds - open, key (load or create), quote (all quotes), total.
  returned: success
  type: dict
  sample: {open: 1.2, key: 9.8, quote: 5.1, total: 17.0}
verified:
  description: Added by the action plugin - true when every quote passed verification on the controller.
  returned: success
  type: bool
verification:
  description: Added by the action plugin - per-quote verification details (nonce, pcr_digest, clock, ...).
  returned: success
  type: list
  elements: dict
reason:
  description:
    - On failure, the failure class (see tpm_check), C(auth) (a hierarchy password is needed or was refused; the
      message names which and what to do), or C(persistent_handle) (a reserved handle, or an object at
      the handle that is not a tpmfleet AK), C(pcr_bank), C(cli), C(verification).
  returned: failure
  type: str
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tpmfleet.tpm.plugins.module_utils.ak_parent import auth_value_error
from ansible_collections.tpmfleet.tpm.plugins.module_utils.handles import ak_handle_error, parse_handle
from ansible_collections.tpmfleet.tpm.plugins.module_utils.host import Deadline, bounded_runner, current_identity
from ansible_collections.tpmfleet.tpm.plugins.module_utils.quote_cli import TOOLS, cli_quote
from ansible_collections.tpmfleet.tpm.plugins.module_utils.quote_verify import format_pcr_selection, parse_pcr_selection
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti import (
    TpmAccessError,
    TSS2_Exception,
    classify_exception,
    fail_access,
    parse_tcti,
    probe,
    require_pytss,
    tpm_session,
)
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tpm import quote_session

USE_ACTION_PLUGIN = (
    "tpm_quote needs nonces generated by the controller: run it as a `tpm_quote` task with the tpmfleet "
    "action plugin enabled (ansible.cfg: action_plugins = plugins/action), which makes the nonces and verifies "
    "the quotes; do not call the module directly or set 'nonces' yourself"
)
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2}){1,64}$")


def main():
    module = AnsibleModule(
        argument_spec={
            "tcti": {"type": "str", "required": True},
            "count": {"type": "int", "default": 2},
            "pcrs": {"type": "str", "default": "sha256:0,1,2,3,4,5,6,7"},
            "key_algorithm": {"type": "str", "choices": ["ecc", "rsa"], "default": "ecc"},
            "persistent_handle": {"type": "str"},
            "method": {"type": "str", "choices": ["pytss", "cli"], "default": "pytss"},
            "endorsement_auth": {"type": "str", "no_log": True},
            "timeout": {"type": "float", "default": 30},
            "nonces": {"type": "list", "elements": "str"},
        },
        supports_check_mode=True,
    )
    p = module.params
    tcti, method = p["tcti"], p["method"]
    deadline = Deadline(p["timeout"])
    result = {"changed": False, "tcti": tcti, "method": method}

    def fail(err):
        fail_access(module, err, deadline, result)

    nonces = p["nonces"]
    if not nonces:
        module.fail_json(msg=USE_ACTION_PLUGIN, reason="no_nonces", **result)
    bad = [n for n in nonces if not _HEX.match(n or "")]
    if bad:
        module.fail_json(msg=f"nonces must be hex strings of 1-64 bytes; got {bad[0]!r}. {USE_ACTION_PLUGIN}", **result)
    if p["count"] != len(nonces):
        module.fail_json(
            msg=f"count is {p['count']} but {len(nonces)} nonces were given. {USE_ACTION_PLUGIN}", **result
        )
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be a positive number of seconds", **result)
    endorsement_auth = p["endorsement_auth"] or None
    error = auth_value_error(endorsement_auth)
    if error:
        module.fail_json(msg=error, reason="endorsement_auth", **result)
    try:
        selection = parse_pcr_selection(p["pcrs"])
    except ValueError as exc:
        module.fail_json(msg=str(exc), **result)
    handle = None
    if p["persistent_handle"] not in (None, ""):
        # Reserved ranges are refused before the TPM is touched.
        error = ak_handle_error(p["persistent_handle"])
        if error:
            module.fail_json(msg=f"persistent_handle {error}", reason="persistent_handle", **result)
        handle = parse_handle(p["persistent_handle"])
    try:
        name, conf = parse_tcti(tcti)
    except TpmAccessError as err:
        fail(err)
    result["pcr_selection"] = format_pcr_selection(selection)

    timings = {}
    notes = []
    identity = current_identity()
    try:
        if method == "cli":
            probe(name, conf, deadline.remaining(), module=module, identity=identity)
            tools = {t: module.get_bin_path(t) for t in TOOLS}
            missing = sorted(t for t, path in tools.items() if not path)
            if missing:
                module.fail_json(
                    msg=f"method=cli needs tpm2-tools ({', '.join(missing)} not found in PATH): install the tpm2-tools "
                    "package or use method=pytss",
                    reason="missing_tools",
                    **result,
                )
            info, quotes, changed = cli_quote(
                bounded_runner(module, deadline), tools, tcti, selection, nonces, p["key_algorithm"], handle,
                module.check_mode, timings, endorsement_auth, notes,
            )  # fmt: skip
        else:
            require_pytss(module, "to quote with method=pytss", result)

            def work(ectx):
                return quote_session(
                    ectx, selection, nonces, p["key_algorithm"], handle, module.check_mode, timings, endorsement_auth,
                    notes,
                )  # fmt: skip

            info, quotes, changed = tpm_session(
                tcti,
                work,
                deadline,
                f"quoting over {tcti}",
                module=module,
                identity=identity,
                timings=timings,
            )
    except TpmAccessError as err:
        fail(err)
    except (TSS2_Exception, OSError) as exc:
        fail(classify_exception(exc, name, conf, what=f"quoting over {tcti}", module=module, identity=identity))

    for note in notes:
        module.warn(note)
    timings["total"] = deadline.elapsed_ms()
    result.update(changed=changed, ak=info, quotes=quotes, timings_ms=timings)
    if changed and module._diff:
        result["diff"] = {
            "before": f"persistent handle 0x{handle:08x}: empty\n",
            "after": f"persistent handle 0x{handle:08x}: {info['key']} AK, name {info['name']}\n",
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
