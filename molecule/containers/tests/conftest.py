"""Make molecule/shared/tests (the verifiers' shared helpers) importable."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "tests"))

# The lab VM runs under TCG on a busy 2-core machine: give SSH (and Mitogen's
# bootstrap) more than Ansible's default 10 s to connect.
os.environ.setdefault("ANSIBLE_TIMEOUT", "60")
