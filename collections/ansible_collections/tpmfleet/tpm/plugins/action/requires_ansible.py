# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of requires_ansible: refuse an ansible-core older than meta/runtime.yml's requires_ansible.

ansible-core only warns when a collection's ``requires_ansible`` is not met, then runs its code anyway. This
action compares the running ansible-core with that one requirement, on the controller, without a connection
to any host, and fails with what runs, what is needed and how to install it.
"""

from __future__ import annotations

import json
import os
import shlex
import sys

import yaml
from ansible.plugins.action import ActionBase
from ansible.release import __version__ as ansible_core_version

try:  # a dependency of ansible-core itself
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version
except ImportError:
    HAS_PACKAGING = False
else:
    HAS_PACKAGING = True

RUNTIME = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "meta", "runtime.yml")
INSTALL = (
    "From a tpmfleet checkout, ./scripts/setup.sh (make setup) installs the pinned toolchain into .venv; "
    "elsewhere install a supported ansible-core, e.g. python3 -m pip install {spec}"
)


def requires_ansible(path=RUNTIME):
    """The collection's requires_ansible specifier, read from its meta/runtime.yml."""
    with open(path, encoding="utf-8") as handle:
        spec = (yaml.safe_load(handle) or {}).get("requires_ansible")
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"{path} has no requires_ansible string")
    return spec


def core_problem(running, spec):
    """Why ansible-core ``running`` does not meet ``spec`` (None when it does)."""
    if not HAS_PACKAGING:
        return "the Python package packaging (a dependency of ansible-core) is missing on the controller"
    try:
        specifier = SpecifierSet(spec)
    except InvalidSpecifier:
        return f"the collection's requires_ansible {json.dumps(spec)} is not a version specifier"
    try:
        version = Version(running)
    except InvalidVersion:
        return f"ansible-core version {json.dumps(running)} cannot be compared with requires_ansible {json.dumps(spec)}"
    if specifier.contains(version, prereleases=True):
        return None
    return (
        f"tpmfleet.tpm needs ansible-core {spec} (requires_ansible in its meta/runtime.yml), but this controller "
        f"runs ansible-core {running} (Python {sys.version.split()[0]}, {sys.executable}). Nothing was run on any "
        f"host. {INSTALL.format(spec=shlex.quote(f'ansible-core{spec}'))}"
    )


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        if self._task.args:
            result.update(failed=True, msg=f"requires_ansible takes no options, got {sorted(self._task.args)}")
            return result
        try:
            spec = requires_ansible()
        except (OSError, ValueError, yaml.YAMLError) as exc:
            result.update(failed=True, msg=f"cannot read the collection's requires_ansible: {exc}")
            return result
        problem = core_problem(ansible_core_version, spec)
        result.update(changed=False, ansible_core=ansible_core_version, requires_ansible=spec)
        if problem:
            result.update(failed=True, msg=problem)
        else:
            result["msg"] = f"ansible-core {ansible_core_version} meets requires_ansible {spec}"
        return result
