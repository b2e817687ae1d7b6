"""Shared fixtures: a real swtpm over TCP, dead/hanging endpoints, and running our modules via ansible."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "collections"
COLLECTION = COLLECTIONS / "ansible_collections" / "tpmfleet" / "tpm"
MODULE_UTILS = COLLECTION / "plugins" / "module_utils"
ANSIBLE = Path(sys.executable).parent / "ansible"
# Interpreter the modules run with on "localhost"; set TPMFLEET_TEST_PYTHON to a Python with
# tpm2-pytss 1.2 (Debian 12's python3-tpm2-pytss) to check the modules against it.
MODULE_PYTHON = os.environ.get("TPMFLEET_TEST_PYTHON", sys.executable)

# The plugins import each other through their collection path
# (ansible_collections.tpmfleet.tpm.plugins...), as on a controller and inside AnsiballZ:
# the checkout's collections/ directory is a namespace package root like any collections path.
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

os.environ.setdefault("TSS2_LOG", "all+none")

SWTPM = shutil.which("swtpm")
needs_swtpm = pytest.mark.skipif(SWTPM is None, reason="swtpm binary not installed (apt-get install swtpm)")


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("swtpm") and SWTPM is None:
            item.add_marker(pytest.mark.skip(reason="swtpm binary not installed (apt-get install swtpm swtpm-tools)"))


def free_port_pair():
    """A port P such that P and P+1 are both free on 127.0.0.1 (bind port 0, check P+1)."""
    for _ in range(50):
        with socket.socket() as s1:
            s1.bind(("127.0.0.1", 0))
            port = s1.getsockname()[1]
            if port >= 65534:
                continue
            with socket.socket() as s2:
                try:
                    s2.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port pair found")


class Swtpm:
    def __init__(self, state_dir, startup=True):
        self.state_dir = Path(state_dir)
        self.startup = startup
        self.port = None
        self.proc = None

    @property
    def tcti(self):
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def start(self, deadline_s=10.0):
        flags = "not-need-init,startup-clear" if self.startup else "not-need-init"
        for _attempt in range(3):
            self.port = free_port_pair()
            self.proc = subprocess.Popen(
                [
                    SWTPM, "socket", "--tpm2",
                    "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
                    "--ctrl", f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1",
                    "--flags", flags, "--tpmstate", f"dir={self.state_dir}",
                ],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            end = time.monotonic() + deadline_s
            while time.monotonic() < end and self.proc.poll() is None:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
                time.sleep(0.02)
            self.stop()  # port race or crash: retry on other ports
        raise RuntimeError(f"swtpm did not start: {self.proc.stderr.read().decode(errors='replace')}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def extend_pcrs(tcti, indices=range(8)):
    """Give PCRs distinct non-zero values in every bank (a fresh swtpm has them all zero)."""
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR

    with ESAPI(tcti) as ectx:
        for i in indices:
            ectx.pcr_event(ESYS_TR(i), f"tpmfleet-test-event-{i}".encode())


@pytest.fixture(scope="module")
def swtpm(tmp_path_factory):
    """A running swtpm (TPM 2.0, started up) on free TCP ports; yields the Swtpm (``.tcti`` for the TCTI)."""
    if SWTPM is None:
        pytest.skip("swtpm binary not installed (apt-get install swtpm swtpm-tools)")
    tpm = Swtpm(tmp_path_factory.mktemp("swtpm")).start()
    extend_pcrs(tpm.tcti)
    yield tpm
    tpm.stop()


@pytest.fixture
def swtpm_tcti(swtpm):
    return swtpm.tcti


@pytest.fixture
def stopped_swtpm_tcti():
    """TCTI string for ports where nothing listens (a stopped swtpm)."""
    return f"swtpm:host=127.0.0.1,port={free_port_pair()}"


@pytest.fixture
def hanging_tcti():
    """A TCP endpoint that accepts connections but never answers (hung TPM / wrong service)."""
    port = free_port_pair()
    servers = []
    for p in (port, port + 1):  # data and control port, like swtpm
        srv = socket.socket()
        srv.bind(("127.0.0.1", p))
        srv.listen(8)
        servers.append(srv)
    yield f"swtpm:host=127.0.0.1,port={port}"
    for srv in servers:
        srv.close()


def run_module(module, args, check=False, diff=False, python=None, env=None, timeout=120):
    """Run one of our modules on localhost through ansible (the repo's ansible.cfg, action plugins
    included) and return ``(result_dict, wall_seconds)``."""
    cmd = [
        str(ANSIBLE), "localhost", "-i", "localhost,", "-c", "local",
        "-e", f"ansible_python_interpreter={python or MODULE_PYTHON}",
        "-m", module if "." in module else f"tpmfleet.tpm.{module}",
    ]  # fmt: skip
    if args:
        cmd += ["-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    full_env = dict(os.environ)
    full_env.update(
        {
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            # ansible-core 2.21 leaves `invocation` out of results unless asked (older cores ignore this):
            # the tests read it to see that no_log options are masked.
            "ANSIBLE_INJECT_INVOCATION": "1",
        }
    )
    full_env.update(env or {})
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.monotonic() - start
    try:
        # profile_tasks (callbacks_enabled in ansible.cfg) may print after the JSON document
        out, _end = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])
        result = out["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError(
            f"unparseable ansible output (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        ) from None
    return result, wall


@pytest.fixture
def ansible_run():
    return run_module


@pytest.fixture
def scratch():
    with tempfile.TemporaryDirectory(prefix="tpmfleet-test-") as d:
        yield Path(d)


def role_variables(*roles):
    """What the preflight's public include of ``roles`` puts in the play: each role's defaults/main.yml, then its
    vars/main.yml, every string trusted as a template (as Ansible loads role files). A test stands in for Ansible
    here; the plugins themselves never read a role's files."""
    import yaml
    from ansible.template import trust_as_template

    def trusted(value):
        if isinstance(value, str):
            return trust_as_template(value)
        if isinstance(value, list):
            return [trusted(v) for v in value]
        if isinstance(value, dict):
            return {k: trusted(v) for k, v in value.items()}
        return value

    found = {}
    for role in roles:
        for where in ("defaults", "vars"):
            path = COLLECTION / "roles" / role / where / "main.yml"
            if path.is_file():
                found.update(trusted(yaml.safe_load(path.read_text()) or {}))
    return found
