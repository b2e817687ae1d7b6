"""ak_parent: choosing the AK's hierarchy from TPM2_PT_PERMANENT, and an endorsement password that never leaks
(in-process against a real swtpm, both quote methods)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from ansible_collections.tpmfleet.tpm.plugins.module_utils import ak_parent
from ansible_collections.tpmfleet.tpm.plugins.module_utils.quote_cli import TOOLS, cli_quote
from ansible_collections.tpmfleet.tpm.plugins.module_utils.quote_verify import parse_pcr_selection
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tcti import TpmAccessError
from ansible_collections.tpmfleet.tpm.plugins.module_utils.tpm import quote_session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NONE_SET = {"owner": False, "endorsement": False, "lockout": False}


@pytest.mark.parametrize(
    ("flags", "given_auth", "expected"),
    [
        (NONE_SET, None, ("endorsement", False)),
        ({**NONE_SET, "owner": True}, None, ("endorsement", False)),
        ({**NONE_SET, "owner": True}, "pw", ("endorsement", False)),  # not set: the password is not presented
        ({**NONE_SET, "endorsement": True}, "pw", ("endorsement", True)),
        ({**NONE_SET, "endorsement": True}, None, ("owner", False)),
        ({"owner": True, "endorsement": True, "lockout": True}, "pw", ("endorsement", True)),
    ],
)
def test_choose_hierarchy(flags, given_auth, expected):
    assert ak_parent.choose_hierarchy(flags, given_auth) == expected


def test_both_passwords_and_none_given_is_a_clear_failure():
    with pytest.raises(TpmAccessError) as info:
        ak_parent.choose_hierarchy({"owner": True, "endorsement": True, "lockout": False}, None)
    assert info.value.kind == "auth"
    assert "endorsementAuthSet and ownerAuthSet" in info.value.msg and "tpm_verify_endorsement_auth" in info.value.msg


def test_permanent_flags_from_tpm2_getcap(swtpm_tcti):
    out = subprocess.run(["tpm2_getcap", "-T", swtpm_tcti, "properties-variable"], capture_output=True, text=True)
    assert ak_parent.auth_flags_from_getcap(out.stdout) == NONE_SET
    assert ak_parent.auth_flags(0b101) == {"owner": True, "endorsement": False, "lockout": True}
    with pytest.raises(TpmAccessError):
        ak_parent.auth_flags_from_getcap("TPM2_PT_PERMANENT:\n  ownerAuthSet: 1\n")


@given(st.text(max_size=80))
def test_an_auth_value_error_never_quotes_the_value(value):
    error = ak_parent.auth_value_error(value)
    ok = "\0" not in value and len(value.encode()) <= ak_parent.MAX_AUTH_BYTES
    assert (error == "") == ok
    if value.strip():
        assert value not in error


# --------------------------------------------------------------------------
# The password never reaches a result, an exception or a command line
# --------------------------------------------------------------------------

SELECTION = parse_pcr_selection("sha256:0,1")
# Any characters after a marker, so that a leak cannot be confused with a handle such as 0x80000000.
SECRETS = (
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=16)
    .map(lambda s: "Pw#" + s)
    .filter(lambda s: len(s.encode()) <= 60)
)


class _Tpm:
    """The module-scoped swtpm, with its current endorsement password."""

    def __init__(self, tcti):
        self.tcti = tcti
        self.auth = ""

    def set_endorsement(self, new):
        from tpm2_pytss import ESAPI
        from tpm2_pytss.constants import ESYS_TR

        with ESAPI(self.tcti) as ectx:
            ectx.tr_set_auth(ESYS_TR.ENDORSEMENT, self.auth.encode())
            ectx.hierarchy_change_auth(ESYS_TR.ENDORSEMENT, new.encode())
        self.auth = new


@pytest.fixture(scope="module")
def tpm(swtpm):
    state = _Tpm(swtpm.tcti)
    yield state
    state.set_endorsement("")


def _pytss(tcti, secret):
    from tpm2_pytss import ESAPI

    with ESAPI(tcti) as ectx:
        return quote_session(ectx, SELECTION, ["11" * 20], "ecc", None, False, {}, secret, [])


def _cli(tcti, secret, commands):
    def run(cmd):
        commands.append(" ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
        return proc.returncode, proc.stdout, proc.stderr

    tools = {t: shutil.which(t) for t in TOOLS}
    return cli_quote(run, tools, tcti, SELECTION, ["22" * 20], "ecc", None, False, {}, secret, [])


def _leaks(text, secret):
    return secret in text or secret.encode().hex() in text or repr(secret)[1:-1] in text


@pytest.mark.swtpm
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=SECRETS)
def test_the_endorsement_password_never_leaks(tpm, secret):
    tpm.set_endorsement(secret)
    commands = []
    for method in ("pytss", "cli"):

        def quote(s, m=method):
            return _pytss(tpm.tcti, s) if m == "pytss" else _cli(tpm.tcti, s, commands)

        info, quotes, _changed = quote(secret)
        assert info["hierarchy"] == "endorsement" and len(quotes) == 1
        assert not _leaks(repr((info, quotes)), secret)

        with pytest.raises(TpmAccessError) as refused:
            quote(secret + "!")
        err = refused.value
        assert err.kind == "auth" and "refused the endorsement password" in err.msg, err.msg
        for text in (err.msg, repr(err.details), str(err)):
            assert not _leaks(text, secret) and not _leaks(text, secret + "!")
    assert commands and not any(_leaks(c, secret) for c in commands)  # nothing visible in ps
