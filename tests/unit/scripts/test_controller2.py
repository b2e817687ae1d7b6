"""The second controller's cores (scripts/controller2.sh): each core's complete pin list, the refusal of a core
it does not have, and the build key covering every core's pins. The build itself and the tests run in it are
make controller2's and tests/lab/core_versions.sh's (docs/controllers.md)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from conftest import REPO

SCRIPT = REPO / "scripts" / "controller2.sh"


def _run(*args, script=SCRIPT):
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=60, check=False)


def _pins(core):
    r = _run("pins", core)
    assert r.returncode == 0, r.stderr
    pins = {}
    for line in r.stdout.splitlines():
        if not line or line.startswith("#"):
            continue
        name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", line).groups()
        assert name.lower() not in pins, f"{name} pinned twice for {core}"
        pins[name.lower()] = version
    return pins


def test_the_cores_are_the_newest_first():
    r = _run("cores")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2.21", "2.20"]


@pytest.mark.parametrize("core", ["2.21", "2.20"])
def test_each_core_pins_its_own_ansible_core_and_the_matching_ansible_package(core):
    pins = _pins(core)
    assert re.fullmatch(re.escape(core) + r"\.\d+", pins["ansible-core"])
    # The ansible package N ships with ansible-core 2.(N+7): ansible 13 needs 2.20, ansible 14 needs 2.21.
    assert int(pins["ansible"].split(".")[0]) + 7 == int(core.split(".")[1])


def test_an_older_core_replaces_only_the_pins_its_file_names():
    newest, older = _pins("2.21"), _pins("2.20")
    own = {line.split("==")[0].lower() for line in (REPO / "requirements-controller2-2.20.txt").read_text().splitlines()
           if line and not line.startswith("#")}  # fmt: skip
    assert own == {"ansible-core", "ansible"}
    assert set(newest) == set(older)
    assert {name for name in newest if newest[name] != older[name]} == own


@pytest.mark.parametrize("core", ["2.19", " 2.20", "2.20\n", "", "2.21;true"])
def test_a_core_it_does_not_have_is_refused_with_the_choices(core):
    r = _run("pins", core)
    assert r.returncode == 1
    assert f"the core {json.dumps(core)} (--core or CONTROLLER2_CORE) is not one this controller has" in r.stderr
    assert "use one of 2.21 2.20" in r.stderr
    assert r.stdout == ""


_BUILDS = os.geteuid() == 0 and shutil.which("debootstrap") is not None


@pytest.mark.skipif(not _BUILDS, reason="the build commands need root and debootstrap (the main controller has both)")
def test_the_build_key_covers_every_cores_pins(tmp_path):
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "controller2.sh"
    shutil.copy(SCRIPT, script)
    for name in ("requirements-controller2.txt", "requirements-controller2-2.20.txt"):
        shutil.copy(REPO / name, tmp_path / name)
    before = _run("path", script=script)
    assert before.returncode == 0, before.stderr
    with open(tmp_path / "requirements-controller2-2.20.txt", "a") as f:
        f.write("# changed\n")
    after = _run("path", script=script)
    assert after.returncode == 0, after.stderr
    assert before.stdout.startswith(str(tmp_path / ".cache" / "controller2"))
    assert before.stdout != after.stdout
    assert not (tmp_path / ".cache").exists()
