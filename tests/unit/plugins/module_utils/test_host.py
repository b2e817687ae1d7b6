"""Host inspection helpers (/dev, /sys, /proc) on real files and processes."""

from __future__ import annotations

import os
import subprocess
import sys

from ansible_collections.tpmfleet.tpm.plugins.module_utils import host as th

NOBODY = {"uid": 65534, "user": "nobody", "gid": 65534, "groups": ["nogroup"], "gids": [65534]}


def test_node_info_reports_owner_group_mode(tmp_path):
    f = tmp_path / "node"
    f.write_bytes(b"")
    f.chmod(0o640)
    info = th.node_info(str(f))
    assert info["exists"] and info["mode"] == "0640" and info["char_device"] is False
    assert info["uid"] == os.geteuid() and info["owner"] == th.user_name(os.geteuid())
    assert th.node_info(str(tmp_path / "missing"))["exists"] is False


def test_access_analysis_names_the_missing_group(tmp_path):
    node = {
        "path": "/dev/tpmrm0",
        "exists": True,
        "mode": "0660",
        "uid": 0,
        "owner": "root",
        "gid": 999,
        "group": "tss",
    }
    allowed, why = th.access_analysis(node, NOBODY)
    assert not allowed
    assert "not in group tss (gid 999)" in why and "usermod -aG tss nobody" in why
    in_group = dict(NOBODY, gids=[65534, 999])
    assert th.access_analysis(node, in_group)[0] is True
    owner_only = dict(node, mode="0600")
    allowed, why = th.access_analysis(owner_only, NOBODY)
    assert not allowed and "udev rule" in why


def test_access_analysis_never_advises_joining_root_group():
    """tpm0 as tss:root 0660 is reserved (kernel_rm and abrmd modes): point to the mode, not to root."""
    node = {"path": "/dev/tpm0", "exists": True, "mode": "0660", "uid": 101, "owner": "tss", "gid": 0, "group": "root"}
    allowed, why = th.access_analysis(node, NOBODY)
    assert not allowed
    assert "usermod" not in why
    assert "/dev/tpmrm0" in why and "quote mode direct" in why


def test_find_holders_sees_a_real_process(tmp_path):
    target = tmp_path / "held"
    target.write_bytes(b"")
    proc = subprocess.Popen(
        [sys.executable, "-c", f"import time; f = open({str(target)!r}); print('ok', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout.readline().strip() == b"ok"
        holders, complete = th.find_holders([str(target)])
        assert complete is True
        (h,) = holders
        assert h["pid"] == proc.pid and "python" in h["comm"] and str(target) in h["cmdline"]
        assert h["paths"] == [str(target)]
    finally:
        proc.kill()
        proc.wait()
    assert th.find_holders([str(target)])[0] == []


def test_identity_and_drivers_do_not_raise():
    ident = th.current_identity()
    assert ident["uid"] == os.geteuid() and ident["groups"]
    assert isinstance(th.driver_info(), list)
    assert isinstance(th.device_nodes(), list)
