# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a role's template task would change at a path, decided from the preflight's read of that path: the roles'
plans (``changes`` in plugins/plugin_utils/roles/) compare the file the task writes, root:root 0644, with the
role's template as Ansible renders it."""

from __future__ import annotations

import hashlib


def stat_kind(stat, directory=False):
    """What is at a path that is not the regular file (or, with ``directory``, the directory) wanted there."""
    if stat.get("islnk"):
        return "a symbolic link"
    if stat.get("isdir") and not directory:
        return "a directory"
    return "not a directory" if directory else "not a regular file"


def changes(host, role, path, stat, template, variables=None):
    """What ``role``'s template task for ``template`` would change at ``path``, as tpm_host_state read it
    (``stat``): a list of sentences (empty: nothing), or None when the content cannot be compared (the template
    could render otherwise in its task, or the file's checksum was not read). ``variables``: the task's own, such
    as its loop's ``item``."""
    if not stat.get("exists"):
        return [f"write {path}"]
    if not stat.get("isreg") or stat.get("islnk"):
        return [f"write {path} (it is {stat_kind(stat)})"]
    content = host.render(role, template, variables)
    if content is None or stat.get("checksum") is None:
        return None
    if hashlib.sha1(content.encode("utf-8")).hexdigest() != stat["checksum"]:  # noqa: S324 (stat's checksum)
        return [f"write {path} (its content differs)"]
    if (stat.get("pw_name"), stat.get("gr_name"), str(stat.get("mode"))) != ("root", "root", "0644"):
        return [f"set {path} to root:root 0644"]
    return []
