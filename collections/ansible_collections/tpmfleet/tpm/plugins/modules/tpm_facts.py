#!/usr/bin/python
# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tpm_facts
short_description: Gather facts about the TPM, its driver and who is using it
description:
  - Reads C(/dev), C(/sys) and C(/proc) - TPM device nodes (owner, group, mode, major/minor), the kernel driver
    behind them (C(tpm_tis), C(tpm_crb) or other; built-in or module), the processes holding each node (pid,
    command, systemd unit), and the tpm2-abrmd state (process and systemd unit).
  - When O(tcti) is given, also opens the TPM and reports manufacturer, vendor strings, firmware version,
    spec family/level/revision, allocated PCR banks, dictionary-attack lockout state, whether owner, endorsement
    and lockout auth are set, loaded transient objects, whether it is a software TPM (swtpm/libtpms), the EK
    certificates in NV (TCG EK Credential Profile indices C(0x01c00002) RSA and C(0x01c0000a) ECC, and the high
    range when defined), the EK public key's fingerprint and the persistent handles labelled by the TCG ranges.
  - Also reads the boot event log's presence and permissions, the TCTI environment file O(tcti_env_path) and the
    IDs of the accounts in O(users) and O(groups).
  - Also reads the record of the last ansible-pull run, O(last_run_path) (written by the tpmfleet pull service's
    C(tpmfleet.tpm.last_run) callback), and returns its known fields under C(tpm.last_run).
  - Missing pieces are listed in C(tpm.errors); nothing is fatal except invalid options.
  - Read-only and fast (no subprocess except one C(systemctl show)). NV indices are only read with an
    authorization that cannot count as a dictionary-attack failure.
version_added: "0.1.0"
author: tpmfleet contributors (@tpmfleet)
options:
  tcti:
    description:
      - TCTI to open for TPM properties, e.g. C(device:/dev/tpmrm0) or C(swtpm:host=127.0.0.1,port=2321).
      - When omitted the TPM is not opened (no TPM command is sent).
    type: str
  timeout:
    description: Upper bound in seconds for the whole module (process scan, systemctl, TPM access).
    type: float
    default: 10
  ek_create:
    description:
      - When no EK is persisted at a TCG EK handle (C(0x81010001), C(0x81010002)), derive it with the TCG default
        EK template (transient, flushed at once) to report its fingerprint. Needs an empty endorsement auth.
      - Off by default because an RSA primary key can take seconds on a hardware TPM; without it the fingerprint
        comes from a persisted EK or from the public key in an EK certificate.
    type: bool
    default: false
  tcti_env_path:
    description: The TCTI environment file whose variables are reported (the tpm_tcti_env role writes it).
    type: path
    default: /etc/tpm2/tcti.env
  last_run_path:
    description: The record of the last ansible-pull run (see the C(tpmfleet.tpm.last_run) callback).
    type: path
    default: /var/lib/tpmfleet/last-run.json
  users:
    description: Users whose UID and primary GID are reported under C(tpm.accounts.users).
    type: list
    elements: str
    default: [tss]
  groups:
    description: Groups whose GID and members are reported under C(tpm.accounts.groups).
    type: list
    elements: str
    default: [tss, docker]
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - tpmfleet.tpm.tpm2
attributes:
  check_mode:
    support: full
    details: Read-only; gathers the same facts in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - tpm2-pytss is only needed when O(tcti) is set.
  - Holders of other users' file descriptors are only visible when run as root (C(tpm.holders_complete)).
seealso:
  - module: tpmfleet.tpm.tpm_check
  - module: tpmfleet.tpm.fleet_report
"""

EXAMPLES = r"""
- name: Gather TPM facts without touching the TPM
  tpmfleet.tpm.tpm_facts:
  become: true

- name: Also read TPM properties over the kernel resource manager
  tpmfleet.tpm.tpm_facts:
    tcti: device:/dev/tpmrm0
  become: true

- name: Describe the TPM with its EK fingerprint, also when no EK is persisted
  tpmfleet.tpm.tpm_facts:
    tcti: device:/dev/tpmrm0
    ek_create: true
  become: true

- name: Show who holds /dev/tpm0
  ansible.builtin.debug:
    var: ansible_facts.tpm.holders['/dev/tpm0']
"""

RETURN = r"""
ansible_facts:
  description: Facts under the C(tpm) key.
  returned: always
  type: dict
  contains:
    tpm:
      description: TPM facts.
      type: dict
      contains:
        present:
          description: Whether the kernel registered a TPM (C(/sys/class/tpm/tpm*)) or a node exists.
          type: bool
        devices:
          description: Device nodes C(/dev/tpm*) and C(/dev/tpmrm*) (path, major, minor, owner, uid, group, gid, mode).
          type: list
          elements: dict
        drivers:
          description: Per C(/sys/class/tpm/tpmN) - driver, kind (tpm_tis/tpm_crb/other), module, builtin, loaded.
          type: list
          elements: dict
        kernel:
          description: Running kernel release.
          type: str
        holders:
          description: Map of device node to the processes holding it open (pid, comm, cmdline, user, unit).
          type: dict
        holders_complete:
          description: False when some C(/proc/PID/fd) could not be read (not root) or the timeout was hit.
          type: bool
        abrmd:
          description: tpm2-abrmd state - running, pids, processes, systemd (active_state, unit_file_state...).
          type: dict
        tcti:
          description: The TCTI used for TPM properties, or null.
          type: str
        properties:
          description:
            - When the TPM was opened - manufacturer (4-char code), manufacturer_name, vendor_strings,
              firmware_version, spec_family, spec_level, spec_revision, software_tpm, software_kind,
              pcr_banks, lockout (counter, max_tries, interval_s, recovery_s, in_lockout, owner_auth_set,
              endorsement_auth_set, lockout_auth_set), transient_objects.
            - C(ek_certificates) - per EK certificate NV index (index, algorithm, description, present, size,
              attributes, readable, certificate with sha256, issuer, subject, not_before, not_after,
              public_key_sha256).
            - C(ek) - source (persistent, certificate, created or null), handle, key, public_key_sha256 (SHA-256 of
              the DER SubjectPublicKeyInfo, as C(openssl pkey -pubin -outform DER | sha256sum)),
              matches_certificate.
            - C(persistent_handles) - handle, range (owner_srk, endorsement, owner, platform), range_description,
              key, attributes, restricted, sign, decrypt, public_key_sha256.
          type: dict
        event_log:
          description:
            - The boot event log C(/sys/kernel/security/tpm0/binary_bios_measurements) - path, exists, owner, uid,
              group, gid, mode, readable_by (owner, group, others), or the reason it is missing.
          type: dict
        tcti_env:
          description: The TCTI environment file - path, exists, variables (name to value).
          type: dict
        last_run:
          description:
            - The last ansible-pull run - path, exists, and the record's fields (started_at, finished_at, result,
              ok, changed, failed, unreachable, skipped, rescued, commit, quote_mode, ansible_core, source, rc,
              reason) when it exists; other fields of the file are left out. An unreadable or invalid file is
              reported in C(tpm.errors) (step C(last_run)).
          type: dict
        accounts:
          description: C(users) (name to uid/gid or null) and C(groups) (name to gid/members or null).
          type: dict
        errors:
          description: What could not be gathered (step, reason, msg).
          type: list
          elements: dict
        elapsed_ms:
          description: Time spent gathering.
          type: float
"""

import glob
import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tpmfleet.tpm.plugins.module_utils.host import (
    ABRMD_UNIT,
    Deadline,
    abrmd_state,
    bounded_runner,
    current_identity,
    device_nodes,
    driver_info,
    holders_by_path,
    kernel_release,
    systemd_unit_state,
)
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti import (
    HAS_PYTSS,
    TpmAccessError,
    parse_tcti,
    pytss_missing_msg,
    tpm_session,
)
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tpm_info import accounts, event_log, read_details, tcti_env

# The fields of last-run.json that are returned, with their JSON types (anything else in the file is left out).
LAST_RUN_FIELDS = {
    "started_at": str,
    "finished_at": str,
    "result": str,
    "ok": int,
    "changed": int,
    "failed": int,
    "unreachable": int,
    "skipped": int,
    "rescued": int,
    "commit": str,
    "quote_mode": str,
    "ansible_core": str,
    "source": str,
    "rc": int,
    "reason": str,
}
LAST_RUN_MAX_BYTES = 65536


def last_run(path):
    """The record of the last ansible-pull run at ``path``, and an error dict or None."""
    facts = {"path": path, "exists": os.path.exists(path)}
    if not facts["exists"]:
        return facts, None
    try:
        with open(path, "rb") as handle:
            data = handle.read(LAST_RUN_MAX_BYTES + 1)
        if len(data) > LAST_RUN_MAX_BYTES:
            raise ValueError(f"larger than {LAST_RUN_MAX_BYTES} bytes")
        record = json.loads(data.decode("utf-8"))
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        return facts, {"step": "last_run", "reason": "unreadable", "msg": f"cannot read {json.dumps(path)}: {exc}"}
    for name, kind in LAST_RUN_FIELDS.items():
        value = record.get(name)
        # bool is an int in Python, never a count here.
        facts[name] = value if isinstance(value, kind) and not isinstance(value, bool) else None
    return facts, None


def main():
    module = AnsibleModule(
        argument_spec={
            "tcti": {"type": "str"},
            "timeout": {"type": "float", "default": 10},
            "ek_create": {"type": "bool", "default": False},
            "tcti_env_path": {"type": "path", "default": "/etc/tpm2/tcti.env"},
            "users": {"type": "list", "elements": "str", "default": ["tss"]},
            "groups": {"type": "list", "elements": "str", "default": ["tss", "docker"]},
            "last_run_path": {"type": "path", "default": "/var/lib/tpmfleet/last-run.json"},
        },
        supports_check_mode=True,
    )
    if module.params["timeout"] <= 0:
        module.fail_json(msg="timeout must be a positive number of seconds")
    deadline = Deadline(module.params["timeout"])
    tcti = module.params["tcti"]
    errors = []
    facts = {"kernel": kernel_release(), "tcti": tcti, "errors": errors}

    facts["devices"] = device_nodes()
    facts["drivers"] = driver_info()
    facts["present"] = bool(facts["devices"] or glob.glob("/sys/class/tpm/tpm[0-9]*"))
    if not facts["present"]:
        errors.append(
            {
                "step": "devices",
                "reason": "no_device",
                "msg": "no TPM registered with the kernel and no /dev/tpm* node (enable the TPM in firmware and "
                "load tpm_tis/tpm_crb; see the tpm_kernel role)",
            }
        )
    elif not any(d.get("driver") for d in facts["drivers"]):
        errors.append({"step": "drivers", "reason": "no_driver", "msg": "no driver link under /sys/class/tpm"})

    paths = [d["path"] for d in facts["devices"]]
    facts["holders"], complete = holders_by_path(paths, deadline=deadline.end)
    facts["holders_complete"] = complete
    if not complete:
        errors.append(
            {
                "step": "holders",
                "reason": "incomplete",
                "msg": f"could not read every /proc/PID/fd as {current_identity()['user']} (use become) "
                "or the timeout was reached",
            }
        )

    abrmd = abrmd_state()
    try:
        abrmd["systemd"] = systemd_unit_state(module, ABRMD_UNIT, runner=bounded_runner(module, deadline))
    except Exception as exc:
        abrmd["systemd"] = None
        errors.append({"step": "abrmd", "reason": "systemctl", "msg": f"systemctl show {ABRMD_UNIT} failed: {exc}"})
    facts["abrmd"] = abrmd

    facts["event_log"] = event_log()
    facts["tcti_env"] = tcti_env(module.params["tcti_env_path"])
    facts["accounts"] = accounts(module.params["users"], module.params["groups"])
    facts["last_run"], error = last_run(module.params["last_run_path"])
    if error:
        errors.append(error)

    facts["properties"] = None
    if tcti:
        try:
            parse_tcti(tcti)
        except TpmAccessError as err:
            module.fail_json(msg=err.msg, reason=err.kind)
        if not HAS_PYTSS:
            errors.append(
                {"step": "tpm", "reason": "missing_library", "msg": pytss_missing_msg("to read TPM properties")}
            )
        else:
            try:
                facts["properties"] = tpm_session(
                    tcti,
                    lambda ectx: read_details(ectx, ek_create=module.params["ek_create"]),
                    deadline,
                    f"reading TPM properties over {tcti}",
                    module=module,
                )
            except TpmAccessError as err:
                errors.append({"step": "tpm", "reason": err.kind, "msg": err.msg})

    facts["elapsed_ms"] = deadline.elapsed_ms()
    module.exit_json(changed=False, ansible_facts={"tpm": facts})


if __name__ == "__main__":
    main()
