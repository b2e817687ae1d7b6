# tpmfleet: the commands the README documents.
#   make lab    set up, boot the emulated TPM lab and converge site.yml on it
#   make test   lint, unit tests and molecule scenarios (what CI runs)
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)
SCENARIOS ?= default access modes

.PHONY: setup lab lab-up lab-down lab-stop converge lint unit molecule test clean

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
	ruff check .
	ruff format --check .
	ansible-lint --profile production

unit: setup
	pytest tests/unit tests/roles

molecule: setup
	for s in $(SCENARIOS); do molecule test -s $$s || exit 1; done

test: lint unit molecule

# The containers scenario (Docker in a TCG lab VM, real containers quoting) is
# too slow for CI's budget next to the default SCENARIOS; run it on demand.
.PHONY: test-containers
test-containers: setup
	molecule test -s containers
