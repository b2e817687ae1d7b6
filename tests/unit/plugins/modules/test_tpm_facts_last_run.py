"""tpm_facts returns the record of the last ansible-pull run (/var/lib/tpmfleet/last-run.json), and only its
known fields, whatever the file holds."""

from __future__ import annotations

import json
import tempfile

from ansible_collections.tpmfleet.tpm.plugins.modules.tpm_facts import LAST_RUN_FIELDS, LAST_RUN_MAX_BYTES, last_run
from hypothesis import given
from hypothesis import strategies as st

RECORD = {
    "version": 1,
    "started_at": "2026-12-06T04:00:00+00:00",
    "finished_at": "2026-12-06T04:03:10+00:00",
    "result": "ok",
    "ok": 120,
    "changed": 0,
    "failed": 0,
    "unreachable": 0,
    "skipped": 40,
    "rescued": 0,
    "commit": "0123456789abcdef0123456789abcdef01234567",
    "quote_mode": "direct",
    "ansible_core": "2.19.14",
    "source": "callback",
    "rc": 0,
    "run_id": "f3c5",
    "hosts": ["localhost"],
}


def test_the_record_is_returned_through_ansible(ansible_run, tmp_path):
    path = tmp_path / "last-run.json"
    path.write_text(json.dumps({**RECORD, "token": "s3cret"}))
    r, _wall = ansible_run("tpm_facts", {"last_run_path": str(path)}, check=True)
    assert not r.get("failed"), r.get("msg")
    got = r["ansible_facts"]["tpm"]["last_run"]
    assert got == {"path": str(path), "exists": True, **{k: RECORD.get(k) for k in LAST_RUN_FIELDS}}
    assert "s3cret" not in json.dumps(r)


def test_no_record_is_not_an_error(ansible_run, tmp_path):
    r, _wall = ansible_run("tpm_facts", {"last_run_path": str(tmp_path / "none.json")})
    tpm = r["ansible_facts"]["tpm"]
    assert tpm["last_run"] == {"path": str(tmp_path / "none.json"), "exists": False}
    assert not [e for e in tpm["errors"] if e["step"] == "last_run"]


def test_an_invalid_record_is_an_error_entry_not_a_failure(ansible_run, tmp_path):
    path = tmp_path / "last-run.json"
    path.write_text("{not json")
    r, _wall = ansible_run("tpm_facts", {"last_run_path": str(path)})
    assert not r.get("failed")
    tpm = r["ansible_facts"]["tpm"]
    assert tpm["last_run"] == {"path": str(path), "exists": True}
    [error] = [e for e in tpm["errors"] if e["step"] == "last_run"]
    assert error["reason"] == "unreadable" and json.dumps(str(path)) in error["msg"]


def test_fields_of_the_wrong_type_are_left_out(tmp_path):
    path = tmp_path / "last-run.json"
    path.write_text(json.dumps({**RECORD, "changed": True, "ok": "7", "commit": 5}))
    facts, error = last_run(str(path))
    assert error is None
    assert (facts["changed"], facts["ok"], facts["commit"]) == (None, None, None)
    assert facts["result"] == "ok"


def test_an_oversized_record_is_refused(tmp_path):
    path = tmp_path / "last-run.json"
    path.write_text(json.dumps({**RECORD, "reason": "x" * LAST_RUN_MAX_BYTES}))
    facts, error = last_run(str(path))
    assert facts == {"path": str(path), "exists": True} and "larger than" in error["msg"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
RECORDS = st.fixed_dictionaries({}, optional={k: JSON_VALUES for k in RECORD})


@given(st.binary(max_size=300) | (JSON_VALUES | RECORDS).map(lambda value: json.dumps(value).encode()))
def test_any_file_content_gives_known_fields_of_their_types(content):
    with tempfile.NamedTemporaryFile() as handle:
        handle.write(content)
        handle.flush()
        facts, error = last_run(handle.name)
    assert set(facts) <= {"path", "exists", *LAST_RUN_FIELDS}
    for name, kind in LAST_RUN_FIELDS.items():
        assert facts.get(name) is None or (isinstance(facts[name], kind) and not isinstance(facts[name], bool))
    assert error is None or error["step"] == "last_run"
