#!/usr/bin/env bash
# The collection on each supported ansible-core, on one lab VM of its own
# (lab "cores", Debian 13, SSH port CORES_PORT): `site.yml --check`, a
# converge and `playbooks/report.yml`, first with the second controller
# (scripts/controller2.sh: Debian 13, Python 3.13, ansible-core 2.21) on the
# fresh VM, then with the main toolchain (.venv: Python 3.11, ansible-core
# 2.19), whose converge must then change nothing. Each step's log goes to
# .cache/core-versions/<core>-<step>.log and its PLAY RECAP and duration to
# .cache/core-versions/summary.txt. Run it under the lab lock, as root (the
# second controller needs it):
#   flock /work/lab.lock tests/lab/core_versions.sh       (the lab lock's path is the machine's)
# The VM is removed at the end unless CORES_KEEP=1. Exits non-zero when a step
# fails or the main toolchain's converge changed something.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
port=${CORES_PORT:-2311}
out=.cache/core-versions
mkdir -p "$out"
: > "$out/summary.txt"
export ANSIBLE_CONFIG=$repo/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
venv=$repo/.venv/bin
status=0

lab() {
  "$venv/ansible-playbook" playbooks/lab.yml -e lab_name=cores -e lab_ssh_port_base="$port" \
    -e lab_vm_count=1 -e '{"lab_vm_suites": ["trixie"]}' "$@"
}

# step CORE NAME CMD...: run CMD, keep its log, its recap and its duration.
step() {
  local core=$1 name=$2 start rc
  shift 2
  start=$(date +%s)
  "$@" > "$out/$core-$name.log" 2>&1
  rc=$?
  {
    echo "== ansible-core $core: $name (rc=$rc, $(($(date +%s) - start)) s)"
    grep -A3 '^PLAY RECAP' "$out/$core-$name.log" | grep -E ':\s+ok=' || echo "(no recap)"
  } | tee -a "$out/summary.txt"
  [ "$rc" = 0 ] || status=1
  return "$rc"
}

c2() { scripts/controller2.sh run env ANSIBLE_NOCOLOR=1 "$@"; }

lab -e lab_state=absent > "$out/lab-absent.log" 2>&1
lab > "$out/lab-up.log" 2>&1 || { tail -n 30 "$out/lab-up.log"; exit 1; }
inventory=inventory/cores

core2=$(c2 ansible --version | head -n 1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1)
core1=$("$venv/ansible" --version | head -n 1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1)
step "$core2" site-check c2 ansible-playbook -i "$inventory" site.yml --check
step "$core2" converge c2 ansible-playbook -i "$inventory" site.yml
step "$core2" report c2 ansible-playbook -i "$inventory" playbooks/report.yml -e tpm_report_dir=.cache/core-versions/report-"$core2"
step "$core1" site-check "$venv/ansible-playbook" -i "$inventory" site.yml --check
step "$core1" converge "$venv/ansible-playbook" -i "$inventory" site.yml
step "$core1" report "$venv/ansible-playbook" -i "$inventory" playbooks/report.yml -e tpm_report_dir=.cache/core-versions/report-"$core1"
if ! grep -A3 '^PLAY RECAP' "$out/$core1-converge.log" | grep -qE 'changed=0 .*failed=0'; then
  echo "the converge with ansible-core $core1 after the one with $core2 changed something" | tee -a "$out/summary.txt"
  status=1
fi

if [ -z "${CORES_KEEP:-}" ]; then
  lab -e lab_state=absent > "$out/lab-absent.log" 2>&1
fi
exit "$status"
