#!/usr/bin/env bash
# The collection on each supported ansible-core, on one lab VM of its own
# (lab "cores", Debian 13, SSH port CORES_PORT): `site.yml --check`, a
# converge and `playbooks/report.yml` with each core in turn:
#   1. ansible-core 2.21 (the second controller, scripts/controller2.sh:
#      Debian 13, Python 3.13) on the fresh VM;
#   2. ansible-core 2.20 (the second controller's other venv, run --core 2.20);
#   3. ansible-core 2.19 (the main toolchain, .venv: Python 3.11).
# After the first converge every later `--check` and converge must change
# nothing, and every report must find the VM healthy ("1 hosts: 1 healthy").
# Each step's log goes to .cache/core-versions/<core>-<step>.log and its PLAY
# RECAP, the report's summary and the duration to
# .cache/core-versions/summary.txt. Run it under the lab lock, as root (the
# second controller needs it):
#   flock /work/lab.lock tests/lab/core_versions.sh       (the lab lock's path is the machine's)
# The VM is removed at the end unless CORES_KEEP=1. Exits non-zero when a step
# fails, a later core's run changed something or a report is not healthy.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
port=${CORES_PORT:-2311}
out=.cache/core-versions
mkdir -p "$out"
: > "$out/summary.txt"
export ANSIBLE_CONFIG=$repo/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
venv=$repo/.venv/bin
inventory=inventory/cores
status=0
start_all=$(date +%s)

lab() {
  "$venv/ansible-playbook" playbooks/lab.yml -e lab_name=cores -e lab_ssh_port_base="$port" \
    -e lab_vm_count=1 -e '{"lab_vm_suites": ["trixie"]}' "$@"
}

say() { echo "$*" | tee -a "$out/summary.txt"; }

# The recap line(s) of a log.
recap() { grep -A3 '^PLAY RECAP' "$1" | grep -E ':\s+ok=' || echo "(no recap)"; }

# step CORE NAME CMD...: run CMD, keep its log, its recap and its duration.
step() {
  local core=$1 name=$2 start rc
  shift 2
  start=$(date +%s)
  "$@" > "$out/$core-$name.log" 2>&1
  rc=$?
  {
    echo "== ansible-core $core: $name (rc=$rc, $(($(date +%s) - start)) s)"
    recap "$out/$core-$name.log"
  } | tee -a "$out/summary.txt"
  [ "$rc" = 0 ] || status=1
  return "$rc"
}

# unchanged CORE NAME: that step's recap says changed=0 and failed=0.
unchanged() {
  if ! recap "$out/$1-$2.log" | grep -qE 'changed=0 .*failed=0'; then
    say "FAIL: $2 with ansible-core $1 after the first converge changed something (or failed)"
    status=1
  fi
}

# healthy CORE: the report's summary, and it finds the one VM healthy.
healthy() {
  local line
  line=$(grep -m1 -oE '[0-9]+ hosts: [^;"]*' "$out/$1-report.log" || true)
  say "   report: ${line:-(no summary)}"
  case $line in
    "1 hosts: 1 healthy, 0 drifted, 0 unverified, 0 failing, 0 unreachable, 0 without TPM") ;;
    *) say "FAIL: the report with ansible-core $1 does not find the VM healthy"; status=1 ;;
  esac
}

# c2 CORE CMD...: CMD with the second controller's venv of CORE; main CMD...: with .venv.
c2() { local core=$1; shift; scripts/controller2.sh run --core "$core" env ANSIBLE_NOCOLOR=1 "$@"; }
main() { "$venv/$1" "${@:2}"; }

# The three controllers, newest first: how to run a command with each.
runners=("c2 2.21" "c2 2.20" "main")
scripts/controller2.sh build || exit 1

lab -e lab_state=absent > "$out/lab-absent.log" 2>&1
lab > "$out/lab-up.log" 2>&1 || { tail -n 30 "$out/lab-up.log"; exit 1; }

first=
for runner in "${runners[@]}"; do
  read -r -a run <<< "$runner"
  core=$("${run[@]}" ansible --version | head -n 1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1)
  python=$("${run[@]}" python --version 2>&1 | grep -oE '[0-9.]+$')
  say "## ansible-core $core (Python $python)"
  step "$core" site-check "${run[@]}" ansible-playbook -i "$inventory" site.yml --check
  step "$core" converge "${run[@]}" ansible-playbook -i "$inventory" site.yml
  step "$core" report "${run[@]}" ansible-playbook -i "$inventory" playbooks/report.yml \
    -e tpm_report_dir=.cache/core-versions/report-"$core"
  healthy "$core"
  if [ -n "$first" ]; then
    unchanged "$core" site-check
    unchanged "$core" converge
  fi
  first=${first:-$core}
done

if [ -z "${CORES_KEEP:-}" ]; then
  lab -e lab_state=absent > "$out/lab-absent.log" 2>&1
fi
say "core_versions: $([ "$status" = 0 ] && echo passed || echo FAILED) in $(($(date +%s) - start_all)) s"
exit "$status"
