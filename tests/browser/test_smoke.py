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
