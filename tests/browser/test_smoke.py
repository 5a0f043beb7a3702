"""A real browser against a real server: Debian's Chromium driven by Playwright.

Starts `streamlit run app.py` on a free local port with its own workspace, opens the app,
waits for the sample to load and walks to the diagnostics.  Screenshots are kept under
tests/artifacts/ as evidence.  Uses the system Chromium; never downloads a browser.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    env = {**os.environ, "UPLIFT_STUDIO_WORKSPACE": str(tmp_path_factory.mktemp("browser_ws") / "ws.duckdb")}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the Streamlit server did not start within 60 s")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield chromium
        chromium.close()


def shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_sample_loads_and_diagnostics_show_the_lights(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server)
    page.get_by_text("The log fits the mapping").first.wait_for(timeout=120_000)
    assert page.get_by_text("50,000 customers, 4 arms").count() >= 1
    shot(page, "1_data")
    page.get_by_role("link", name="2 · Diagnostics").click()
    page.get_by_text("SRM: green").first.wait_for(timeout=120_000)
    assert page.get_by_text("Model fitting is allowed").count() >= 1
    shot(page, "2_diagnostics")
    page.close()


def test_reloading_a_page_url_keeps_the_app_around_it(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/diagnostics")
    page.get_by_text("SRM: green").first.wait_for(timeout=120_000)
    assert page.get_by_role("link", name="1 · Data").count() == 1, "the navigation of app.py is there"
    page.close()


def diagnose_and_fit(page) -> None:
    """Steps 2 and 3 with their defaults: run the diagnostics, then fit and wait for the models."""
    page.get_by_role("link", name="2 · Diagnostics").click()
    page.get_by_text("Model fitting is allowed").first.wait_for(timeout=180_000)
    page.get_by_role("link", name="3 · Models").click()
    page.get_by_role("button", name="Fit models").click()
    page.get_by_text("Fitted models").first.wait_for(timeout=300_000)


def build_and_download_report(page, folder, ready_text: str) -> str:
    """Open step 7, build the report, wait for ``ready_text``, download it; return its HTML."""
    page.get_by_role("link", name="7 · Report").click()
    page.get_by_role("button", name="Build the report").click()
    page.get_by_text(ready_text).first.wait_for(timeout=300_000)
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Download the report (HTML)").click()
    target = folder / "report.html"
    download.value.save_as(target)
    return target.read_text()


def metric(page, label: str) -> str:
    return page.locator('[data-testid="stMetric"]', has_text=label).first.inner_text().split("\n")[-1]


def test_the_whole_flow_in_a_browser(server, browser, tmp_path):
    """Sample → diagnostics → fit → drag the budget → compare policies → download the report."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server)
    page.get_by_text("The log fits the mapping").first.wait_for(timeout=120_000)
    diagnose_and_fit(page)
    page.get_by_text("Auto chose the").first.wait_for(timeout=60_000)  # the default fit names its choice
    shot(page, "3_models")

    page.get_by_role("link", name="5 · Allocation").click()
    page.get_by_text("Expected incremental value").first.wait_for(timeout=120_000)
    before = metric(page, "Customers with an offer")
    slider = page.get_by_role("slider").first
    slider.focus()
    slider.press("End")
    after, deadline = before, time.time() + 120
    while after == before and time.time() < deadline:  # the app reruns after the slider moves
        page.wait_for_timeout(500)
        after = metric(page, "Customers with an offer")
    assert int(after.replace(",", "")) > int(before.replace(",", "")), (before, after)
    shot(page, "5_allocation")

    page.get_by_role("link", name="6 · Policies").click()
    page.get_by_text("Increment over no offer").first.wait_for(timeout=300_000)
    shot(page, "6_policies")

    text = build_and_download_report(page, tmp_path, "Report ready")
    assert "<h2>Allocation</h2>" in text and 'src="http' not in text
    (ARTIFACTS / "report.html").write_text(text)

    page.get_by_role("link", name="8 · Next test").click()
    page.get_by_text("Customers per offer").first.wait_for(timeout=120_000)
    page.get_by_role("tab", name="Deploy the plan with exploration").click()
    page.get_by_text("Smallest propensity").first.wait_for(timeout=120_000)
    assert page.get_by_text("Traceback").count() == 0
    shot(page, "8_next_test")

    from core.simulate import simulate_live

    days = tmp_path / "live_days.csv"
    simulate_live(days=3, per_day=1500, seed=1, drift_day=2).log.to_csv(days, index=False)
    page.get_by_role("link", name="9 · Monitor").click()
    page.get_by_text("Daily logs (CSV, CSV.GZ or Parquet)").first.wait_for(timeout=120_000)
    page.locator('[data-testid="stFileUploader"]').first.locator("input[type=file]").set_input_files(str(days))
    page.get_by_role("button", name="Store these days").click()
    page.get_by_text("3 new day(s) stored (4,500 rows)").first.wait_for(timeout=120_000)
    page.get_by_role("tab", name="Alerts").click()
    page.get_by_text("first on 2026-11-03: 2 feature drift").first.wait_for(timeout=120_000)
    assert page.get_by_text("Traceback").count() == 0
    shot(page, "9_monitor")
    page.get_by_role("tab", name="Dashboard").click()
    page.get_by_text("Feature drift").first.wait_for(timeout=120_000)
    page.wait_for_timeout(1500)  # let the charts draw
    shot(page, "9_monitor_dashboard")
    page.close()


def test_sessions_are_isolated_and_a_reload_keeps_the_saved_scenario(server, browser):
    first = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    first.goto(server)
    first.get_by_text("The log fits the mapping").first.wait_for(timeout=120_000)
    first.locator('[data-testid="stSelectbox"]', has_text="Sample").first.locator("input").click()
    first.get_by_role("option", name="Hillstrom e-mail experiment").click()
    first.get_by_text("64,000 customers, 3 arms").first.wait_for(timeout=120_000)
    # map a column: the value outcome becomes `visit`
    first.locator('[data-testid="stSelectbox"]', has_text="Value outcome").first.locator("input").click()
    first.get_by_role("option", name="visit", exact=True).click()
    value_input = first.get_by_role("combobox", name="Value outcome")
    first.wait_for_function("() => document.querySelector('input[aria-label=\"Value outcome\"]').value === 'visit'",
                            timeout=60_000)
    assert value_input.input_value() == "visit"

    second = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    second.goto(server)
    second.get_by_text("The log fits the mapping").first.wait_for(timeout=120_000)
    assert second.get_by_text("50,000 customers, 4 arms").count() >= 1, "the other session's choice does not leak"

    first.get_by_label("Scenario name", exact=True).fill("Hillstrom in the browser")
    first.get_by_role("button", name="Save scenario").click()
    first.get_by_text("Saved scenario 'Hillstrom in the browser'").first.wait_for(timeout=60_000)
    first.wait_for_function("() => window.location.search.includes('scenario=')", timeout=30_000)
    first.reload()
    first.get_by_text("64,000 customers, 3 arms").first.wait_for(timeout=120_000)
    assert first.get_by_role("combobox", name="Value outcome").input_value() == "visit", "the mapping came back"
    shot(first, "1_data_reopened")
    # another page, reloaded with the scenario in its URL, still works on the saved scenario
    scenario = first.evaluate("() => new URLSearchParams(window.location.search).get('scenario')")
    first.goto(f"{server}/diagnostics?scenario={scenario}")
    first.get_by_text("Arm counts fit the intended split").first.wait_for(timeout=120_000)
    # moving on through the sidebar keeps the scenario in the URL, so a reload there keeps it too
    first.get_by_role("link", name="3 · Models").click()
    first.get_by_text("Value head: a model of 'visit'").first.wait_for(timeout=120_000)
    first.wait_for_function(f"() => window.location.pathname.endsWith('/models') && "
                            f"new URLSearchParams(window.location.search).get('scenario') === '{scenario}'", timeout=60_000)
    first.reload()
    first.get_by_text("Value head: a model of 'visit'").first.wait_for(timeout=120_000)
    assert first.get_by_text("Working on the shipped sample campaign").count() == 0
    first.context.close()
    second.context.close()


def test_bad_uploads_show_a_readable_error(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server)
    page.get_by_text("The log fits the mapping").first.wait_for(timeout=120_000)
    page.get_by_text("Upload a file").first.click()
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    page.locator('input[type="file"]').set_input_files(str(empty))
    page.get_by_text("is empty (0 bytes)").first.wait_for(timeout=60_000)
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 16)
    page.locator('input[type="file"]').set_input_files(str(garbage))
    page.get_by_text("not a CSV or Parquet file").first.wait_for(timeout=60_000)
    assert page.get_by_text("Traceback").count() == 0
    shot(page, "1_data_bad_upload")
    page.close()


def test_a_log_without_cost_reaches_a_plan_policies_and_a_report(server, browser, tmp_path):
    """Issue 13's acceptance: a foreign log with a binary outcome and no cost column, uploaded and
    mapped in the browser, reaches a non-empty plan, a policy comparison with the model policy and
    a report with every section; saving the scenario's later choices is explicit."""
    from tests.pages.helpers import promo_log_csv

    log = tmp_path / "promo.csv"
    log.write_bytes(promo_log_csv(6000, seed=1))
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(server)
    page.get_by_text("The log fits the mapping").first.wait_for(timeout=120_000)
    page.get_by_text("Upload a file").first.click()
    page.locator('input[type="file"]').set_input_files(str(log))
    page.get_by_text("6,000 customers, 2 arms, control 'No'").first.wait_for(timeout=120_000)
    page.get_by_label("Scenario name", exact=True).fill("Promo without cost")
    page.get_by_role("button", name="Save scenario").click()
    page.get_by_text("Saved scenario 'Promo without cost'").first.wait_for(timeout=60_000)

    diagnose_and_fit(page)

    page.get_by_role("link", name="5 · Allocation").click()
    page.get_by_text("This log has no cost").first.wait_for(timeout=120_000)
    typed = page.get_by_role("spinbutton", name="Type a budget")
    typed.fill("200")
    typed.press("Enter")
    deadline = time.time() + 120
    while metric(page, "Customers with an offer") != "200" and time.time() < deadline:
        page.wait_for_timeout(500)
    assert metric(page, "Customers with an offer") == "200"
    assert float(metric(page, "Expected incremental value").replace(",", "")) > 0
    # the step is ticked in the sidebar at once, not one page later
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=\"stSidebarNavLink\"]')]"
                           ".some(a => a.innerText.includes('Allocation') && a.innerText.includes('check_circle'))",
                           timeout=60_000)
    shot(page, "5_allocation_no_cost")
    # the budget is not saved for colleagues until the user saves it
    page.get_by_text("unsaved changes").first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Save changes").click()
    page.get_by_text("every change is saved").first.wait_for(timeout=60_000)

    page.get_by_role("link", name="6 · Policies").click()
    page.get_by_text("model policy (at most 200 offers)").first.wait_for(timeout=300_000)
    shot(page, "6_policies_no_cost")

    text = build_and_download_report(page, tmp_path, "Report ready: data, diagnostics, models, allocation, policies")
    assert "<h2>Allocation</h2>" in text and "At most 200 offers" in text and "<h2>Policy comparison" in text
    page.context.close()
