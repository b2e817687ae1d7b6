import os
import sys

# The scenarios' shared helpers (molecule/shared/tests).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "tests"))
