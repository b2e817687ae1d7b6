"""The report page as rendered by the controller (report_page.render_html), without a browser.

The property: whatever strings a model holds (host names, groups, modes, vendor strings, messages,
problem titles, causes and fixes, findings, problem groups), the page parses to the same elements
and attributes as the page of the same model with every string replaced by x's (nothing from the
data becomes an element or an attribute, no on*= handler, one script of code), and the embedded JSON
is the model exactly. The browser side of the same strings is in test_report_browser.py.
"""

from __future__ import annotations

import copy
import html
import html.parser
import json

import pytest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report, report_attest, report_page
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_models import LONG, contract_model, with_attestation

BASE = contract_model(12)


class _Page(html.parser.HTMLParser):
    """Every start tag with its attribute names, and the text of each <script> by id."""

    def __init__(self):
        super().__init__()
        self.shape = []
        self.handlers = []
        self.scripts = {}
        self._script = None

    def handle_starttag(self, tag, attrs):
        self.shape.append((tag, tuple(sorted(name for name, _v in attrs))))
        self.handlers += [name for name, _v in attrs if name.startswith("on")]
        if tag == "script":
            self._script = dict(attrs).get("id") or "code"
            self.scripts[self._script] = ""

    def handle_startendtag(self, tag, attrs):
        self.shape.append((tag + "/", tuple(sorted(name for name, _v in attrs))))

    def handle_endtag(self, tag):
        self.shape.append(("/" + tag, ()))
        self._script = None

    def handle_data(self, data):
        if self._script:
            self.scripts[self._script] += data


def parse(page):
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def _slots(model):
    """(container, key) of every host-provided or free-text string the page shows."""
    out = [(model, "generated_at"), (model, "inventory"), (model, "generator")]
    for h in model["hosts"]:
        out += [(h, "name"), (h, "mode"), (h, "observed_mode")]
        out += [(h["groups"], k) for k in range(len(h["groups"]))]
        if h["tpm"]:
            out += [(h["tpm"], "vendor_strings"), (h["tpm"], "manufacturer"), (h["tpm"], "firmware_version")]
        out += [(c, key) for c in h["checks"] for key in ("title", "message")]
        out += [(p, key) for p in h["problems"] for key in ("title", "cause", "fix", "group")]
    for f in model["fleet_findings"]:
        out += [(f, key) for key in ("title", "cause", "fix", "command", "limit_file") if f.get(key) is not None]
        out += [(f["hosts"], k) for k in range(len(f["hosts"]))]
    for g in model["problem_groups"]:
        out += [(g, key) for key in ("id", "title", "cause", "fix", "command", "limit_file")]
        out += [(g["hosts"], k) for k in range(len(g["hosts"]))]
        out += [(g["not_in_limit_file"], k) for k in range(len(g["not_in_limit_file"]))]
    return out


NASTY = st.sampled_from(
    ["</script>", "</SCRIPT ", "<script>", "<!--", "-->", "<![CDATA[", "]]>", '" onload="x', "' onerror='x",
     "<img src=x onerror=alert(1)>", "&amp;", "&#x3c;", "\r", "\n", "\x00", "\x7f", "\u0085", "\u2028", "\u2029",
     "\u202e", "\ufeff", "\\", '"', "'", "<", ">", "&", " ", "direct", "", "\U0001f512"]
)  # fmt: skip
STRINGS = st.lists(st.one_of(NASTY, st.text(max_size=12)), max_size=8).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_strings_inject_nothing_and_the_json_round_trips(data):
    model = copy.deepcopy(BASE)
    twin = copy.deepcopy(BASE)
    slots, twin_slots = _slots(model), _slots(twin)
    pool = data.draw(st.lists(STRINGS, min_size=1, max_size=16))  # a few strings, dealt to every slot
    values = [pool[(i * 7) % len(pool)] for i in range(len(slots))]
    for (obj, key), (tobj, tkey), value in zip(slots, twin_slots, values, strict=True):
        obj[key] = value
        tobj[tkey] = "x" * len(value)
    page = report_page.render_html(model)
    parsed = parse(page)
    assert parsed.handlers == []
    assert parsed.shape == parse(report_page.render_html(twin)).shape
    assert sorted(parsed.scripts) == ["code", "fleet-data", "page-config"]
    assert json.loads(parsed.scripts["fleet-data"]) == model
    # browsers end a script at "</script" followed by a space or "/" too, and "<!--" changes how they scan it
    # (html.parser needs "</script>"): the embedded JSON has no "<" at all
    assert "<" not in parsed.scripts["fleet-data"] and "<" not in parsed.scripts["page-config"]


def test_long_and_odd_values_are_quoted_and_cut():
    assert report_page._shown("") == '""'
    assert report_page._shown(" direct") == '" direct"'
    assert report_page._shown("a\rb") == '"a\\rb"'
    assert report_page._shown(None) == "null"
    assert report_page._shown("direct") == "direct"
    assert report_page._shown("", valid=("",)) == ""
    long = report_page._shown("m" * 3000)
    assert len(long) == 60 and long.endswith("\u2026")


def test_statuses_come_from_the_model():
    model = copy.deepcopy(BASE)
    for host, status in zip(model["hosts"], ("not_yet_invented", "quarantined", "unverified"), strict=False):
        host["status"] = status
    listed = report_page.statuses(model)
    names = [s for s, _label, _colour in listed]
    assert set(report.STATUSES) <= set(names)
    assert {"unverified", "quarantined", "not_yet_invented"} <= set(names)
    assert names.index("unverified") < names.index("no_tpm") < names.index("healthy")
    assert len({colour for _s, _l, colour in listed}) == len(listed)
    labels = dict((s, label) for s, label, _c in listed)
    assert labels["not_yet_invented"] == "Not yet invented"
    page = report_page.render_html(model)
    config = json.loads(parse(page).scripts["page-config"])
    assert [s["id"] for s in config["statuses"]] == names
    assert config["modes"] == list(qm.modes())
    for idx, _name in enumerate(names):
        assert f".badge.st-{idx}{{background:" in page


def test_page_of_an_empty_fleet_fetches_nothing():
    model = report.build([], generated_at="2026-01-01T00:00:00Z")
    assert model["problem_groups"] == [] and model["hosts"] == []
    page = report_page.render_html(model)
    assert f'content="{report_page.CSP}"' in page
    markup = page.split('<script type="application/json"')[0]  # the model's own "schema" URL is data
    assert "http://" not in markup.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in markup
    assert " src=" not in page and "<link" not in page
    assert json.loads(parse(page).scripts["fleet-data"]) == model
    assert 'id="modes-requested-total">0<' in page and 'id="modes-observed-total">0<' in page


def test_modes_table_columns_add_up_to_the_host_count():
    """Requested: the valid modes and "invalid"; observed: the modes, unknown, conflicting and not read."""
    model = copy.deepcopy(BASE)
    s = model["summary"]
    assert s["observed_modes"]["not_read"] and s["modes"].get("invalid", 0) == 0
    page = report_page.render_html(model)

    def cell(cell_id):
        return int(page.split(f'id="{cell_id}">', 1)[1].split("<", 1)[0])

    observed = {m: cell(f"observed-{m}") for m in s["observed_modes"]}
    assert observed == s["observed_modes"] and {"unknown", "conflicting", "not_read"} <= set(observed)
    requested = {m: cell(f"mode-{m}") for m in s["modes"]}
    assert sum(observed.values()) == sum(requested.values()) == s["hosts"] == len(model["hosts"])
    assert cell("modes-requested-total") == cell("modes-observed-total") == s["hosts"]
    assert ">not read<" in page


@pytest.mark.parametrize("key", ["invalid", "", "<b>x</b>", "m" * 3000])
def test_chart_shows_any_mode_key_escaped_and_cut(key):
    model = copy.deepcopy(BASE)
    model["summary"]["by_mode"][key] = {"failing": 2}
    page = report_page.render_html(model)
    parsed = parse(page)
    assert "b" not in [tag for tag, _a in parsed.shape]
    assert "m" * 100 not in page.split('id="fleet-data"')[0]


def _string_slots(value):
    """(container, key) of every string inside ``value`` (dicts and lists, recursively)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    out = []
    for key, item in items:
        if isinstance(item, str):
            out.append((value, key))
        else:
            out += _string_slots(item)
    return out


def _attest_slots(model):
    """Every string of the hosts' attestation sections (outcomes, causes, fixes, certificate subjects and issuers,
    replayed PCRs, IMA notes) and of the fleet summary."""
    out = [(model["attestation"], "text")]
    for h in model["hosts"]:
        out += _string_slots(h["attestation"])
    return out


ATTEST_BASE = with_attestation(contract_model(12))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_strings_in_the_attestation_section_inject_nothing(data):
    """The same property over the attestation section and its summary line: control characters, markup, unicode
    and 10 kB values stay text, and the embedded JSON is the model."""
    model, twin = copy.deepcopy(ATTEST_BASE), copy.deepcopy(ATTEST_BASE)
    slots, twin_slots = _slots(model) + _attest_slots(model), _slots(twin) + _attest_slots(twin)
    pool = data.draw(st.lists(st.one_of(STRINGS, st.just(LONG)), min_size=1, max_size=16))
    values = [pool[(i * 7) % len(pool)] for i in range(len(slots))]
    for (obj, key), (tobj, tkey), value in zip(slots, twin_slots, values, strict=True):
        obj[key] = value
        tobj[tkey] = "x" * len(value)
    page = report_page.render_html(model)
    parsed = parse(page)
    assert parsed.handlers == []
    assert parsed.shape == parse(report_page.render_html(twin)).shape
    assert sorted(parsed.scripts) == ["code", "fleet-data", "page-config"]
    assert json.loads(parsed.scripts["fleet-data"]) == model
    assert "<" not in parsed.scripts["fleet-data"] and "<" not in parsed.scripts["page-config"]


def test_the_attestation_summary_line_is_shown_only_with_checks():
    model = copy.deepcopy(ATTEST_BASE)
    page = report_page.render_html(model)
    line = next(t for t in page.splitlines() if 'id="attestation-summary"' in t)
    text = model["attestation"]["text"]
    # the sections of report_models.attestation_section: hosts 1, 7 and 11 pass every check
    assert text == ("3 of 12 hosts ready for attestation; 6 without a chained EK certificate; 4 whose event log does "
                    "not replay; 3 where a consumer user cannot quote; 3 not judged for ima")  # fmt: skip
    assert f"(ek_chain, eventlog, ima, consumer_quote): {html.escape(text)}</p>" in line, line
    model["attestation"]["text"] = "<b onclick=\"window.__xss='summary'\">x</b>\r\x00"
    assert "&lt;b onclick=&quot;window.__xss=&#x27;summary&#x27;&quot;&gt;x&lt;/b&gt;" in report_page.render_html(model)
    plain = copy.deepcopy(BASE)  # a report without tpm_attest_checks
    assert 'id="attestation-summary"' not in report_page.render_html(plain)
    plain["attestation"] = report_attest.fleet_summary(plain["hosts"], [])
    assert 'id="attestation-summary"' not in report_page.render_html(plain)
