#!/usr/bin/python
# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tpm_check
short_description: Check that this user can reach the TPM over a given TCTI
description:
  - Opens the TPM over the TCTI given in O(tcti) as the user the task runs as (so C(become_user) tests that
    user's groups), runs TPM2_GetRandom and TPM2_GetCapability, and reports a summary.
  - Failures are classified and explained, with what to do - missing device node (no driver), permission
    denied (owner/group/mode of the node and the missing group), device busy (the processes holding it,
    typically tpm2-abrmd on C(/dev/tpm0)), access broker not running (C(tabrmd)), unreachable emulator,
    self-test in progress (retried with backoff, then TPM2_SelfTest), dictionary-attack lockout, timeout.
  - Read-only unless O(flush_orphans) is set. Runs normally in check mode.
  - Bounded in time by O(timeout); a hung TPM or endpoint never hangs the play.
version_added: "0.1.0"
author: tpmfleet contributors (@tpmfleet)
options:
  tcti:
    description:
      - TCTI to open, in tpm2-tools syntax, for example C(device:/dev/tpmrm0), C(device:/dev/tpm0), C(tabrmd),
        C(tabrmd:bus_type=system), C(swtpm:host=127.0.0.1,port=2321).
      - Required - tpm2-tss's default search (tabrmd, then /dev/tpmrm0, then /dev/tpm0) would hide which path a
        consumer really uses.
    type: str
    required: true
  timeout:
    description: Upper bound in seconds for the whole check (open, retries, commands).
    type: float
    default: 30
  random_bytes:
    description: Number of random bytes to request with TPM2_GetRandom (1-32).
    type: int
    default: 16
  flush_orphans:
    description:
      - Before the check, flush the transient objects and loaded sessions found in the TPM, and report them in
        RV(flushed) (changed). In check mode they are only reported.
      - Only over a TCTI without a resource manager (C(device:/dev/tpm0), C(swtpm), C(mssim)), the path of quote
        mode C(direct). There only one process can open the TPM, so while this check holds it everything loaded
        was left by a process that has exited, and the TPM has only a few object slots (a full TPM fails with
        C(0x902)). Over C(/dev/tpmrm0) and C(tabrmd) the resource manager flushes a client's objects when it
        disconnects; the option is refused there.
      - Saved sessions and persistent objects are never touched.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - tpmfleet.tpm.tpm2
attributes:
  check_mode:
    support: full
    details: The check runs the same in check mode; O(flush_orphans) only reports what it would flush.
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: tpmfleet.tpm.tpm_facts
  - module: tpmfleet.tpm.tpm_quote
"""

EXAMPLES = r"""
- name: The keylime agent user can use the kernel resource manager
  tpmfleet.tpm.tpm_check:
    tcti: device:/dev/tpmrm0
  become: true
  become_user: keylime

- name: Direct access to /dev/tpm0 works (fails with the holder when tpm2-abrmd owns it)
  tpmfleet.tpm.tpm_check:
    tcti: device:/dev/tpm0
    timeout: 10
  become: true

- name: Check the lab's emulated TPM
  tpmfleet.tpm.tpm_check:
    tcti: swtpm:host=127.0.0.1,port=2321
  register: tpm
"""

RETURN = r"""
tcti:
  description: The TCTI that was checked.
  returned: always
  type: str
  sample: device:/dev/tpmrm0
user:
  description: User the check ran as.
  returned: always
  type: str
  sample: keylime
uid:
  description: Numeric uid the check ran as.
  returned: always
  type: int
groups:
  description: Groups (names) of the user the check ran as.
  returned: always
  type: list
  elements: str
  sample: [keylime, tss]
random_bytes:
  description: Number of random bytes the TPM returned.
  returned: success
  type: int
  sample: 16
retries:
  description: How many times a command was retried because the TPM was busy self-testing.
  returned: success
  type: int
properties:
  description: TPM summary (manufacturer, vendor strings, firmware, spec version, PCR banks, lockout state).
  returned: success
  type: dict
  sample:
    manufacturer: IBM
    vendor_strings: SW   TPM
    firmware_version: 8217.4131.22.13878
    spec_revision: "1.64"
    software_tpm: true
    pcr_banks: {sha256: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]}
    lockout: {counter: 0, max_tries: 3, in_lockout: false}
reason:
  description:
    - On failure, the failure class - one of C(tcti_invalid), C(tcti_unavailable), C(no_device), C(permission),
      C(busy), C(broker_unreachable), C(unreachable), C(timeout), C(selftest), C(lockout), C(not_started),
      C(failure_mode), C(io), C(tpm_error).
  returned: failure
  type: str
  sample: busy
holders:
  description: On C(busy), the processes holding the device (pid, comm, cmdline, user, unit).
  returned: failure
  type: list
  elements: dict
flushed:
  description: The handles O(flush_orphans) flushed (in check mode, would flush), as hex strings.
  returned: success
  type: list
  elements: str
  sample: ["0x80000000", "0x80000001"]
elapsed_ms:
  description: Wall time of the check in milliseconds.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tpmfleet.tpm.plugins.module_utils.host import Deadline, current_identity
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti import (
    TpmAccessError,
    call_with_retry,
    fail_access,
    parse_tcti,
    require_pytss,
    tpm_session,
)
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tpm import flush_orphans, no_resource_manager, read_summary


def main():
    module = AnsibleModule(
        argument_spec={
            "tcti": {"type": "str", "required": True},
            "timeout": {"type": "float", "default": 30},
            "random_bytes": {"type": "int", "default": 16},
            "flush_orphans": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    tcti = module.params["tcti"]
    deadline = Deadline(module.params["timeout"])
    identity = current_identity()
    result = {
        "changed": False,
        "tcti": tcti,
        "user": identity["user"],
        "uid": identity["uid"],
        "groups": identity["groups"],
    }

    def fail(err):
        fail_access(module, err, deadline, result)

    if not 1 <= module.params["random_bytes"] <= 32:
        module.fail_json(msg="random_bytes must be between 1 and 32", **result)
    if module.params["timeout"] <= 0:
        module.fail_json(msg="timeout must be a positive number of seconds", **result)
    try:
        name, conf = parse_tcti(tcti)
    except TpmAccessError as err:
        fail(err)
    if module.params["flush_orphans"] and not no_resource_manager(name, conf):
        module.fail_json(
            msg=f"flush_orphans applies to a TCTI without a resource manager (device:/dev/tpm0, swtpm, mssim); "
            f"over {tcti} the resource manager flushes what a client leaves when it disconnects. Nothing was "
            "flushed. Drop flush_orphans for this TCTI.",
            **result,
        )
    require_pytss(module, "to open the TPM", result)

    def work(ectx):
        rnd, retries = call_with_retry(ectx, lambda: ectx.get_random(module.params["random_bytes"]), deadline)
        flushed = flush_orphans(ectx, module.check_mode) if module.params["flush_orphans"] else ([], {})
        return len(bytes(rnd)), retries, flushed, read_summary(ectx)

    try:
        nbytes, retries, (flushed, unflushed), summary = tpm_session(
            tcti, work, deadline, f"TPM access over {tcti}", module=module, identity=identity
        )
    except TpmAccessError as err:
        fail(err)

    if nbytes < 1:
        fail(TpmAccessError("tpm_error", f"TPM2_GetRandom over {tcti} returned no bytes"))
    lockout = summary["lockout"]
    if lockout["in_lockout"]:
        module.warn(
            f"the TPM is in dictionary-attack lockout (failures {lockout['counter']}/{lockout['max_tries']}): "
            f"objects without noDA cannot be used until it recovers ({lockout['recovery_s']}s) or "
            "tpm2_dictionarylockout --clear-lockout is run with the lockout authorization"
        )
    if flushed:
        result["changed"] = True
        module.warn(
            f"flushed {len(flushed)} objects or sessions that exited processes left loaded in the TPM "
            f"({', '.join(flushed)}){' (check mode: would flush)' if module.check_mode else ''}"
        )
    if unflushed:
        module.warn(
            "could not flush "
            + ", ".join(f"{h} ({e})" for h, e in unflushed.items())
            + "; tpm2_flushcontext <handle> as a member of the TPM's group, with no consumer holding the device"
        )
    if summary["transient_objects"] and no_resource_manager(name, conf):
        module.warn(
            f"{summary['transient_objects']} transient objects are loaded in the TPM: a direct /dev/tpm0 user leaked "
            "them; the TPM has only a few slots (tpm2_flushcontext -t frees them)"
        )
    module.exit_json(
        random_bytes=nbytes,
        retries=retries,
        flushed=flushed,
        properties=summary,
        elapsed_ms=deadline.elapsed_ms(),
        **result,
    )


if __name__ == "__main__":
    main()
