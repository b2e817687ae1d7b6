"""Make molecule/shared/tests importable; the per-mode host fixtures of every verifier file here."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "tests"))


def mode(host):
    """The quote mode the scenario's inventory gives this host."""
    return host.ansible.get_variables()["tpm_quote_mode"]


def only(*modes):
    def fixture(host):
        if mode(host) not in modes:
            pytest.skip(f"for quote mode {', '.join(modes)}")
        return host

    return fixture


direct_host = pytest.fixture(only("direct"), name="direct_host")
rm_host = pytest.fixture(only("kernel_rm"), name="rm_host")
abrmd_host = pytest.fixture(only("abrmd"), name="abrmd_host")
