"""file_regroup: real files in a temp dir, re-owned through ansible (we run as root, chown works)."""

from __future__ import annotations

import os
import stat

import pytest

OLD = 54321
NEW = 54322
OTHER = 54399

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's group to an arbitrary GID needs root")


def _gid(path):
    return os.lstat(path).st_gid


@pytest.fixture
def tree(scratch):
    """tree/ with files of the old GID, files of other GIDs, a symlink out of the tree, and an outside file."""
    root = scratch / "tree"
    outside = scratch / "outside"
    outside.mkdir()
    target = outside / "secret"
    target.write_text("outside the tree")
    (root / "sub" / "deeper").mkdir(parents=True)
    files = {
        "root": root,
        "old_file": root / "state.json",
        "old_dir": root / "sub",
        "old_deep": root / "sub" / "deeper" / "key.ctx",
        "other_file": root / "sub" / "other.txt",
        "root_file": root / "rootgid.txt",
        "link": root / "link-out",
        "target": target,
        "setgid_file": root / "sub" / "helper",
    }
    for key in ("old_file", "old_deep", "other_file", "root_file", "setgid_file"):
        files[key].write_text(key)
    os.symlink(target, files["link"])
    for key in ("root", "old_file", "old_dir", "old_deep", "setgid_file", "target"):
        os.chown(files[key], -1, OLD)
    os.lchown(files["link"], -1, OLD)
    os.chown(files["other_file"], -1, OTHER)
    os.chown(files["root_file"], -1, 0)
    os.chmod(files["setgid_file"], 0o2740)
    return files


def _args(tree, **extra):
    return {"paths": [str(tree["root"])], "old_gid": OLD, "new_gid": NEW, **extra}


def test_only_files_with_the_old_gid_change(ansible_run, tree):
    result, _ = ansible_run("file_regroup", _args(tree))
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    # root, state.json, sub, sub/deeper/key.ctx, sub/helper, link-out (the link itself)
    assert result["changed_count"] == 6
    assert result["truncated"] is False
    for key in ("root", "old_file", "old_dir", "old_deep", "setgid_file", "link"):
        assert _gid(tree[key]) == NEW, key
    assert _gid(tree["other_file"]) == OTHER
    assert _gid(tree["root_file"]) == 0
    assert (tree["root"] / "sub" / "deeper").stat().st_gid != NEW  # had root's GID, not OLD
    assert str(tree["old_deep"]) in result["changed_paths"]


def test_symlinks_are_not_followed(ansible_run, tree):
    result, _ = ansible_run("file_regroup", _args(tree))
    assert result["changed"] is True
    assert _gid(tree["link"]) == NEW, "the link itself carries the old GID and is re-owned"
    assert _gid(tree["target"]) == OLD, "the link's target outside the tree must keep its GID"
    assert str(tree["target"]) not in result["changed_paths"]


def test_a_path_that_is_a_symlink_is_not_followed(ansible_run, tree):
    result, _ = ansible_run("file_regroup", {"paths": [str(tree["link"])], "old_gid": OLD, "new_gid": NEW})
    assert result["changed_count"] == 1
    assert result["changed_paths"] == [str(tree["link"])]
    assert _gid(tree["target"]) == OLD


def test_setgid_bit_of_a_regular_file_is_kept(ansible_run, tree):
    ansible_run("file_regroup", _args(tree))
    mode = os.lstat(tree["setgid_file"]).st_mode
    assert mode & stat.S_ISGID, oct(mode)
    assert stat.S_IMODE(mode) == 0o2740


def test_check_mode_changes_nothing_but_reports(ansible_run, tree):
    before = {key: _gid(path) for key, path in tree.items()}
    result, _ = ansible_run("file_regroup", _args(tree), check=True, diff=True)
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    assert result["changed_count"] == 6
    assert {key: _gid(path) for key, path in tree.items()} == before
    diff = result["diff"]
    diff = diff[0] if isinstance(diff, list) else diff
    assert f"{tree['old_file']} gid={OLD}" in diff["before"]
    assert f"{tree['old_file']} gid={NEW}" in diff["after"]


def test_max_report_truncates_the_list_but_not_the_count(ansible_run, tree):
    result, _ = ansible_run("file_regroup", _args(tree, max_report=2))
    assert result["changed_count"] == 6
    assert len(result["changed_paths"]) == 2
    assert result["truncated"] is True
    assert all(_gid(tree[key]) == NEW for key in ("old_file", "old_dir", "old_deep", "setgid_file"))


def test_a_nonexistent_path_fails_clearly_and_changes_nothing(ansible_run, tree, scratch):
    missing = scratch / "no-such-dir"
    result, _ = ansible_run(
        "file_regroup", {"paths": [str(tree["root"]), str(missing)], "old_gid": OLD, "new_gid": NEW}
    )
    assert result["failed"] is True
    assert f"{missing} does not exist" in result["msg"]
    assert "ignore_missing" in result["msg"]
    assert _gid(tree["old_file"]) == OLD, "nothing may change when the input is wrong"


def test_ignore_missing_skips_and_lists_missing_paths(ansible_run, tree, scratch):
    missing = scratch / "no-such-dir"
    args = {"paths": [str(missing), str(tree["root"])], "old_gid": OLD, "new_gid": NEW, "ignore_missing": True}
    result, _ = ansible_run("file_regroup", args)
    assert result.get("failed") is not True, result
    assert result["missing_paths"] == [str(missing)]
    assert result["changed_count"] == 6


@pytest.mark.parametrize(
    ("paths", "needle"),
    [(["relative/dir"], "must be absolute"), (["/proc/self"], "remove it from paths"), (["/dev"], "udev")],
)
def test_relative_and_pseudo_filesystem_paths_are_refused(ansible_run, paths, needle):
    result, _ = ansible_run("file_regroup", {"paths": paths, "old_gid": OLD, "new_gid": NEW})
    assert result["failed"] is True
    assert needle in result["msg"]


def test_second_run_reports_no_change(ansible_run, tree):
    first, _ = ansible_run("file_regroup", _args(tree))
    assert first["changed"] is True
    second, _ = ansible_run("file_regroup", _args(tree))
    assert second.get("failed") is not True, second
    assert second["changed"] is False
    assert second["changed_count"] == 0
    assert second["changed_paths"] == []
    check, _ = ansible_run("file_regroup", _args(tree), check=True, diff=True)
    assert check["changed"] is False
