"""The default scenario's kernel side on every lab VM: drivers, device nodes, --check --diff, no TPM, the collection."""

import os
import subprocess

import pytest
from tpmfleet_molecule import PROJECT, SITE, needs_inventory, recap, run_playbook

DRIVER = {"tis": "tpm_tis", "crb": "tpm_crb"}


def _interface(host):
    return host.ansible.get_variables()["lab_tpm_interface"]


@pytest.fixture
def tpm_host(host):
    """The host, skipping the lab VM that has no TPM."""
    if _interface(host) == "none":
        pytest.skip("this lab VM has no TPM")
    return host


def test_tpm_device_nodes_are_character_devices(tpm_host):
    host = tpm_host
    for path in ("/dev/tpm0", "/dev/tpmrm0"):
        node = host.file(path)
        assert node.exists, f"{path} is missing"
        assert host.run_test(f"test -c {path}").rc == 0, f"{path} is not a character device"
        assert node.mode & 0o007 == 0, f"{path} is world-accessible: {oct(node.mode)}"


def test_tpm_is_served_by_the_driver_of_its_interface(tpm_host):
    host = tpm_host
    driver = host.check_output("readlink -f /sys/class/tpm/tpm0/device/driver")
    assert os.path.basename(driver) == DRIVER[_interface(host)]


def test_builtin_drivers_get_no_modules_load_file(host):
    # The lab kernel has tpm_tis and tpm_crb built in: the role must treat
    # them as loaded and leave /etc/modules-load.d alone.
    builtin = host.file(f"/lib/modules/{host.check_output('uname -r')}/modules.builtin").content_string
    for name in ("tpm_tis", "tpm_crb"):
        assert f"/{name}.ko" in builtin
        assert not host.file(f"/etc/modules-load.d/{name}.conf").exists


def _playbook(*args, limit):
    # Mitogen: the same modules and checks, a third of the wall time under TCG (docs/performance.md);
    # the default strategy runs in the scenario's converge and idempotence steps.
    return run_playbook(SITE, *args, limit=limit, mitogen=True)


@pytest.fixture(scope="module")
def check_diff_run():
    """One `site.yml --check --diff` over every host of the scenario."""
    return _playbook("--check", "--diff", limit="all")


@needs_inventory
def test_check_diff_on_a_converged_host_reports_no_change(host, check_diff_run):
    name = host.backend.get_hostname()
    run = check_diff_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert recap(run, name)["changed"] == 0, run.stdout[-3000:]


@needs_inventory
def test_a_host_without_tpm_fails_with_a_clear_message_when_a_device_is_required(host):
    if _interface(host) != "none":
        pytest.skip("only on the lab VM without a TPM")
    name = host.backend.get_hostname()
    assert not host.file("/dev/tpm0").exists
    run = _playbook("-e", "tpm_kernel_require_device=true", limit=name)
    assert run.returncode != 0
    assert f"No TPM character device (/dev/tpm0) exists on {name}" in run.stdout
    assert "tpm_kernel_drivers" in run.stdout


# On demand (make test-lab-matrix): about 2 minutes that make test cannot afford next to its 60-minute
# budget; make collection still installs, documents, parses and sanity-tests the tarball in every run.
@pytest.mark.skipif(not os.environ.get("TPMFLEET_LAB_MATRIX"), reason="on demand: make test-lab-matrix")
@needs_inventory
def test_the_built_collection_converges_a_host_from_outside_the_repository(host, tmp_path_factory):
    """tests/collection/check.sh: tarball, fresh venv, empty collections dir, tpmfleet.tpm.site, no change."""
    name = host.backend.get_hostname()
    if _interface(host) != "crb":
        pytest.skip("one lab VM is enough: mode-rm")
    work = tmp_path_factory.mktemp("collection")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")},
        "TPMFLEET_COLLECTION_WORK": str(work),
        # The virtual environment `make collection` made, when it ran before.
        "TPMFLEET_COLLECTION_VENV": os.path.join(PROJECT, ".cache", "collection-venv"),
        "TPMFLEET_OUTSIDE_INVENTORY": os.environ["MOLECULE_INVENTORY_FILE"],
        "TPMFLEET_OUTSIDE_LIMIT": name,
        # The offline checks run in `make collection`; here only the converge.
        "TPMFLEET_COLLECTION_ONLY_CONVERGE": "1",
    }
    run = subprocess.run(
        [os.path.join(PROJECT, "tests", "collection", "check.sh")],
        cwd=str(work), env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    assert "tpmfleet.tpm.tpm_verify" in run.stdout, "the run did not go through the collection's roles"
    counts = recap(run, name)
    assert counts["failed"] == 0 and counts["unreachable"] == 0
    assert counts["changed"] == 0, run.stdout[-3000:]
