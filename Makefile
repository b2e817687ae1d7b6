# tpmfleet: the commands the README documents.
#   make lab    set up, boot the emulated TPM lab and converge site.yml on it
#   make test   lint, unit tests (on both controllers) and molecule scenarios (what CI runs)
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)
SCENARIOS ?= default access

.PHONY: setup lab lab-up lab-down lab-stop converge lint unit collection molecule test clean

setup:
	./scripts/setup.sh

lab: setup lab-up converge

lab-up:
	ansible-playbook playbooks/lab.yml

converge:
	ansible-playbook site.yml

lab-stop:
	ansible-playbook playbooks/lab.yml -e lab_state=stopped

lab-down:
	ansible-playbook playbooks/lab.yml -e lab_state=absent

lint: setup
	yamllint --strict .
	python3 scripts/role_docs.py --check
	ruff check .
	ruff format --check .
	ansible-lint --profile production

unit: setup
	pytest -n auto --dist loadfile tests/unit tests/roles tests/playbooks

# The built collection as users get it, from outside the repository: a fresh
# venv, the tarball in an empty collections directory, ansible-doc, syntax,
# ansible-test sanity, the execution environment's build context and the AWX
# git requirement (make test-lab-matrix also converges a lab VM with it).
collection: setup
	TPMFLEET_COLLECTION_VENV=$(abspath .cache/collection-venv) tests/collection/check.sh

# The default scenario's VMs carry EK certificates from the lab CA, a foreign CA
# and none (their attestation readiness and keylime's cross-check,
# test_attest.py, first in the verifier); its verifier ends with the fleet report over its lab
# (molecule/default/tests/test_report.py: healthy, drifted, locked-out, no
# TPM, a failed read, a busy TPM, a stopped VM; the fact-cache run against
# the SSH run): about 90 s of make test. A failed scenario ends with its
# failed verifier tests (scripts/verify_failures.py), where CI's log tail shows them.
molecule: setup
	for s in $(SCENARIOS); do \
	  rm -f .cache/molecule/$$s-verify.xml; \
	  TPMFLEET_REPORT_LAB=1 molecule test -s $$s || { python3 scripts/verify_failures.py $$s .cache/molecule/$$s-verify.xml; exit 1; }; \
	done

test: lint unit collection controller2 molecule

# The containers scenario (Docker in a TCG lab VM, real containers quoting) is
# too slow for CI's budget next to the default SCENARIOS; run it on demand.
# The fleet report over the default scenario's lab alone is part of make
# test now (the molecule target); this target runs that scenario only.
.PHONY: test-report-lab
test-report-lab: setup
	TPMFLEET_REPORT_LAB=1 molecule test -s default

# A reboot of the default scenario's three consumer VMs, together: each keeps
# its mode and its consumer service comes up and reaches the TPM
# (molecule/default/tests/test_zz_reboot.py, last in the verifier); on demand.
# The lab part of the bad-input matrix, the interrupted mode switch and the
# built collection converging a VM from outside the repository
# (molecule/default/tests/test_bad_inputs.py, test_interrupted_switch.py,
# test_kernel.py); on demand: they do not fit make test's 60 minutes.
.PHONY: test-lab-matrix
test-lab-matrix: setup
	TPMFLEET_LAB_MATRIX=1 molecule test -s default

.PHONY: test-reboot-lab
test-reboot-lab: setup
	TPMFLEET_REBOOT_LAB=1 molecule test -s default

# ansible-pull: a lab VM converges itself from a git repository served by the
# controller (molecule/pull); on demand.
.PHONY: test-pull
test-pull: setup
	molecule test -s pull

# Attestation readiness on a lab of its own (tests/lab/attest_lab.yml: lab
# "attestlab", three VMs, one per quote mode, EK certificate from the lab CA,
# from a foreign CA and none; SSH ports 2331-2333): site.yml, then the checks of
# molecule/default/tests/test_attest.py (report outcomes, export, keylime's own
# code, a tampered event log); on demand, about 40 minutes under TCG.
.PHONY: test-attest-lab
test-attest-lab: setup
	ansible-playbook playbooks/lab.yml -e @tests/lab/attest_lab.yml
	ansible-playbook -i inventory/attestlab -i tests/lab/attest_lab_modes.yml site.yml && \
	  TPMFLEET_ATTEST_LAB_INVENTORY=inventory/attestlab pytest -v -p no:cacheprovider tests/lab/test_attest_lab.py; \
	  rc=$$?; ansible-playbook playbooks/lab.yml -e @tests/lab/attest_lab.yml -e lab_state=absent; exit $$rc

# The per-host cost benchmark (benchmarks/host_cost.py) on a lab of its own,
# `bench`, with BENCH_VMS fresh Debian 12 VMs: the bench lab is removed and
# booted again so that the first converge is a first one, then stopped.
# BENCH_ARGS passes options to host_cost.py (--strategy, --steps).
BENCH_VMS ?= 2
BENCH_ARGS ?=
.PHONY: bench-host-cost
bench-host-cost: setup
	ansible-playbook playbooks/lab.yml -e lab_name=bench -e lab_state=absent
	ansible-playbook playbooks/lab.yml -e lab_name=bench -e lab_vm_count=$(BENCH_VMS) \
	  -e lab_ssh_port_base=2281 -e '{"lab_vm_suites": ["bookworm"]}'
	python benchmarks/host_cost.py -i inventory/bench $(BENCH_ARGS)
	ansible-playbook playbooks/lab.yml -e lab_name=bench -e lab_state=stopped

# A task's controller CPU per host with nothing run on a host (no lab needed).
.PHONY: bench-task-overhead
bench-task-overhead: setup
	python benchmarks/task_overhead.py

# Where a run's controller CPU goes: ansible-playbook under cProfile, its task
# workers included (benchmarks/profile_run.py); PROFILE_ARGS are
# ansible-playbook's arguments, against hosts that may change (a lab).
PROFILE_ARGS ?= -i inventory/bench site.yml
.PHONY: bench-profile
bench-profile: setup
	python benchmarks/profile_run.py -- $(PROFILE_ARGS)

# The consumer matrix (molecule/consumers): tpm2-tools, tpm2-openssl,
# tpm2-pkcs11 and tpm2-pytss as services in every quote mode on Debian 12 and
# 13; its table lands in .cache/consumer-matrix.md. On demand.
.PHONY: test-consumers
test-consumers: setup
	molecule test -s consumers

.PHONY: test-containers
test-containers: setup
	molecule test -s containers

# A quote mode switch killed (kill -9 of ansible-playbook, by a test-only
# callback) at each step boundary, both ways between kernel_rm and direct,
# each finished by one site.yml run: converged, consumer running, record
# gone, a further run changed=0 (tests/lab/test_interrupt.py); on one lab VM
# of its own (lab "interrupt", SSH port 2291); on demand, hours under TCG.
# TPMFLEET_INTERRUPT_AT=all kills at every task boundary (default: after
# each task that changed the host, one per distinct host state);
# TPMFLEET_INTERRUPT_MODES=direct,abrmd switches between those two. Two pairs
# at once: a second lab with INTERRUPT_LAB=interrupt2 INTERRUPT_PORT=2295.
INTERRUPT_LAB ?= interrupt
INTERRUPT_PORT ?= 2291
.PHONY: test-interrupt
test-interrupt: setup
	ansible-playbook playbooks/lab.yml -e lab_name=$(INTERRUPT_LAB) -e lab_ssh_port_base=$(INTERRUPT_PORT) -e lab_vm_count=1
	TPMFLEET_INTERRUPT_INVENTORY=inventory/$(INTERRUPT_LAB) \
	  TPMFLEET_INTERRUPT_REPORT=$(abspath .cache/$(INTERRUPT_LAB)-report.json) \
	  pytest -v -p no:cacheprovider tests/lab/test_interrupt.py; \
	  rc=$$?; ansible-playbook playbooks/lab.yml -e lab_name=$(INTERRUPT_LAB) -e lab_state=absent; exit $$rc

# The sliced AWX path (docs/awx.md, tests/awx/test_awx_slices.py): on a lab of
# its own, "awx" (2 VMs, SSH ports 2301-2302), tpmfleet.tpm.site as two
# slice jobs at once and then one report job from the fact cache, each job run
# by ansible-runner with process isolation (bubblewrap) as an AWX execution
# node runs it; the lab is removed afterwards. On demand, under the lab lock.
.PHONY: test-awx-slices
test-awx-slices: setup
	command -v bwrap > /dev/null || { echo "test-awx-slices: needs bubblewrap (apt-get install bubblewrap)" >&2; exit 1; }
	tests/collection/tools-venv.sh > /dev/null
	ansible-playbook playbooks/lab.yml -e lab_name=awx -e lab_ssh_port_base=2301 -e lab_vm_count=2
	TPMFLEET_AWX_INVENTORY=inventory/awx pytest -v -s -p no:cacheprovider tests/awx/test_awx_slices.py; \
	  rc=$$?; ansible-playbook playbooks/lab.yml -e lab_name=awx -e lab_state=absent; exit $$rc

# The second controller (docs/controllers.md): Debian 13's Python 3.13 with the
# ansible-core releases after the main toolchain's, one venv each
# (requirements-controller2*.txt), in a trixie root filesystem built once and
# cached (scripts/controller2.sh; needs root). Runs the unit, role and playbook
# tests there with CONTROLLER2_CORE (2.21, the newest, by default; or 2.20),
# then tests/collection/check.sh with that core's pins (ansible-doc, syntax,
# ansible-test sanity on Python 3.13); both run, and the target fails if
# either does. make test runs it with the newest core (the controller2 target).
CONTROLLER2_CORE ?= 2.21
CONTROLLER2_PYTEST_ARGS ?= -n auto --dist loadfile
.PHONY: controller2 test-controller2
controller2 test-controller2:
	@start=$$(date +%s); ./scripts/controller2.sh build || exit 1; built=$$(date +%s); \
	./scripts/controller2.sh run --core $(CONTROLLER2_CORE) pytest -rfEs \
	  --junitxml=.cache/controller2-pytest-$(CONTROLLER2_CORE).xml \
	  $(CONTROLLER2_PYTEST_ARGS) tests/unit tests/roles tests/playbooks; unit=$$?; tested=$$(date +%s); \
	./scripts/controller2.sh run --core $(CONTROLLER2_CORE) env TPMFLEET_SOURCE_VENV=/opt/venv-$(CONTROLLER2_CORE) \
	  TPMFLEET_REQUIREMENTS=/opt/requirements-$(CONTROLLER2_CORE).txt \
	  TPMFLEET_COLLECTION_VENV=/opt/collection-venv-$(CONTROLLER2_CORE) tests/collection/check.sh; collection=$$?; \
	echo "test-controller2 (ansible-core $(CONTROLLER2_CORE)): pytest rc=$$unit, collection check rc=$$collection;" \
	  "build $$((built - start)) s, pytest $$((tested - built)) s, collection check $$(($$(date +%s) - tested)) s"; \
	[ $$unit = 0 ] && [ $$collection = 0 ]
