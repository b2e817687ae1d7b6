"""Stand-in for the get-pip.py bootstrap script that ansible-test downloads from
ci-files.testing.ansible.com, which is not reachable from tpmfleet's CI.

ansible-test runs it (as __main__) inside each of its empty virtual environments
with pip's install arguments; this installs pip with the interpreter's own
ensurepip, then lets that pip install what was asked, from the configured index.
"""

import runpy
import subprocess
import sys

# get-pip.py's own options, which pip install does not know.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

# In a child process: ensurepip disables pip's configuration files (index, CA
# bundle) in the process that runs it.
subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade"], check=True, stdout=subprocess.DEVNULL)
sys.argv = ["pip", "install", *(arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY)]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
