#!/usr/bin/python
# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work is done by the action plugin of the same name on the controller; this file documents it.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_report
short_description: Write the fleet report (HTML, JSON, JUnit) on the controller
description:
  - Runs on the controller only (an action plugin). It reads, for every host in O(hosts), what the
    C(tpmfleet.tpm.report) playbook left in hostvars (the registered C(tpm_facts) and optional C(tpm_quote) results,
    the C(tpm_quote_mode_profile) fact of the tpm_quote_mode role or why the mode is invalid) and writes
    C(index.html), C(fleet.json), C(junit.xml) and C(limits/<id>.txt) (the hosts of one problem group or fleet
    finding, one per line, for C(--limit @<dest>/limits/<id>.txt)) into O(dest).
  - It reads each host's variables as stored (C(HostVars.raw_get)); a registered result whose task failed
    (C(failed), an rc other than 0, the module's stderr, no facts) makes the host C(failing), never C(healthy).
  - A host is C(healthy) only when every check that applies ran and passed; a check that could not run is
    C(not_run) and makes the host C(unverified) (for example a TPM busy in quote mode direct).
  - Drift is the host's observed state (tpm2-abrmd, the TCTI environment file, device node owners and modes, holders
    of C(/dev/tpm0)) against what its quote mode implies (C(tpmfleet.tpm.quote_mode), the single source of truth).
  - Unreachable hosts and hosts without a TPM are reported as such; a host that requires a TPM and has none is
    C(failing).
  - Fix commands quote host names for the shell and name the installed collection's playbooks
    (C(ansible-playbook tpmfleet.tpm.site)), or the checkout's files when the run came from a checkout.
  - C(fleet.json) follows the JSON Schema C(plugins/plugin_utils/fleet-report.schema.json) of the collection.
  - With O(source=cache) it reads each host's C(tpmfleet_report_record) fact (which the report playbook keeps with
    C(cacheable) and Ansible loads from the configured fact cache) instead of this run's results, and contacts no
    host. Each host's data age is reported (C(read_at), C(age_seconds), C(stale)); data older than O(max_age),
    of unknown age, or missing is never C(healthy).
version_added: "0.2.0"
author: tpmfleet contributors (@tpmfleet)
options:
  hosts:
    description: Inventory names of the hosts to report, normally C({{ ansible_play_hosts_all }}).
    type: list
    elements: str
    required: true
  dest:
    description:
      - Directory on the controller for the report's files; relative to the current directory.
      - The problem groups' commands name their limit files under it as given here.
    type: path
    default: report
  quote_test:
    description: Whether the playbook took a test quote per host (hosts without one fail the quote check).
    type: bool
    default: false
  mixed_mode_ignore_groups:
    description: Groups whose hosts may mix quote modes without a finding (C(all) and C(ungrouped) always may).
    type: list
    elements: str
    default: []
  source:
    description:
      - C(live) reads this run's registered results; C(cache) each host's cached C(tpmfleet_report_record) fact.
      - The playbook passes C(tpm_report_source).
    type: str
    choices: [live, cache]
    default: live
  max_age:
    description: Seconds after which a host's data is stale (C(tpm_report_max_age)); a whole number above 0.
    type: int
    default: 86400
  cache_plugin:
    description:
      - The configured fact cache plugin (C(lookup('ansible.builtin.config', 'CACHE_PLUGIN'))). With O(source=cache)
        and C(memory) the task fails with how to configure a fact cache. Not checked when not given.
    type: str
  attest_checks:
    description:
      - The attestation readiness checks to judge (C(tpm_attest_checks)); hosts are judged only by these.
      - C(eventlog) and C(ima) need O(quote_test); C(consumer_quote) needs the playbook's per-consumer quotes.
    type: list
    elements: str
    choices: [ek_chain, eventlog, ima, consumer_quote]
    default: []
  ek_ca_bundle:
    description: A PEM bundle of trusted EK CA certificates (C(tpm_attest_ek_ca_bundle)) for the C(ek_chain) check.
    type: path
  ek_ca_dir:
    description:
      - A directory of trusted EK CA certificates, PEM or DER (C(.pem .crt .cer .der); C(tpm_attest_ek_ca_dir)).
    type: path
  attest_export:
    description:
      - Write C(attestation/<host>/) under O(dest) (EK certificate, EK public key, the measured-boot reference
        state) when O(attest_checks) is not empty (C(tpm_attest_export)).
    type: bool
    default: true
  export_event_log:
    description:
      - Only checked and returned by the prepare step (C(tpm_attest_export_event_log)); the playbook then asks
        C(tpmfleet.tpm.tpm_attest_evidence) for each host's binary event log, which the export includes.
    type: bool
    default: false
  ek_create:
    description:
      - Only checked and returned by the prepare step (C(tpm_report_ek_create)); the playbook passes it to
        C(tpmfleet.tpm.tpm_facts).
    type: bool
    default: false
  timeout:
    description:
      - Only checked and returned by the prepare step (C(tpm_report_timeout)), whole seconds from 1 to 3600 that
        each TPM read, test quote and evidence read of the playbook may take on a host. Not given, each module's
        own default applies.
    type: int
  prepare:
    description:
      - Only check the inputs (O(source), O(max_age), O(cache_plugin), the attestation options and the switches)
        and return them normalised with C(collection) (the collection's name and version, for the cached record);
        write nothing. The report playbook's first task.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The report is written in check mode too; it changes no managed host.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Use it with C(run_once) and C(delegate_to) C(localhost), as the C(tpmfleet.tpm.report) playbook does.
seealso:
  - module: tpmfleet.tpm.tpm_facts
"""

EXAMPLES = r"""
- name: Write the fleet report on the controller
  tpmfleet.tpm.fleet_report:
    hosts: "{{ ansible_play_hosts_all }}"
    dest: report
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
paths:
  description: Paths of the written files, by name (C(index.html), C(fleet.json), C(junit.xml)).
  returned: success
  type: dict
summary:
  description:
    - The C(summary) object of C(fleet.json) (hosts, status, modes, observed_modes, by_mode, problems).
    - C(status) counts hosts as failing, unreachable, unverified, no_tpm, drifted and healthy.
  returned: success
  type: dict
limit_files:
  description: Paths of the limit files written (one per problem group or fleet finding with hosts).
  returned: success
  type: list
  elements: str
fleet_findings:
  description: Number of fleet-level findings (GIDs differing between hosts, mixed modes within a group).
  returned: success
  type: int
source:
  description: The checked O(source) (only with O(prepare)).
  returned: when prepare is true
  type: str
max_age:
  description: The checked O(max_age) in seconds (only with O(prepare)).
  returned: when prepare is true
  type: int
collection:
  description: C(tpmfleet.tpm <version>) of the collection (only with O(prepare)).
  returned: when prepare is true
  type: str
attest_checks:
  description: The checked O(attest_checks), without repeats (only with O(prepare)).
  returned: when prepare is true
  type: list
  elements: str
quote_test:
  description: The checked O(quote_test) (only with O(prepare)).
  returned: when prepare is true
  type: bool
attest_export:
  description: The checked O(attest_export) (only with O(prepare)).
  returned: when prepare is true
  type: bool
export_event_log:
  description: The checked O(export_event_log) (only with O(prepare)).
  returned: when prepare is true
  type: bool
ek_create:
  description: The checked O(ek_create) (only with O(prepare)).
  returned: when prepare is true
  type: bool
timeout:
  description: The checked O(timeout), or null when not given (only with O(prepare)).
  returned: when prepare is true
  type: int
attestation_exports:
  description: The file names written per host under C(attestation/<host>/) (O(attest_export)).
  returned: when attestation files were written
  type: dict
msg:
  description: One line with the counts per status and where the report is.
  returned: success
  type: str
"""
