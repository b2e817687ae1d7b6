# Copyright: tpmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``consumer_quote`` attestation check: each consumer user creates an AK and quotes twice in a row.

The report playbook runs the ``tpm_quote`` action once per user of ``tpm_access_consumer_users`` (``become_user``
that user, the TCTI of the host's quote mode, ``count: 2``: one transient AK, two quotes, each verified on the
controller: nonce, signature, PCR selection and digest). This judges the registered loop: a consumer passes only
with two verified quotes; a consumer that cannot quote (not in the tss group, /dev/tpm0 held by tpm2-abrmd in
direct mode, an unknown user) fails with its cause and fix; a consumer whose quote did not run is ``not_run``.
Cost: one remote call per consumer user and host.
"""

from __future__ import annotations

from ansible_collections.tpmfleet.tpm.plugins.plugin_utils.attest_replay import shown

CHECK = "consumer_quote"
QUOTES = 2
_SITE = "ansible-playbook tpmfleet.tpm.site"
# What to do, by the tpm_quote result's reason (module_utils/tcti.py's TpmAccessError kinds, the action's own).
_FIXES = {
    "permission": "add the user to the TPM's group: list it in tpm_access_consumer_users and run "
    f"{_SITE} --tags tpm_access (the user's next login or service start picks the group up)",
    "busy": "something else holds the TPM node: in direct mode tpm2-abrmd must be stopped and masked and only one "
    "consumer may open /dev/tpm0; run ansible-playbook tpmfleet.tpm.quote_mode on the host, or choose kernel_rm",
    "broker_unreachable": "tpm2-abrmd is not reachable on D-Bus: run ansible-playbook tpmfleet.tpm.quote_mode",
    "tabrmd": "tpm2-abrmd is not reachable on D-Bus: run ansible-playbook tpmfleet.tpm.quote_mode",
    "no_device": f"the mode's TPM node is missing: run {_SITE}",
    "verification": "the quote did not verify on the controller: run the report again; if it persists, the TPM "
    "or the path to it is faulty",
    "become": "the user does not exist on the host, or Ansible cannot become it: create the consumer user (or "
    "remove it from tpm_access_consumer_users) and allow become (sudo) to it",
    "lockout": "the TPM is in dictionary-attack lockout: see the report's lockout check",
}
_DEFAULT_FIX = "see the message; tpm_verify with tpm_verify_user set to this user runs the same quote"


def _outcome(status, reason, cause="", fix="", **details):
    return {"check": CHECK, "status": status, "reason": reason, "cause": cause, "fix": fix, "details": details}


def _results(registered):
    """The per-item results of the registered loop (a dict with ``results``, or the list a cached record keeps)."""
    if isinstance(registered, dict):
        registered = registered.get("results")
    return [r for r in registered if isinstance(r, dict)] if isinstance(registered, list) else None


def _consumer(user, result, tcti):
    """One consumer's ``{user, tcti, status, reason, cause, fix, quotes}``."""
    entry = {"user": user, "tcti": tcti, "quotes": 0}
    if result is None or result.get("skipped"):
        return dict(entry, status="not_run", reason="not_run", cause=f"no quote ran as {shown(user)}",
                    fix="run the report live again")  # fmt: skip
    if result.get("unreachable"):
        cause = f"the host is unreachable: {result.get('msg')}"
        return dict(entry, status="not_run", reason="unreachable", cause=cause,
                    fix="run the report again once the host answers")  # fmt: skip
    quotes = result.get("quotes") if isinstance(result.get("quotes"), list) else []
    entry["quotes"] = len(quotes)
    if result.get("tcti"):
        entry["tcti"] = result["tcti"]
    if not result.get("failed") and result.get("verified") is True and len(quotes) == QUOTES:
        return dict(entry, status="pass", reason="quoted", cause="", fix="")
    msg = str(result.get("msg") or result.get("module_stderr") or "no message")
    reason = result.get("reason")
    if not isinstance(reason, str) or not reason:
        lower = msg.lower()
        become = "become" in lower or "sudo" in lower or "unknown user" in lower or "does not exist" in lower
        reason = "become" if become else ("quote_count" if not result.get("failed") else "failed")
    cause = f"as {shown(user)} over {shown(entry['tcti'])}: " + (
        f"{len(quotes)} verified quotes instead of {QUOTES}" if reason == "quote_count" else msg
    )
    return dict(entry, status="fail", reason=reason, cause=cause, fix=_FIXES.get(reason, _DEFAULT_FIX))


def judge(registered, users, tcti=None):
    """The ``consumer_quote`` outcome of one host: ``registered`` is the loop's result (or the cached list),
    ``users`` the host's tpm_access_consumer_users, ``tcti`` the mode's TCTI."""
    if users is None or users == []:
        return _outcome("not_run", "no_consumers", "tpm_access_consumer_users is empty: there is no consumer to check",
                        "list the users the TPM consumers run as in tpm_access_consumer_users")  # fmt: skip
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        return _outcome("not_run", "bad_users", f"tpm_access_consumer_users is not a list of names: {shown(users)}",
                        "set tpm_access_consumer_users to a list of user names")  # fmt: skip
    results = _results(registered)
    if results is None or (isinstance(registered, dict) and registered.get("skipped") and not results):
        return _outcome("not_run", "no_result", "the consumer quotes did not run for this host (unreachable, no TPM "
                        "read, or an invalid quote mode)", "run the report live once the host's TPM is read",
                        consumers=[])  # fmt: skip
    by_user = {r.get("item"): r for r in results}
    consumers = [_consumer(u, by_user.get(u), tcti) for u in dict.fromkeys(users)]
    failed = [c for c in consumers if c["status"] == "fail"]
    if failed:
        return _outcome("fail", failed[0]["reason"], "; ".join(c["cause"] for c in failed), failed[0]["fix"],
                        consumers=consumers)  # fmt: skip
    missing = [c for c in consumers if c["status"] != "pass"]
    if missing:
        return _outcome("not_run", missing[0]["reason"], "; ".join(c["cause"] for c in missing), missing[0]["fix"],
                        consumers=consumers)  # fmt: skip
    names = ", ".join(shown(c["user"]) for c in consumers)
    return _outcome("pass", "quoted", f"{len(consumers)} consumer(s) created an AK and quoted {QUOTES} times, each "
                    f"quote verified on the controller: {names}", "", consumers=consumers)  # fmt: skip
