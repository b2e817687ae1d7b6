#!/usr/bin/python
# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tpm_attest_evidence
short_description: Gather what a remote-attestation verifier will check - EK certificates, event log, IMA
description:
  - Read-only evidence for attestation readiness, gathered in one run and judged on the controller by the
    fleet report (see C(docs/attestation.md)); the module itself judges nothing.
  - Reads the EK certificates from NV (TCG EK Credential Profile low range - RSA C(0x01c00002), ECC
    C(0x01c0000a)) as DER and PEM, and the EK public key of each certificate's algorithm - persisted at its TCG
    handle (C(0x81010001), C(0x81010002)), else derived with the TCG default EK template (transient, flushed).
  - Reports the active PCR banks.
  - Replays the measured-boot event log with C(tpm2_eventlog) from tpm2-tools and returns its YAML output; the
    controller compares the replayed PCRs with the PCR digest of a controller-verified quote.
  - Reads the IMA measurement list - entry count, first entry (the boot aggregate), the PCR 10 value it replays
    to per bank, and whether an IMA policy is loaded.
version_added: "0.2.0"
author: tpmfleet contributors (@tpmfleet)
options:
  tcti:
    description: TCTI to open, e.g. C(device:/dev/tpmrm0) or C(swtpm:host=127.0.0.1,port=2321).
    type: str
    default: device:/dev/tpmrm0
  timeout:
    description: Upper bound in seconds for the whole module (TPM access and C(tpm2_eventlog)).
    type: float
    default: 30
  ek_derive:
    description:
      - When no EK is persisted at the TCG handle of a certificate's algorithm, derive it with the TCG default
        template (transient, flushed at once) so the controller can compare it with the certificate's key.
      - An RSA primary key can take seconds on a hardware TPM. Needs an empty endorsement auth.
    type: bool
    default: true
  event_log_path:
    description: The binary measured-boot event log.
    type: path
    default: /sys/kernel/security/tpm0/binary_bios_measurements
  ima_dir:
    description: The IMA securityfs directory (C(ascii_runtime_measurements) and C(policy)).
    type: path
    default: /sys/kernel/security/ima
  include_event_log:
    description: Also return the binary event log (base64), for export to a verifier.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - tpmfleet.tpm.tpm2
attributes:
  check_mode:
    support: full
    details: Read-only; gathers the same evidence in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The event log and the IMA list are readable by root only; use become.
  - Without C(tpm2_eventlog) (package tpm2-tools) the event log is reported with C(reason=no_tool).
seealso:
  - module: tpmfleet.tpm.tpm_quote
  - module: tpmfleet.tpm.tpm_facts
"""

EXAMPLES = r"""
- name: Gather attestation evidence over the kernel resource manager
  tpmfleet.tpm.tpm_attest_evidence:
    tcti: device:/dev/tpmrm0
  become: true
  register: evidence

- name: Quote the PCRs the evidence is judged against (PCR 10 for IMA)
  tpmfleet.tpm.tpm_quote:
    tcti: device:/dev/tpmrm0
    pcrs: sha256:0,1,2,3,4,5,6,7,10
    count: 1
  become: true
  register: quote
"""

RETURN = r"""
evidence:
  description: The evidence; every part says why it is missing instead of failing the module.
  returned: success
  type: dict
  contains:
    tpm:
      description:
        - C(ek_certificates) - per index (index, algorithm, present, readable, size, der_b64, pem, or
          unreadable_reason / der_error).
        - C(ek_public) - per algorithm (source persistent or derived, handle, key, public_b64 (TPMT_PUBLIC), pem,
          public_key_sha256) or an error.
        - C(pcr_banks) - bank name to the allocated PCR indices.
      type: dict
    event_log:
      description: path, present, size, sha256, tool, yaml (the output of C(tpm2_eventlog)), log_b64 when asked,
        or reason and msg.
      type: dict
    ima:
      description: path, present, entries, first_entry, boot_aggregate_only, replayed_pcr10 (bank to hex; sha1
        from the listed template hashes, other banks computed for C(ima-ng) and C(ima-sig) entries),
        unsupported_templates, policy (readable, rules, measure_rules), policy_loaded, policy_basis, or reason and msg.
      type: dict
    errors:
      description: What could not be gathered (step, reason, msg).
      type: list
      elements: dict
    elapsed_ms:
      description: Time spent gathering.
      type: float
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tpmfleet.tpm.plugins.module_utils.attest_evidence import event_log, ima_state, read_tpm
from ansible_collections.tpmfleet.tpm.plugins.module_utils.host import Deadline, bounded_runner
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti import (
    HAS_PYTSS,
    TpmAccessError,
    parse_tcti,
    pytss_missing_msg,
    tpm_session,
)


def main():
    module = AnsibleModule(
        argument_spec={
            "tcti": {"type": "str", "default": "device:/dev/tpmrm0"},
            "timeout": {"type": "float", "default": 30},
            "ek_derive": {"type": "bool", "default": True},
            "event_log_path": {"type": "path", "default": "/sys/kernel/security/tpm0/binary_bios_measurements"},
            "ima_dir": {"type": "path", "default": "/sys/kernel/security/ima"},
            "include_event_log": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["timeout"] <= 0:
        module.fail_json(msg=f"timeout must be a positive number of seconds, got {params['timeout']}")
    tcti = params["tcti"]
    try:
        parse_tcti(tcti)
    except TpmAccessError as err:
        module.fail_json(msg=err.msg, reason=err.kind)
    deadline = Deadline(params["timeout"])
    errors = []
    evidence = {"tcti": tcti, "errors": errors, "tpm": None}
    if not HAS_PYTSS:
        errors.append({"step": "tpm", "reason": "missing_library", "msg": pytss_missing_msg("to read the EK")})
    else:
        try:
            evidence["tpm"] = tpm_session(
                tcti,
                lambda ectx: read_tpm(ectx, params["ek_derive"]),
                deadline,
                f"reading the EK and PCR banks over {tcti}",
                module=module,
            )
        except TpmAccessError as err:
            errors.append({"step": "tpm", "reason": err.kind, "msg": err.msg})
    evidence["event_log"] = event_log(
        params["event_log_path"],
        bounded_runner(module, deadline),
        module.get_bin_path("tpm2_eventlog"),
        params["include_event_log"],
    )
    banks = list((evidence["tpm"] or {}).get("pcr_banks") or ["sha1", "sha256"])
    evidence["ima"] = ima_state(params["ima_dir"], banks)
    evidence["elapsed_ms"] = deadline.elapsed_ms()
    module.exit_json(changed=False, evidence=evidence)


if __name__ == "__main__":
    main()
