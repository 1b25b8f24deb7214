"""The whole flow once in a real browser: Debian's Chromium driven by Selenium against the real
dashboard (``streamlit run``) and a real worker. Screenshots of every step are kept in
``test-artifacts/browser/`` (or ``$EVALBOARD_TEST_ARTIFACTS``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from evalboard.processes import dashboard_command
from evalboard.settings import get_settings, subprocess_env
from tests.conftest import DigitsData, TinyModels
from tests.servers import wait_for
from tests.test_end_to_end import ROOT, run_json

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("EVALBOARD_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "browser"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Dashboard:
    """``streamlit run dashboard/app.py`` as ``evalboard up`` starts it."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                dashboard_command(self.port, "127.0.0.1"), cwd=ROOT, stdout=log,
                stderr=subprocess.STDOUT, env=subprocess_env(get_settings()),
            )  # fmt: skip

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as answer:
                    return answer.status == 200
            except OSError:
                return False

        wait_for(healthy, 60, f"the dashboard never answered:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture()
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    server = Dashboard(tmp_path / "dashboard.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), (
        "Debian's chromium and chromium-driver are needed: scripts/test installs them"
    )
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--window-size=1600,2200",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def settled(driver: object, timeout: float = 60) -> None:
    """Wait until Streamlit has drawn the page: no skeleton, no running indicator."""
    time.sleep(1.0)
    script = (
        "return document.querySelectorAll('[data-testid=stSkeleton],"
        "[data-testid=stStatusWidget]').length === 0 && "
        "document.querySelectorAll('[data-testid=stMain]').length > 0"
    )
    wait_for(lambda: driver.execute_script(script), timeout, "the page never settled")  # type: ignore[attr-defined]
    time.sleep(0.5)


def text_of(driver: object) -> str:
    return str(driver.execute_script("return document.body.innerText"))  # type: ignore[attr-defined]


def shot(driver: object, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))  # type: ignore[attr-defined]


def element(driver: object, css: str, timeout: float = 60) -> object:
    """The first element matching ``css``, once Streamlit has drawn it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    located = expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    return WebDriverWait(driver, timeout).until(located)  # type: ignore[arg-type]


def wait_text(driver: object, needle: str, timeout: float = 60) -> None:
    wait_for(lambda: needle in text_of(driver), timeout, f"never showed {needle!r}")


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_submit_in_the_browser_see_it_ranked_open_its_page_and_reload_a_deep_link(
    backend, start_worker: Callable[..., object], dashboard: Dashboard, browser: object,
    digits: DigitsData, tiny_models: TinyModels,
) -> None:  # fmt: skip
    from selenium.webdriver.common.by import By

    driver = browser
    start_worker()

    # Submit through the form.
    driver.get(f"{dashboard.url}/submit")  # type: ignore[attr-defined]
    settled(driver)
    element(driver, "input[aria-label='Dataset']")
    inputs = {
        element.get_attribute("aria-label"): element
        for element in driver.find_elements(By.CSS_SELECTOR, "input[type=text]")  # type: ignore[attr-defined]
    }
    inputs["Model"].send_keys(str(tiny_models.trained_resnet))
    inputs["Dataset"].send_keys(str(digits.parquet))
    shot(driver, "01-submit-form")
    driver.find_element(By.XPATH, "//button[.//p[text()='Submit']]").click()  # type: ignore[attr-defined]
    wait_text(driver, "Queued submission")
    shot(driver, "02-submitted")
    submission_id = int(text_of(driver).split("Queued submission ")[1].split(".")[0])
    wait_for(
        lambda: run_json("status", str(submission_id))["state"] == "succeeded", 180,
        "the submission never succeeded",
    )  # fmt: skip

    # Ranked on the leaderboard, with its interval; every choice lands in the URL.
    driver.get(f"{dashboard.url}/")  # type: ignore[attr-defined]
    settled(driver)
    wait_text(driver, "1 ranked")
    element(driver, "[data-testid=stDataFrame]")
    element(driver, "[data-testid=stVegaLiteChart]")
    assert "Open trained-resnet" in text_of(driver)
    assert "higher is better" in text_of(driver)
    assert "dataset=" in driver.current_url and "metric=accuracy" in driver.current_url  # type: ignore[attr-defined]
    assert not driver.find_elements(By.XPATH, "//*[normalize-space(text())='Deploy']")  # type: ignore[attr-defined]
    shot(driver, "03-leaderboard")

    # Its model page, through the page's link.
    element(driver, "[data-testid=stPageLink] a").click()
    wait_text(driver, "Provenance")
    settled(driver)
    page_url = driver.current_url  # type: ignore[attr-defined]
    assert page_url.endswith(f"/model?model={quote(str(tiny_models.trained_resnet), safe='')}")
    body = text_of(driver)
    assert "Per class" in body and "Confusion matrix" in body and "model-index" in body
    shot(driver, "04-model-page")

    # The copied link, opened fresh after the dashboard restarted: the same page, with the
    # app's menu and the sidebar where a token is entered.
    dashboard.stop()
    dashboard.start()
    driver.delete_all_cookies()  # type: ignore[attr-defined]
    driver.get(page_url)  # type: ignore[attr-defined]
    settled(driver)
    wait_text(driver, "Provenance")
    body = text_of(driver)
    assert "Who you are" in body and "Submitter token" in body
    assert "Leaderboard" in body and "Submissions" in body  # the app's menu
    shot(driver, "05-deep-link-after-restart")
    driver.get(f"{dashboard.url}/submissions?training=1")  # type: ignore[attr-defined]
    settled(driver)
    assert "Who you are" in text_of(driver) and "Submissions" in text_of(driver)
    shot(driver, "06-submissions-deep-link")
    # The leaderboard by its name, as people type it: the home page, with the view it names.
    driver.get(f"{dashboard.url}/leaderboard?metric=f1_macro")  # type: ignore[attr-defined]
    settled(driver)
    wait_text(driver, "1 ranked")
    assert "Page not found" not in text_of(driver)
    assert "Ranked by f1_macro" in text_of(driver)
    shot(driver, "07-leaderboard-by-name")
