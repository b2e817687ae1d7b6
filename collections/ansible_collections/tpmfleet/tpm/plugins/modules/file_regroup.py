#!/usr/bin/python
# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module file_regroup: give the files that carry an old group ID a new one."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: file_regroup
short_description: Give the files that carry an old group ID a new one (after a GID change)
description:
  - Walks each of O(paths) and changes the group of every file, directory,
    symlink and special file whose group ID is O(old_gid) to O(new_gid). Files
    with any other group ID are left alone; owner and mode are kept (the
    set-user-ID and set-group-ID bits of regular files, which the kernel
    clears on a chown, are put back).
  - Symbolic links are never followed, neither inside the tree nor when a path
    in O(paths) is itself a link; the link itself is re-owned (lchown) when it
    carries O(old_gid).
  - Does not descend into V(/proc), V(/sys) or V(/dev) (the kernel and udev
    own those), and with O(one_file_system) not into other filesystems
    mounted below a path (their mount points are left alone too).
  - Used by the tpm_access role after it changed a group's GID
    (C(groupmod -g) re-owns no files).
version_added: "0.1.0"
author: tpmfleet contributors (@tpmfleet)
options:
  paths:
    description:
      - Absolute paths of the trees to walk. A path under V(/proc), V(/sys)
        or V(/dev) is refused.
    type: list
    elements: path
    required: true
  old_gid:
    description: The group ID the files carry now (the group's GID before the change).
    type: int
    required: true
  new_gid:
    description: The group ID they get.
    type: int
    required: true
  one_file_system:
    description: Stay on the filesystem of each path in O(paths), like C(find -xdev).
    type: bool
    default: true
  ignore_missing:
    description:
      - Skip paths in O(paths) that do not exist (they are listed in RV(missing_paths))
        instead of failing.
    type: bool
    default: false
  max_report:
    description: How many of the changed paths to list in RV(changed_paths) (and in the diff).
    type: int
    default: 20
notes:
  - Running processes keep the group IDs they started with until restarted.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what would change (count and paths) without changing anything.
  diff_mode:
    support: full
    details: Lists the re-owned paths (up to O(max_report)) with their old and new group ID.
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Ensure files that had the tss group's old GID 106 carry its new GID 950
  tpmfleet.tpm.file_regroup:
    paths: [/var/lib/tpm, /var/lib/tpm2-tss]
    old_gid: 106
    new_gid: 950
    max_report: 10
  register: regroup

- name: Report what was re-owned
  ansible.builtin.debug:
    msg: "{{ regroup.changed_count }} files re-owned: {{ regroup.changed_paths | join(', ') }}"
"""

RETURN = r"""
changed_count:
  description: Number of files whose group was (in check mode, would be) changed.
  returned: always
  type: int
  sample: 3
changed_paths:
  description: The first O(max_report) of those files, in walk order.
  returned: always
  type: list
  elements: str
  sample: [/var/lib/tpm, /var/lib/tpm/state]
truncated:
  description: Whether more files changed than RV(changed_paths) lists.
  returned: always
  type: bool
  sample: false
missing_paths:
  description: Paths in O(paths) that did not exist (only with O(ignore_missing)).
  returned: always
  type: list
  elements: str
  sample: []
old_gid:
  description: The group ID that was replaced.
  returned: always
  type: int
  sample: 106
new_gid:
  description: The group ID the files got.
  returned: always
  type: int
  sample: 950
"""

import os
import stat

from ansible.module_utils.basic import AnsibleModule

# Pseudo filesystems: never re-owned (the kernel and udev manage them).
EXCLUDED = ("/proc", "/sys", "/dev")
GID_MAX = 2**32 - 2  # (gid_t)-1 means "unchanged" to chown(2)


def _excluded(path):
    return any(path == top or path.startswith(top + "/") for top in EXCLUDED)


def _walk(root, one_file_system, errors):
    """Yield (path, lstat) for root and everything below it, never following symlinks."""
    try:
        root_st = os.lstat(root)
    except OSError as exc:
        errors.append(f"{root}: {exc.strerror}")
        return
    yield root, root_st
    if not stat.S_ISDIR(root_st.st_mode):
        return
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            errors.append(f"{directory}: {exc.strerror}")
            continue
        subdirs = []
        for entry in entries:
            path = entry.path
            if _excluded(path):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                errors.append(f"{path}: {exc.strerror}")
                continue
            if one_file_system and st.st_dev != root_st.st_dev:
                continue  # a mount point: neither it nor what is below it
            yield path, st
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(path)
        stack.extend(reversed(subdirs))  # depth first, in name order


def _regroup(path, st, new_gid):
    """Change the group of path (lstat st) without following a symlink; keep suid/sgid bits."""
    special_bits = stat.S_ISUID | stat.S_ISGID
    if stat.S_ISREG(st.st_mode) and st.st_mode & special_bits:
        # chown(2) clears these bits on regular files; restore them through an fd
        # on the very same inode (O_NOFOLLOW: a swapped-in symlink is refused).
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                raise OSError(0, "file was replaced while walking")
            os.fchown(fd, -1, new_gid)
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
        finally:
            os.close(fd)
    else:
        os.lchown(path, -1, new_gid)


def main():
    module = AnsibleModule(
        argument_spec={
            "paths": {"type": "list", "elements": "path", "required": True},
            "old_gid": {"type": "int", "required": True},
            "new_gid": {"type": "int", "required": True},
            "one_file_system": {"type": "bool", "default": True},
            "ignore_missing": {"type": "bool", "default": False},
            "max_report": {"type": "int", "default": 20},
        },
        supports_check_mode=True,
    )
    p = module.params
    old_gid, new_gid, max_report = p["old_gid"], p["new_gid"], p["max_report"]
    result = {
        "changed": False,
        "changed_count": 0,
        "changed_paths": [],
        "truncated": False,
        "missing_paths": [],
        "old_gid": old_gid,
        "new_gid": new_gid,
    }

    for name in ("old_gid", "new_gid"):
        if not 0 <= p[name] <= GID_MAX:
            module.fail_json(msg=f"{name} must be a group ID between 0 and {GID_MAX} (got {p[name]}).", **result)
    if max_report < 0:
        module.fail_json(msg=f"max_report must be 0 or more (got {max_report}).", **result)
    if not p["paths"]:
        module.fail_json(msg="paths is empty: list the directories whose files should get the new GID.", **result)
    roots = []
    for path in p["paths"]:
        if not os.path.isabs(path):
            module.fail_json(msg=f"paths must be absolute paths such as /var/lib/tpm: {path!r} is not.", **result)
        path = os.path.normpath(path)
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        if _excluded(path):
            module.fail_json(
                msg=f"{path} is under {', '.join(EXCLUDED)}, which the kernel and udev manage: remove it from paths.",
                **result,
            )
        if not os.path.lexists(path):
            if p["ignore_missing"]:
                result["missing_paths"].append(path)
                continue
            module.fail_json(
                msg=f"{path} does not exist: fix the path in paths, or set ignore_missing: true to skip missing paths.",
                **result,
            )
        if path not in roots:
            roots.append(path)

    if old_gid == new_gid:
        module.exit_json(msg=f"old_gid and new_gid are both {old_gid}: nothing to change.", **result)

    errors = []
    changed_paths = []
    seen = set()
    count = 0
    for root in roots:
        for path, st in _walk(root, p["one_file_system"], errors):
            if st.st_gid != old_gid or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))  # hard links and overlapping paths: once
            if not module.check_mode:
                try:
                    _regroup(path, st, new_gid)
                except OSError as exc:
                    errors.append(f"{path}: {exc.strerror}")
                    continue
            count += 1
            if len(changed_paths) < max_report:
                changed_paths.append(path)

    result.update(
        changed=count > 0,
        changed_count=count,
        changed_paths=changed_paths,
        truncated=count > len(changed_paths),
    )
    if module._diff and count:
        more = f"... and {count - len(changed_paths)} more\n" if result["truncated"] else ""
        result["diff"] = {
            "before_header": f"files with GID {old_gid}",
            "after_header": f"files with GID {new_gid}",
            "before": "".join(f"{path} gid={old_gid}\n" for path in changed_paths) + more,
            "after": "".join(f"{path} gid={new_gid}\n" for path in changed_paths) + more,
        }
    if errors:
        done = "could not be checked or changed" if module.check_mode else "could not be changed"
        module.fail_json(
            msg=(
                f"{len(errors)} file(s) under {', '.join(roots)} {done} from GID {old_gid} to {new_gid} "
                f"({count} were); first: {'; '.join(errors[:5])}. Run as root (become: true) on a local, "
                "writable filesystem, fix the cause and run again: files that already have the new GID are skipped."
            ),
            errors=errors[: max(max_report, 5)],
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
