"""The report page in Debian's headless Chromium (Selenium with the system chromedriver; nothing downloaded).

Loads a page rendered from a synthetic fleet and checks what an operator does with it: the
summary numbers equal fleet.json, filtering and sorting work, the detail view opens, no console
error, and no host-provided string runs as markup. A screenshot is kept under tests/artifacts/
(TPMFLEET_UPDATE_SCREENSHOT=1 also refreshes docs/report-screenshot.png for the README).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from ansible_collections.tpmfleet.tpm.plugins.plugin_utils import report, report_page
from fleet_fixtures import host_record, synthetic_fleet
from headless_chromium import CHROMEDRIVER, CHROMIUM, installed, start_browser

REPO = Path(__file__).resolve().parents[4]
ARTIFACTS = REPO / "tests" / "artifacts"
XSS_NAME = "<img src=x onerror=\"window.__xss='name'\">evil.example.net"

if not installed():
    pytest.skip(
        f"Chromium is not installed ({CHROMIUM} and {CHROMEDRIVER} are missing): apt-get install chromium "
        "chromium-driver, or run scripts/setup.sh",
        allow_module_level=True,
    )

# Imported after the skip: only needed where Chromium is installed.
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select


@pytest.fixture(scope="module")
def page():
    """(driver, model) with the page of a 150-host synthetic fleet plus a host whose name is markup."""
    records = synthetic_fleet(150)
    records.append(
        host_record(
            XSS_NAME, "direct", groups=("tpm_hosts", "<script>window.__xss='group'</script>"), abrmd_running=True
        )
    )
    model = report.build(records, generated_at="2026-01-01T00:00:00Z")
    with tempfile.TemporaryDirectory(prefix="tpmfleet-report-") as tmp:
        paths = report_page.write_report(model, os.path.join(tmp, "report"))
        driver = start_browser(os.path.join(tmp, "profile"), console_log=True)
        try:
            driver.get(Path(paths["index.html"]).as_uri())
            yield driver, json.loads(Path(paths["fleet.json"]).read_text())
        finally:
            driver.quit()


def visible_hosts(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#hosts tbody tr')).filter(r => !r.hidden)"
        ".map(r => r.dataset.host);"
    )


def test_loads_without_console_errors_or_injected_markup(page):
    driver, _model = page
    assert driver.title.startswith("tpmfleet report: 151 hosts")
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    assert driver.execute_script("return window.__xss === undefined")
    row = driver.find_element(By.CSS_SELECTOR, "#hosts tbody tr[data-status='drifted'] .host-link")
    assert row is not None
    names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".host-link")]
    assert XSS_NAME in names  # shown as text
    assert driver.find_elements(By.CSS_SELECTOR, "#hosts img") == []


def test_summary_numbers_equal_fleet_json(page):
    driver, model = page
    s = model["summary"]
    assert driver.find_element(By.CSS_SELECTOR, "#count-hosts .n").text == str(s["hosts"])
    for status, n in s["status"].items():
        assert driver.find_element(By.CSS_SELECTOR, f"#count-{status} .n").text == str(n), status
    for mode, n in s["modes"].items():
        assert driver.find_element(By.ID, f"mode-{mode}").text == str(n), mode
    rows = driver.find_elements(By.CSS_SELECTOR, "#hosts tbody tr")
    assert len(rows) == s["hosts"]
    assert driver.find_element(By.ID, "shown-count").text == str(s["hosts"])
    # the chart has one bar segment per (mode, status) pair with hosts
    segments = driver.find_elements(By.CSS_SELECTOR, "#mode-chart rect title")
    pairs = sum(1 for statuses in s["by_mode"].values() for n in statuses.values() if n)
    assert len(segments) == pairs


def test_filtering(page):
    driver, model = page
    box = driver.find_element(By.ID, "filter")
    status = Select(driver.find_element(By.ID, "status-filter"))
    mode = Select(driver.find_element(By.ID, "mode-filter"))
    target = model["hosts"][17]["name"]
    box.send_keys(target)
    assert visible_hosts(driver) == [target]
    assert driver.find_element(By.ID, "shown-count").text == "1"
    box.clear()
    box.send_keys(" ")  # an input event with an empty query shows everything again
    assert len(visible_hosts(driver)) == model["summary"]["hosts"]

    status.select_by_value("unreachable")
    want = [h["name"] for h in model["hosts"] if h["status"] == "unreachable"]
    assert sorted(visible_hosts(driver)) == sorted(want) and want
    status.select_by_value("")
    mode.select_by_value("abrmd")
    box.clear()
    box.send_keys("lockout")
    want = [
        h["name"]
        for h in model["hosts"]
        if h["mode"] == "abrmd" and any("lockout" in f"{p['title']} {p['cause']}".lower() for p in h["problems"])
    ]
    assert sorted(visible_hosts(driver)) == sorted(want) and want
    mode.select_by_value("")
    box.clear()
    box.send_keys(" ")
    assert len(visible_hosts(driver)) == model["summary"]["hosts"]


def test_sorting(page):
    driver, model = page
    heads = {th.text.strip(): th for th in driver.find_elements(By.CSS_SELECTOR, "#hosts thead th")}
    assert visible_hosts(driver)[0] == model["hosts"][0]["name"]  # problems first, as in fleet.json
    heads["Host"].click()
    names = visible_hosts(driver)
    assert names == sorted(names, key=str.lower)
    assert heads["Host"].get_attribute("aria-sort") == "ascending"
    heads["Host"].click()
    assert visible_hosts(driver) == sorted(names, key=str.lower, reverse=True)
    heads["Status"].click()
    order = [report.STATUSES.index(h) for h in driver.execute_script(
        "return Array.from(document.querySelectorAll('#hosts tbody tr')).map(r => r.dataset.status);")]  # fmt: skip
    assert order == sorted(order)


def test_detail_view_and_screenshot(page):
    driver, model = page
    Select(driver.find_element(By.ID, "status-filter")).select_by_value("")
    host = next(h for h in model["hosts"] if h["name"] == XSS_NAME)
    link = next(e for e in driver.find_elements(By.CSS_SELECTOR, ".host-link") if e.text == XSS_NAME)
    link.click()
    detail = driver.find_element(By.ID, "detail")
    assert detail.is_displayed()
    assert detail.find_element(By.TAG_NAME, "h3").text == XSS_NAME
    assert f"Problems ({len(host['problems'])})" in detail.text
    assert "tpm2-abrmd is running" in detail.text and "tpmfleet.tpm.quote_mode" in detail.text
    assert driver.execute_script("return window.__xss === undefined")
    # the screenshot shows the summary and the host table with the first failing host's details open
    failing = next(h for h in model["hosts"] if h["status"] == "failing")
    Select(driver.find_element(By.ID, "status-filter")).select_by_value("failing")
    next(e for e in driver.find_elements(By.CSS_SELECTOR, ".host-link") if e.text == failing["name"]).click()
    assert detail.find_element(By.TAG_NAME, "h3").text == failing["name"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(1400, 1100)
    driver.execute_script("window.scrollTo(0, 0)")
    shot = ARTIFACTS / "report.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("TPMFLEET_UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, REPO / "docs" / "report-screenshot.png")
    driver.find_element(By.ID, "detail-close").click()
    assert not detail.is_displayed()
    assert [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")] == []


def test_large_fleet_lays_out_one_page_of_rows(page, tmp_path):
    """Beyond PAGE_SIZE matching rows only the first ones are shown until "Show all" is clicked."""
    driver, _model = page
    model = report.build(synthetic_fleet(report_page.PAGE_SIZE + 150))
    driver.get(Path(report_page.write_report(model, str(tmp_path))["index.html"]).as_uri())
    total = model["summary"]["hosts"]
    show_all = driver.find_element(By.ID, "show-all")
    shown = visible_hosts(driver)
    assert shown == [h["name"] for h in model["hosts"][: report_page.PAGE_SIZE]]  # problems first
    assert driver.find_element(By.ID, "shown-count").text == str(total) and show_all.is_displayed()
    Select(driver.find_element(By.ID, "status-filter")).select_by_value("failing")
    want = [h["name"] for h in model["hosts"] if h["status"] == "failing"]
    assert visible_hosts(driver) == want and not show_all.is_displayed()
    Select(driver.find_element(By.ID, "status-filter")).select_by_value("")
    driver.find_element(By.CSS_SELECTOR, "#hosts thead th:nth-child(2)").click()  # sort by host
    assert visible_hosts(driver) == sorted((h["name"] for h in model["hosts"]), key=str.lower)[: report_page.PAGE_SIZE]
    show_all.click()
    assert len(visible_hosts(driver)) == total and not show_all.is_displayed()
    assert [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")] == []
