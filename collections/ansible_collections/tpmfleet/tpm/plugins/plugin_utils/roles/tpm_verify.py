# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tpm_verify's controller knowledge: the user the checks run as (it must exist on the host), how many quotes,
how long to wait for a busy TPM, the bound of each check, the endorsement password (never shown); which of the
tools the checks use are installed (its plan: the package manager is asked only for a missing one)."""

from __future__ import annotations

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.input_rules import (
    ACCOUNT_NAME_RULE,
    account_name_ok,
    int_range_error,
    kind,
    messages,
    shown,
    truthy,
)

INPUTS = (
    "tpm_verify_user",
    "tpm_verify_quote_count",
    "tpm_verify_busy_retries",
    "tpm_verify_timeout",
    "tpm_verify_endorsement_auth",
    "tpm_quote_mode_tss_user",
)
READS_FROM = ("tpm_verify_install_packages", "__tpm_verify_packages")
# Its plan (``changes``): the tools to install. It runs whatever its plan says (its checks are the run's proof);
# no role before it removes a package, so its plan rests on no part another role changes.
CHANGES_FROM = READS_FROM
PLANS_FROM = ()
CHANGES = ()
ALWAYS = True


def input_errors(v):
    """tpm_verify_*: the user the checks run as, how many quotes, how long to wait for a busy TPM, the bound of
    each check."""
    user = v.get("tpm_verify_user")
    user_error = None
    if user != "" and not account_name_ok(user):
        user_error = (
            f'tpm_verify_user must be the name of the consumer\'s user such as keylime ({ACCOUNT_NAME_RULE}), or "" '
            f"for the connection user (got {shown(user)})."
        )
    return messages(
        user_error,
        _endorsement_auth_error(v.get("tpm_verify_endorsement_auth")),
        int_range_error("tpm_verify_quote_count", v.get("tpm_verify_quote_count"), 1, 20, "a number of quotes"),
        int_range_error("tpm_verify_busy_retries", v.get("tpm_verify_busy_retries"), 0, 60, "a number of attempts"),
        int_range_error("tpm_verify_timeout", v.get("tpm_verify_timeout"), 5, 600, "a number of seconds"),
    )


# TPM2B_AUTH of a SHA-256 name algorithm: at most 64 bytes (the TPM refuses longer ones).
_ENDORSEMENT_AUTH_MAX = 64


def _endorsement_auth_error(value):
    """tpm_verify_endorsement_auth: a string of at most 64 UTF-8 bytes without NUL. The message never shows the
    value (a secret), only its type or length."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return f"tpm_verify_endorsement_auth must be a string (the endorsement password), not {kind(value)}."
    size = len(value.encode("utf-8", "surrogatepass"))
    has_nul = "\x00" in value
    if has_nul or size > _ENDORSEMENT_AUTH_MAX:
        return (
            f"tpm_verify_endorsement_auth must be at most {_ENDORSEMENT_AUTH_MAX} bytes without NUL characters (got "
            f"{size} bytes{', with a NUL' if has_nul else ''}; the value is not shown). Set it to the TPM's "
            "endorsement password, kept in Ansible Vault."
        )
    return None


def _packages(v):
    packages = v.get("__tpm_verify_packages")
    if not truthy(v.get("tpm_verify_install_packages")) or not isinstance(packages, (list, tuple)):
        return []
    return [p for p in packages if isinstance(p, str)]


def reads(v):
    return {"accounts": True, "packages": _packages(v)}


def changes(values, host):
    """The tools of __tpm_verify_packages that the preflight's read did not find installed (``install NAME``; none
    with tpm_verify_install_packages false), or None when the packages were not read (the package manager is
    asked, as before)."""
    wanted = _packages(values)
    if not wanted:
        return []
    installed = (host.facts.get("tpmfleet_host_state") or {}).get("installed_packages")
    if not isinstance(installed, list):
        return None
    return [f"install {name}" for name in wanted if name not in installed]


def account_errors(values, users, groups, host="this host"):
    """tpm_verify_user must exist on ``host`` (getent passwd/group dicts) unless tpm_access makes it (the tss user)."""
    del groups
    user = values.get("tpm_verify_user")
    if user and user not in set(users or {}) and user != values.get("tpm_quote_mode_tss_user"):
        return [
            f"tpm_verify_user: user {user} does not exist on {host}. Set it to the user the TPM consumer runs as "
            '(it must exist before the run), or to "" to run the checks as the connection user.'
        ]
    return []


def host_errors(values, host):
    if not values["tpm_verify_user"]:
        return []
    users, groups = host.accounts()
    return account_errors(values, users, groups, host=host.name)
