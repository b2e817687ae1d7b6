# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry of the roles: their one list, their order, and each role's controller knowledge.

``ROLES`` is the one list of the roles that prepare a TPM host, in the order
they run: ``site``, ``quote_mode`` and ``tpm_preflight`` take it through the
``tpmfleet.tpm.roles`` lookup. Each role's controller knowledge lives in one
file of this package named after the role (``tpm_kernel.py`` ...), which
defines:

- ``INPUTS``: the variables its checks take (the role's own, and the few
  settings of another role it must agree with), as Ansible resolved them;
- ``input_errors(values)``: every problem found without the host, one
  sentence each naming the variable and the fix;
- ``READS_FROM`` and ``reads(values)``: what it reads on the host, as the
  options of tpmfleet.tpm.tpm_host_state (the tpmfleet.tpm.host_reads lookup);
- optionally ``host_errors(values, host)``: its checks against the host
  (``host``: the settings_check action's view of the host, with ``name``,
  ``facts``, ``accounts()``, ``read(**options)`` and ``publish(key, value)``),
  which may also publish the role's plan;
- optionally ``changes(values, host)``, with ``CHANGES_FROM`` (the variables it takes besides ``INPUTS``),
  ``PLANS_FROM`` and ``CHANGES``: what its apply would change on the host as the preflight read it (a list of
  sentences; empty: nothing) or None when it cannot tell. ``PLANS_FROM`` names the parts of the host's state
  (``PARTS``) that answer rests on, ``CHANGES`` the parts its apply may change; a role without ``changes``
  always runs, and one without ``CHANGES`` is taken to change every part. ``UNCHANGED`` names the tasks file
  run instead of ``apply`` when nothing changes (tpm_kernel publishes its facts); without it the role is
  skipped. ``ALWAYS`` (true): the role runs whatever its plan says (tpm_verify: its checks are the run's proof;
  its plan only spares its apply the steps it names as done).

``entries(plans)`` decides, from every role's ``changes``, which roles a run applies (the converge step of
``site`` and ``quote_mode``): a role is skipped only when its answer is an empty list and no role before it that
runs may change a part its answer rests on (the host state it read would be stale).

The settings_check action, the host_reads lookup, the preflight and the
entry points loop over this registry; nothing else names a role. Shared
grammar (names, modes, paths, booleans) is in ``input_rules.py``.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path

import yaml

ROLES = (
    "tpm_kernel",
    "tpm_access",
    "tpm_udev",
    "tpm_abrmd",
    "tpm_tcti_env",
    "tpm_containers",
    "tpm_verify",
)

# Roles the playbooks run around the list, not steps of it: tpm_consumers
# stops the consumers before a quote mode switch (quote_mode) and starts the
# ones a switch stopped once every role of the list succeeded (site and
# quote_mode). The preflight reads what they plan from as well (the
# tpmfleet.tpm.host_reads lookup).
AROUND = ("tpm_consumers",)

# The role every other role depends on (meta/main.yml): its settings are checked by its own task, first.
FIRST = "tpm_quote_mode"

# Every role with controller knowledge here.
KNOWN = (FIRST, *ROLES, *AROUND)

_ROLES_DIR = Path(__file__).resolve().parent.parent.parent.parent / "roles"


def spec(role):
    """The module that holds ``role``'s controller knowledge (ValueError for a role the registry does not know)."""
    if role not in KNOWN:
        raise ValueError(f"unknown role {role!r}; known: {', '.join(KNOWN)}")
    return importlib.import_module(f"{__name__}.{role}")


def roles_dir():
    """The collection's roles directory (the roles' templates are there)."""
    return str(_ROLES_DIR)


def checked():
    """The roles whose settings settings_check checks, in order."""
    return tuple(r for r in KNOWN if getattr(spec(r), "INPUTS", ()))


def input_errors(values, role):
    """Every problem with ``role``'s inputs ``values`` (variable name -> value) found without the host."""
    if not isinstance(values, dict):
        raise ValueError(f"the inputs of {role} must be a dict of variable name -> value, got {type(values).__name__}")
    return spec(role).input_errors(values)


@functools.lru_cache(maxsize=16)
def argument_spec(role):
    """The options of ``role``'s ``main`` argument spec (its meta/argument_specs.yml), read once per process: what
    Ansible checks before the role runs, and the settings_check action checks for the preflight."""
    specs = yaml.safe_load((_ROLES_DIR / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]["main"].get("options") or {}


# --- what the roles read on the host -------------------------------------------


def empty_reads():
    return {
        "units": [],
        "paths": [],
        "markers": {},
        "globs": [],
        "kernel": False,
        "kernel_modules": [],
        "holders": [],
        "consumers": [],
        "consumer_environ": [],
        "packages": [],
        "accounts": False,
    }


def reads_from(role):
    """The variables ``role``'s reads depend on."""
    return getattr(spec(role), "READS_FROM", ())


def reads(roles, values):
    """tpm_host_state's options for ``roles`` given the values of the variables they need (``values``:
    name -> value, as Ansible resolved them; a name missing from it reads as None)."""
    out = empty_reads()
    for role in roles:
        module = spec(role)
        if not hasattr(module, "reads"):
            continue
        part = module.reads({n: values.get(n) for n in reads_from(role)})
        lists = ("units", "paths", "globs", "kernel_modules", "holders", "consumers", "consumer_environ", "packages")
        for key in lists:
            out[key] += [x for x in part.get(key, []) if x not in out[key]]
        out["markers"].update(part.get("markers", {}))
        out["kernel"] = out["kernel"] or bool(part.get("kernel"))
        out["accounts"] = out["accounts"] or bool(part.get("accounts"))
    return out


# --- what a run applies ---------------------------------------------------------

# The parts of the host's state that one role's plan may rest on and another role's apply may change: the users
# and groups, the TPM nodes (their owners and modes), the running kernel's drivers, the systemd units, the
# holders of the TPM. "accounts" and "nodes" are also the names of the published stale marker
# (tpmfleet_host_state_stale). A role's own files are not among them: no other role writes them.
PARTS = ("accounts", "nodes", "kernel", "units", "holders")


def entries(plans):
    """What each role's tasks/entry.yml runs (``apply``, its ``UNCHANGED`` file, or None: the role ends at its
    entry), given ``plans``: role -> what its apply would change (a list; empty: nothing) or None (cannot tell),
    for the roles of one run in their order. Never from what this run changed: a role whose plan rests on a part
    that a role before it may change, when that role runs, runs too (its plan would be stale)."""
    changing, out = set(), {}
    for role, plan in plans.items():
        module = spec(role)
        stale = bool(changing & set(getattr(module, "PLANS_FROM", PARTS)))
        if plan is None or plan or stale or getattr(module, "ALWAYS", False):
            out[role] = "apply"
            changing |= set(getattr(module, "CHANGES", PARTS))
        else:
            out[role] = getattr(module, "UNCHANGED", None)
    return out
