"""Make molecule/shared/tests importable; the host fixtures of every verifier file here.

test_kernel.py runs on every lab VM of the scenario. The other files check
the quote modes: their tests run on the VMs with a TPM and a consumer (the
inventory group ``consumers``) and skip the VM without a TPM."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "tests"))

EVERY_HOST = {"test_kernel"}


TCTI = {
    "direct": "device:/dev/tpm0",
    "kernel_rm": "device:/dev/tpmrm0",
    "abrmd": "tabrmd:bus_name=com.intel.tss2.Tabrmd,bus_type=system",
}


def consumer_reaches_the_tpm(host):
    """A TPM command as the consumer service's user with the TCTI variables of its live environment."""
    pid = host.check_output("systemctl show -p MainPID --value tpm-consumer.service")
    assert pid != "0", "the consumer service is not running"
    env = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ | grep TCTI= | tr '\\n' ' '")
    return host.run(f"runuser -u tpmagent -- env {env} tpm2_getrandom 8 --hex")


def mode(host):
    """The quote mode the scenario's inventory gives this host (None on the VM without a TPM)."""
    return host.ansible.get_variables().get("tpm_quote_mode")


def only(*modes):
    def fixture(host):
        if mode(host) not in modes:
            pytest.skip(f"for quote mode {', '.join(modes)}")
        return host

    return fixture


direct_host = pytest.fixture(only("direct"), name="direct_host")
rm_host = pytest.fixture(only("kernel_rm"), name="rm_host")
abrmd_host = pytest.fixture(only("abrmd"), name="abrmd_host")


@pytest.fixture(autouse=True)
def _consumer_hosts_for_the_mode_checks(request):
    """Skip the quote-mode checks on the VM that has no TPM and no consumer."""
    if request.module.__name__.rpartition(".")[2] in EVERY_HOST or "host" not in request.fixturenames:
        return
    host = request.getfixturevalue("host")
    if "consumers" not in host.ansible.get_variables().get("group_names", []):
        pytest.skip("for the lab VMs with a TPM and a consumer")
