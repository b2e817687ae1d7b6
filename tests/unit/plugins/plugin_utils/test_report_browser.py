"""The report page in Debian's headless Chromium (Selenium with the system chromedriver; nothing downloaded).

Loads pages rendered from synthetic fleets and checks what an operator does with them: the summary
numbers equal fleet.json, filtering (text, status, mode, docker GID), sorting by every column, paging,
the keyboard, the problems view, and that every host's detail view opens and shows its full values,
whatever its strings (CR, NUL, markup, 10 kB): nothing from the data runs as markup, no console error.
A screenshot is kept under tests/artifacts/. Timings are the benchmark's business
(benchmarks/report_bench.py), never asserted here.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import quote_mode as qm
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report, report_page
from headless_chromium import CHROMEDRIVER, CHROMIUM, installed, start_browser
from report_models import HOSTILE_NAMES, contract_model, hostile_model, scaled_model

REPO = Path(__file__).resolve().parents[4]
ARTIFACTS = REPO / "tests" / "artifacts"

if not installed():
    pytest.skip(
        f"Chromium is not installed ({CHROMIUM} and {CHROMEDRIVER} are missing): apt-get install chromium "
        "chromium-driver, or run scripts/setup.sh",
        allow_module_level=True,
    )

# Imported after the skip: only needed where Chromium is installed.
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait


@pytest.fixture(scope="module")
def browser():
    with tempfile.TemporaryDirectory(prefix="tpmfleet-report-") as tmp:
        driver = start_browser(os.path.join(tmp, "profile"), console_log=True)
        try:
            yield driver, Path(tmp)
        finally:
            driver.quit()


def load(browser, model, name, page_only=False):
    """Write the report of ``model`` and open its page; returns (driver, the model as read from fleet.json).

    ``page_only``: write index.html alone and return ``model`` itself (fleet.json and junit.xml of 10,000
    hosts take longer to write than the page).
    """
    driver, tmp = browser
    if page_only:
        index = tmp / f"{name}.html"
        index.write_text(report_page.render_html(model), encoding="utf-8")
        paths = {"index.html": index}
    else:
        paths = report_page.write_report(model, str(tmp / name))
    driver.get(Path(paths["index.html"]).as_uri())
    assert driver.execute_script("return document.documentElement.dataset.ready") == "1"
    return driver, model if page_only else json.loads(Path(paths["fleet.json"]).read_text())


@pytest.fixture(scope="module")
def hostile(browser):
    return load(browser, hostile_model(), "hostile")


def no_errors(driver):
    assert [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")] == []
    assert driver.execute_script("return window.__xss === undefined")


def page_rows(driver):
    """Indices (into fleet.json's hosts) of the rows of the table's current page."""
    return driver.execute_script("return Array.from(document.querySelectorAll('#hosts tbody tr'), r => +r.dataset.i)")


def matching(driver):
    """Indices of every host the filters match, in table order (all pages)."""
    return driver.execute_script("return window.tpmfleetReport.rows()")


def click(driver, element):
    """Click ``element`` once scrolled to the middle of the window (not under the sticky table header)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def set_filter(driver, text="", status="", mode=""):
    box = driver.find_element(By.ID, "filter")
    box.clear()
    box.send_keys(text or " ")  # an input event even for an empty query
    Select(driver.find_element(By.ID, "status-filter")).select_by_value(status)
    Select(driver.find_element(By.ID, "mode-filter")).select_by_value(mode)


def test_loads_without_errors_or_injected_markup(hostile):
    driver, model = hostile
    assert driver.title == f"tpmfleet report: {len(model['hosts'])} hosts"
    no_errors(driver)
    assert driver.find_elements(By.CSS_SELECTOR, "img, #hosts script, b[onclick], i[onmouseover], svg[onload]") == []
    assert len(page_rows(driver)) == report_page.PAGE_SIZE
    assert page_rows(driver) == list(range(report_page.PAGE_SIZE))  # problems first, as in fleet.json


def test_summary_numbers_equal_fleet_json(hostile):
    driver, model = hostile
    s = model["summary"]
    assert driver.find_element(By.CSS_SELECTOR, "#count-hosts .n").text == str(s["hosts"])
    for status, n in s["status"].items():
        assert driver.find_element(By.CSS_SELECTOR, f"#count-{status} .n").text == str(n), status
    for mode, n in s["modes"].items():
        assert driver.find_element(By.ID, f"mode-{mode}").text == str(n), mode
    assert driver.find_element(By.ID, "shown-count").text == str(s["hosts"])
    segments = driver.find_elements(By.CSS_SELECTOR, "#mode-chart rect title")
    assert len(segments) == sum(1 for st in s["by_mode"].values() for n in st.values() if n)


def test_mode_filter_offers_valid_modes_and_invalid_and_nothing_raw(hostile):
    driver, model = hostile
    select = Select(driver.find_element(By.ID, "mode-filter"))
    assert [o.get_attribute("value") for o in select.options] == ["", *qm.modes(), "invalid"]
    assert [o.text for o in select.options] == ["all", *qm.modes(), "invalid"]
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    set_filter(driver, mode="invalid")
    want = [i for i, h in enumerate(model["hosts"]) if h["mode"] not in qm.modes()]
    assert matching(driver) == want and len(want) == 5  # "", " direct", 3000 characters, markup, null
    set_filter(driver, mode="direct")
    assert matching(driver) == [i for i, h in enumerate(model["hosts"]) if h["mode"] == "direct"]
    # odd modes are shown quoted and cut in the table
    set_filter(driver, mode="invalid")
    cells = driver.execute_script("return Array.from(document.querySelectorAll('#hosts tbody tr'), "
                                  "r => r.cells[2].textContent)")  # fmt: skip
    assert '""' in cells and '" direct"' in cells and "(not set)" in cells
    assert all(len(c) <= 120 for c in cells)
    set_filter(driver)


def test_filtering_by_text_status_and_docker_gid(hostile):
    driver, model = hostile
    hosts = model["hosts"]
    target = next(i for i, h in enumerate(hosts) if h["name"].startswith("attest-0017"))
    set_filter(driver, text=hosts[target]["name"])
    assert matching(driver) == [target] and page_rows(driver) == [target]
    assert driver.find_element(By.ID, "shown-count").text == "1"
    set_filter(driver, status="unreachable")
    want = [i for i, h in enumerate(hosts) if h["status"] == "unreachable"]
    assert matching(driver) == want and want
    set_filter(driver, text="lockout", mode="abrmd")
    want = [i for i, h in enumerate(hosts) if h["mode"] == "abrmd"
            and any("lockout" in f"{p['title']} {p['cause']}".lower() for p in h["problems"])]  # fmt: skip
    assert matching(driver) == want and want
    set_filter(driver, text="4003")  # a docker GID only the hostile host 3 has
    assert [hosts[i]["name"] for i in matching(driver)] == [HOSTILE_NAMES[3]]
    set_filter(driver, text="999")
    assert set(matching(driver)) >= {i for i, h in enumerate(hosts) if (h["observed"] or {}).get("docker_gid") == 999}
    set_filter(driver)
    assert len(matching(driver)) == len(hosts)


def test_sorting_by_every_column_and_paging(hostile):
    driver, model = hostile
    hosts = model["hosts"]
    buttons = driver.find_elements(By.CSS_SELECTOR, "#hosts thead button.sort")
    assert [b.text for b in buttons] == [label for label, _w in report_page.COLUMNS]
    for k, b in enumerate(buttons):
        b.click()
        asc = matching(driver)
        assert sorted(asc) == list(range(len(hosts)))
        assert b.find_element(By.XPATH, "..").get_attribute("aria-sort") == "ascending"
        b.click()
        assert matching(driver) == asc[::-1], b.text
        assert b.find_element(By.XPATH, "..").get_attribute("aria-sort") == "descending"
        if k == 1:
            assert [hosts[i]["name"].lower() for i in asc] == sorted(h["name"].lower() for h in hosts)
        if k == 0:
            assert [report.STATUSES.index(hosts[i]["status"]) for i in asc] == sorted(
                report.STATUSES.index(h["status"]) for h in hosts
            )
        if k == 8:
            gids = [(hosts[i]["observed"] or {}).get("docker_gid") for i in asc]
            known = [g for g in gids if g is not None]
            assert known == sorted(known) and gids[: len(known)] == known  # unread GIDs last
    buttons[1].click()  # host, ascending
    first = matching(driver)
    assert page_rows(driver) == first[: report_page.PAGE_SIZE]
    driver.find_element(By.ID, "page-next").click()
    assert page_rows(driver) == first[report_page.PAGE_SIZE : 2 * report_page.PAGE_SIZE]
    driver.find_element(By.ID, "page-first").click()
    Select(driver.find_element(By.ID, "page-size")).select_by_value("500")
    assert page_rows(driver) == first
    no_errors(driver)


def test_keyboard(hostile):
    driver, _model = hostile
    sort = driver.find_element(By.CSS_SELECTOR, "#hosts thead button.sort[data-col='0']")
    driver.execute_script("arguments[0].focus()", sort)
    sort.send_keys(Keys.ENTER)
    assert sort.find_element(By.XPATH, "..").get_attribute("aria-sort") == "ascending"
    link = driver.find_element(By.CSS_SELECTOR, "#hosts tbody button.host-link")
    driver.execute_script("arguments[0].focus()", link)
    link.send_keys(Keys.ENTER)
    assert driver.find_element(By.ID, "detail").is_displayed()
    assert driver.switch_to.active_element.get_attribute("id") == "detail-close"
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    assert not driver.find_element(By.ID, "detail").is_displayed()
    assert driver.switch_to.active_element == link


def test_every_hostile_host_detail_opens_with_full_values(hostile):
    driver, model = hostile
    Select(driver.find_element(By.ID, "page-size")).select_by_value("500")
    set_filter(driver)
    hostile_rows = [i for i, h in enumerate(model["hosts"]) if h["name"] in HOSTILE_NAMES]
    assert len(hostile_rows) == len(HOSTILE_NAMES)
    # cut cells: no row taller than a few lines, whatever its values
    assert driver.execute_script("return Math.max(...Array.from(document.querySelectorAll('#hosts tbody tr'), "
                                 "r => r.getBoundingClientRect().height))") < 60  # fmt: skip
    for i in hostile_rows:
        h = model["hosts"][i]
        click(driver, driver.find_element(By.CSS_SELECTOR, f"#hosts tbody button.host-link[data-i='{i}']"))
        shown = driver.execute_script(
            "const d = document.getElementById('detail');"
            "return [d.hidden, d.dataset.i, d.querySelector('h3').textContent, d.textContent];"
        )
        assert shown[:3] == [False, str(i), h["name"]], repr(h["name"][:40])
        text = shown[3]
        values = [*h["groups"], *(v for p in h["problems"] for v in (p["title"], p["cause"], p["fix"]))]
        values += [c["message"] for c in h["checks"] if c["message"]]
        if h["tpm"] and h["tpm"].get("vendor_strings"):
            values.append(h["tpm"]["vendor_strings"])
        mode = h["mode"]
        values.append("(not set)" if mode is None else mode if mode in qm.modes() else json.dumps(mode))
        for o in h["attestation"]["outcomes"]:  # every outcome's cause and fix, whole (10 kB, CR, NUL, markup)
            values += [v for v in (o["cause"], o["fix"]) if v]
        values += [c["subject"] for c in h["attestation"]["outcomes"][0]["details"]["certificates"]]
        for v in values:
            assert v in text, (repr(h["name"][:40]), repr(v[:60]))
        driver.find_element(By.ID, "detail-close").click()
    no_errors(driver)


def all_groups(driver):
    """Every problem group of the problems view (its "Show more" button clicked until none is left)."""
    more = driver.find_element(By.CSS_SELECTOR, "#problems button.more-groups")
    while more.is_displayed():
        click(driver, more)
    return driver.find_elements(By.CSS_SELECTOR, "#problems .pgroup")


def open_hosts(driver, details):
    """Indices (into fleet.json's hosts) of the host links of a <details> host list, once opened."""
    click(driver, details.find_element(By.CSS_SELECTOR, "summary"))
    # the list is built on the (asynchronous) toggle event
    links = WebDriverWait(driver, 10).until(lambda _d: details.find_elements(By.CSS_SELECTOR, ".hostlist .host-link"))
    return [int(b.get_attribute("data-i")) for b in links]


def test_problems_view_renders_the_models_groups(hostile):
    """One block per problem group of fleet.json, in its order, with its count, command, limit file and hosts;
    the busy-TPM hosts of one cause are one group (the model strips the host's name from the fix)."""
    driver, model = hostile
    groups = all_groups(driver)
    assert len(groups) == len(model["problem_groups"]) > 8
    index = {id(h): i for i, h in enumerate(model["hosts"])}
    by_name = {h["name"]: index[id(h)] for h in model["hosts"]}
    for g, want in zip(groups, model["problem_groups"], strict=True):
        n = want["count"]
        assert g.find_element(By.CSS_SELECTOR, ".count").text == f"{n} host{'s' if n != 1 else ''}"
        assert bool(g.find_elements(By.CSS_SELECTOR, ".cmd code")) == bool(want["command"])
        if want["limit_file"]:
            assert g.find_element(By.CSS_SELECTOR, ".limit a").get_attribute("href").endswith(want["limit_file"])
        if want["command"] and want["command"].isprintable():
            assert g.find_element(By.CSS_SELECTOR, ".cmd code").text == want["command"]
            assert f"--limit @report/limits/{want['id']}.txt" in want["command"]
    sizes = []
    for title in ("TPM busy: a consumer holds /dev/tpm0", "Cannot open the TPM (busy)"):
        busy = [i for i, h in enumerate(model["hosts"]) if h["name"] not in HOSTILE_NAMES
                and any(p["title"] == title for p in h["problems"])]  # fmt: skip
        (k,) = [k for k, g in enumerate(model["problem_groups"]) if g["title"] == title and
                {by_name[n] for n in g["hosts"]} & set(busy)]  # fmt: skip
        assert groups[k].find_element(By.CSS_SELECTOR, ".ptitle").text == title
        assert sorted(open_hosts(driver, groups[k].find_element(By.CSS_SELECTOR, "details.group-hosts"))) == busy
        sizes.append(len(busy))
    assert sizes[0] > 1  # the direct-mode hosts whose TPM a consumer held: one group, one command
    # hosts a limit file cannot carry are listed in their group, with why
    outside = [k for k, g in enumerate(model["problem_groups"]) if g["not_in_limit_file"]]
    assert outside
    for k in outside:
        det = groups[k].find_element(By.CSS_SELECTOR, "details.outside-limit")
        names = model["problem_groups"][k]["not_in_limit_file"]
        assert det.find_element(By.CSS_SELECTOR, "summary").text.startswith(f"{len(names)} host")
        assert open_hosts(driver, det) == [by_name[n] for n in names]
        assert "cannot carry these names" in det.text
    links = groups[0].find_elements(By.CSS_SELECTOR, ".hostlist button.host-link") or []
    first = model["problem_groups"][0]
    if not links:
        open_hosts(driver, groups[0].find_element(By.CSS_SELECTOR, "details.group-hosts"))
        links = groups[0].find_elements(By.CSS_SELECTOR, ".hostlist button.host-link")
    click(driver, links[0])
    assert first["fix"].split(" ")[0] in driver.find_element(By.ID, "detail").text
    driver.find_element(By.ID, "detail-close").click()
    # the table's problem cell has the title only; cause and fix are in the detail view
    host = model["hosts"][busy[0]]
    cell = driver.execute_script(
        f"return document.querySelector(\"#hosts tbody tr[data-i='{busy[0]}']\").cells[9].textContent"
    )
    assert cell.startswith(host["problems"][0]["title"]) and host["problems"][0]["cause"] not in cell
    no_errors(driver)


def test_contract_model_statuses_and_problem_groups(browser):
    driver, model = load(browser, contract_model(), "contract")
    no_errors(driver)
    s = model["summary"]
    assert s["status"]["unverified"] and s["status"]["quarantined"]
    for status in ("unverified", "quarantined"):
        assert driver.find_element(By.CSS_SELECTOR, f"#count-{status} .n").text == str(s["status"][status])
        set_filter(driver, status=status)
        assert matching(driver) == [i for i, h in enumerate(model["hosts"]) if h["status"] == status]
    assert driver.find_element(By.CSS_SELECTOR, "#count-quarantined .l").text == "Quarantined"
    titles = [t.get_attribute("textContent") for t in driver.find_elements(By.CSS_SELECTOR, "#mode-chart rect title")]
    assert any(t.endswith(" Unverified") for t in titles) and any(t.endswith(" Quarantined") for t in titles)
    colours = driver.execute_script(
        "return ['unverified', 'healthy', 'quarantined'].map(s => getComputedStyle("
        "document.querySelector('#count-' + s + ' .n')).color)"
    )
    assert len(set(colours)) == 3
    # problem groups come from the model: its order, counts, commands (copy button) and limit files
    groups = driver.find_elements(By.CSS_SELECTOR, "#problems .pgroup")
    assert len(groups) == min(8, len(model["problem_groups"]))
    assert [g.find_element(By.CSS_SELECTOR, ".ptitle").text for g in groups] == [
        g["title"] for g in model["problem_groups"][:8]
    ]
    k = next(k for k, g in enumerate(model["problem_groups"][:8]) if g["command"])
    want = model["problem_groups"][k]
    assert groups[k].find_element(By.CSS_SELECTOR, ".cmd code").text == want["command"]
    assert groups[k].find_element(By.CSS_SELECTOR, ".limit a").get_attribute("href").endswith(want["limit_file"])
    button = groups[k].find_element(By.CSS_SELECTOR, ".cmd button.copy")
    click(driver, button)
    WebDriverWait(driver, 10).until(lambda _d: button.get_attribute("data-copied"))
    assert button.get_attribute("data-copied") == "ok"
    assert [model["hosts"][i]["name"] for i in open_hosts(driver, groups[k])] == want["hosts"][:500]
    no_errors(driver)


def test_summary_adds_up_findings_commands_and_not_run_checks(browser):
    """The modes table's requested and observed columns each add up to the host count (unknown, conflicting
    and not read included); fleet findings show their command and limit file; a check that could not run
    is labelled NOT RUN in its own style, apart from SKIP and FAIL."""
    driver, model = load(browser, contract_model(), "contract-summary")
    s = model["summary"]
    observed = {m: int(driver.find_element(By.ID, f"observed-{m}").text) for m in s["observed_modes"]}
    assert observed == s["observed_modes"] and {"unknown", "conflicting", "not_read"} <= set(observed)
    assert observed["not_read"] == sum(1 for h in model["hosts"] if h["tpm"] is None) > 0
    requested = {m: int(driver.find_element(By.ID, f"mode-{m}").text) for m in s["modes"]}
    assert sum(requested.values()) == sum(observed.values()) == s["hosts"] == sum(s["status"].values())
    assert driver.find_element(By.ID, "modes-requested-total").text == str(s["hosts"])
    assert driver.find_element(By.ID, "modes-observed-total").text == str(s["hosts"])
    # fleet findings: every one with hosts has its command (copy button) and limit file
    shown = driver.find_elements(By.CSS_SELECTOR, "#findings .finding")
    findings = [f for f in model["fleet_findings"] if f["severity"] != "info"]
    assert findings and len(shown) >= len(findings)
    for box, f in zip(shown, findings, strict=False):
        assert box.find_element(By.CSS_SELECTOR, ".cmd code").text == f["command"]
        assert f["limit_file"] in box.find_element(By.CSS_SELECTOR, "details.finding-hosts summary").text
        assert box.find_elements(By.CSS_SELECTOR, ".cmd button.copy")
    # a check that applies but could not run: NOT RUN, styled apart from SKIP, FAIL and PASS
    k = next(i for i, h in enumerate(model["hosts"]) if h["status"] == "unverified")
    driver.execute_script("window.tpmfleetReport.showDetail(arguments[0])", k)
    labels = {}
    for li in driver.find_elements(By.CSS_SELECTOR, "#detail li"):
        badge = li.find_element(By.CSS_SELECTOR, ".cst")
        labels.setdefault(li.get_attribute("class"), (badge.text, badge.value_of_css_property("background-color")))
    statuses = [c["status"] for c in model["hosts"][k]["checks"]]
    assert "not_run" in statuses and labels["check-not_run"][0] == "NOT RUN"
    colours = {cls: colour for cls, (_t, colour) in labels.items()}
    assert len(set(colours.values())) == len(colours) >= 3, labels
    driver.find_element(By.ID, "detail-close").click()
    no_errors(driver)


def test_ten_thousand_hosts_load_filter_sort(browser):
    driver, model = load(browser, scaled_model(10_000), "scale", page_only=True)
    hosts = model["hosts"]
    assert driver.find_element(By.CSS_SELECTOR, "#count-hosts .n").text == "10000"
    assert len(page_rows(driver)) == report_page.PAGE_SIZE
    set_filter(driver, text=hosts[7_777]["name"])
    assert matching(driver) == [7_777]
    set_filter(driver, status="failing", mode="abrmd")
    assert matching(driver) == [i for i, h in enumerate(hosts) if h["status"] == "failing" and h["mode"] == "abrmd"]
    set_filter(driver)
    driver.find_element(By.CSS_SELECTOR, "#hosts thead button.sort[data-col='1']").click()
    want = sorted(range(len(hosts)), key=lambda i: (hosts[i]["name"].lower(), i))
    assert page_rows(driver) == want[: report_page.PAGE_SIZE]
    driver.find_element(By.ID, "page-last").click()
    assert page_rows(driver) == want[-(len(hosts) % report_page.PAGE_SIZE or report_page.PAGE_SIZE) :]
    failing = next(i for i in want[-report_page.PAGE_SIZE :] if hosts[i]["problems"])
    click(driver, driver.find_element(By.CSS_SELECTOR, f"#hosts tbody button.host-link[data-i='{failing}']"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    no_errors(driver)


def test_stale_and_uncached_hosts_show_their_data_age(browser):
    import datetime

    from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report_cache
    from fleet_fixtures import host_record

    now = datetime.datetime(2026, 12, 6, 12, 0, 0, tzinfo=datetime.UTC)

    def cached(name, read_at):
        r = host_record(name, "direct")
        fact = {k: r[k] for k in ("requested_mode", "profile", "mode_error", "settings", "facts", "quote")}
        return report_cache.from_record(name, dict(fact, read_at=read_at), r["groups"])

    records = [cached("fresh", "2026-12-06T11:00:00Z"), cached("old", "2026-12-01T12:00:00Z"),
               report_cache.from_record("never", None, ["tpm_hosts"])]  # fmt: skip
    model = report.build(records, now=now, source="cache")
    driver, model = load(browser, model, "cache")
    assert (
        "from the fact cache (no host contacted): stale (older than 86400 s) 1, without cached data 1"
        in driver.find_element(By.CLASS_NAME, "meta").text
    )
    details = {}
    for i, h in enumerate(model["hosts"]):
        row = driver.find_element(By.CSS_SELECTOR, f"#hosts tbody tr[data-i='{i}']")
        assert bool(row.find_elements(By.CSS_SELECTOR, ".badge.stale")) == (h["name"] == "old"), h["name"]
        click(driver, row.find_element(By.CSS_SELECTOR, "button.host-link"))
        details[h["name"]] = driver.find_element(By.ID, "detail").text
        driver.find_element(By.ID, "detail-close").click()
    assert "from the fact cache, read at 2026-12-06T11:00:00Z (1 hour old)" in details["fresh"]
    assert "from the fact cache, read at 2026-12-01T12:00:00Z (5 days old, STALE)" in details["old"]
    assert "no cached data" in details["never"]
    set_filter(driver, text="stale")
    assert [model["hosts"][i]["name"] for i in matching(driver)] == ["old"]
    no_errors(driver)


def test_attestation_section_and_summary_line(browser):
    """With tpm_attest_checks, the fleet summary line at the top and, per host, each check's outcome, cause and
    fix, the EK certificate's subject, issuer and validity, the replayed PCRs and the IMA state."""
    driver, model = load(browser, hostile_model(), "attestation")
    line = driver.find_element(By.ID, "attestation-summary").text
    assert line == f"Attestation readiness (ek_chain, eventlog, ima, consumer_quote): {model['attestation']['text']}"
    assert line.split(": ", 1)[1].startswith(f"{model['attestation']['ready']} of {len(model['hosts'])} hosts ready")
    set_filter(driver)
    k = next(i for i, h in enumerate(model["hosts"]) if h["name"] not in HOSTILE_NAMES and
             [o["status"] for o in h["attestation"]["outcomes"]] == ["fail", "fail", "not_run", "fail"])  # fmt: skip
    driver.execute_script("window.tpmfleetReport.showDetail(arguments[0])", k)
    section = driver.execute_script(
        "const d = document.getElementById('detail'); const h = Array.from(d.querySelectorAll('h4'))"
        ".find(e => e.textContent === 'Attestation');"
        "return [h !== undefined, Array.from(d.querySelectorAll('ul.attest > li'), li => li.textContent)];"
    )
    assert section[0] is True
    ek, eventlog, ima, consumer = section[1]
    assert ek.startswith("FAIL EK certificate chains to a trusted CA (unchained)Cause: no chain")
    assert "subject CN=ek; issuer CN=ca; valid 2026-01-01T00:00:00+00:00 to 2036-01-01T00:00:00+00:00" in ek
    assert eventlog.startswith("FAIL Measured-boot event log replays to the quoted PCRs (mismatch)")
    assert f"sha256:0: log {'00' * 32}, quoted {'ab' * 32}" in eventlog and "Not quotedsha256:8" in eventlog
    assert ima.startswith("NOT RUN IMA measurement list replays to the quoted PCR 10 (no_quote)")
    assert consumer.startswith("FAIL Each consumer user creates an AK and quotes twice over the mode's TCTI (busy)")
    assert "tpmagent over device:/dev/tpm0: PASS" in consumer
    assert "agent2 over device:/dev/tpm0: FAIL (as agent2: busy); fix: stop tpm2-abrmd" in consumer
    driver.find_element(By.ID, "detail-close").click()
    no_errors(driver)
