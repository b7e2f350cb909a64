"""`visionops ui` end to end: the real CLI serves the MLflow UI and a headless Chromium browses the pipeline runs.

The browser is the system's (Debian `chromium` + `chromium-driver`, installed by `.ci/system-deps.sh`), driven
by Selenium with explicit paths so nothing is ever downloaded. Screenshots of the compare view go to
`test-artifacts/` at the repository root (git-ignored).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest
from ui_helpers import VARIANTS, find_chromium

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
WAIT_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C handling as in a terminal. A shell that starts the test run in the background
    (`cmd &`, no job control) leaves SIGINT ignored, the child inherits that, and Python then installs no
    KeyboardInterrupt handler: `interrupt` would wait for a server that never sees the signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _CliUi:
    """`python -m visionops.cli ui` in the background, its output collected line by line."""

    def __init__(self, cwd: Path, port: int):
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the repo's own store
        self.process = subprocess.Popen([sys.executable, "-m", "visionops.cli", "ui", "--port", str(port)], cwd=cwd,
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        preexec_fn=_default_sigint)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    def wait_for_url(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if match := re.match(r"MLflow UI: (http://\S+)", line):
                    return match.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.process.kill()
        pytest.fail("`visionops ui` printed no address:\n" + "\n".join(self.lines))

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C, as in a terminal; returns the exit code."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self._reader.join(5)


@pytest.fixture
def browser():
    found = find_chromium()
    if found is None:
        pytest.skip("no system Chromium + chromedriver (Debian: apt-get install chromium chromium-driver, "
                    "as .ci/system-deps.sh does)")
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.options import Options  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    binary, driver_path = found
    options = Options()
    options.binary_location = binary
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,2400"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_text(driver, *texts: str, timeout: float = WAIT_S) -> str:
    """The page's text once it contains every one of ``texts`` (the UI renders asynchronously)."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    def ready(d):
        body = d.find_element(By.TAG_NAME, "body").text
        return body if all(t in body for t in texts) else False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5).until(ready)
    except Exception as exc:
        body = driver.find_element(By.TAG_NAME, "body").text
        missing = [t for t in texts if t not in body]
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "mlflow_ui_failure.png"))
        raise AssertionError(f"{missing} not on {driver.current_url} after {timeout} s "
                             f"(screenshot test-artifacts/mlflow_ui_failure.png):\n{body[:3000]}") from exc


def _click(driver, element) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", element)


def _sections(text: str) -> tuple[str, str]:
    """The Parameters and Metrics sections of the compare view's text."""
    match = re.search(r"\nParameters\n(.*)\nMetrics\n(.*?)\n(?:Artifacts|Tags)\n", text, re.DOTALL)
    assert match, f"no Parameters/Metrics sections on the compare page:\n{text[:3000]}"
    return match.group(1), match.group(2)


def _compare_pipeline_runs(driver, family: str, run_names: list[str]) -> str:
    """From the experiment list: open ``family``'s runs, tick both pipeline runs, press Compare; the page text."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    _click(driver, driver.find_element(By.LINK_TEXT, family))
    _wait_text(driver, *run_names)
    # The runs table lists the pipeline runs (their stage runs folded under them); tick the two.
    boxes = WebDriverWait(driver, WAIT_S).until(lambda d: d.find_elements(
        By.CSS_SELECTOR, "input[aria-label^='Press Space to toggle row selection']") or False)
    assert len(boxes) == 2, f"expected the 2 pipeline runs as top-level rows, got {len(boxes)} selectable rows"
    for box in boxes:
        _click(driver, box)
    compare = WebDriverWait(driver, WAIT_S).until(lambda d: next(
        (b for b in d.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Compare" and b.is_enabled()), False))
    _click(driver, compare)
    WebDriverWait(driver, WAIT_S).until(lambda d: "compare-runs" in d.current_url)
    return _wait_text(driver, "Comparing 2 Runs from 1 Experiment", *run_names)


def test_ui_shows_both_families_pipeline_runs_and_compares_two(tracked_repo, browser):
    repo, pipeline_ids = tracked_repo
    started = time.monotonic()
    cli = _CliUi(repo, _free_port())
    try:
        url = cli.wait_for_url()
        assert url.startswith("http://127.0.0.1:")
        client = mlflow.MlflowClient()
        names = {family: [client.get_run(run_id).info.run_name for run_id in ids]
                 for family, ids in pipeline_ids.items()}

        browser.get(f"{url}/#/experiments")
        _wait_text(browser, "sparse4d", "detectnet_v2", "data")
        # MLflow 3 opens in its GenAI mode; runs and their metrics are under "Model training".
        from selenium.webdriver.common.by import By  # noqa: PLC0415

        _click(browser, browser.find_element(By.XPATH, "//*[normalize-space(text())='Model training']"))

        text = _compare_pipeline_runs(browser, "sparse4d", names["sparse4d"])
        params, metrics = _sections(text)
        for key in ("lr", "preset", "backbone", "resolution", "sparse4d.train.lr"):
            assert re.search(rf"^{re.escape(key)}\b", params, re.MULTILINE), f"param {key} not compared:\n{params}"
        assert "0.0002" in params and "0.0005" in params
        for key in ("HOTA", "DetA", "AssA", "LocA", "params"):
            assert re.search(rf"^{key}$", metrics, re.MULTILINE), f"metric {key} not compared:\n{metrics}"
        for variant in VARIANTS:
            assert str(variant["HOTA"]) in metrics, f"HOTA {variant['HOTA']} of {variant['name']} not shown"
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "mlflow_compare_sparse4d.png"
        browser.save_screenshot(str(shot))

        browser.get(f"{url}/#/experiments")
        _wait_text(browser, "detectnet_v2")
        text = _compare_pipeline_runs(browser, "detectnet_v2", names["detectnet_v2"])
        params, metrics = _sections(text)
        assert re.search(r"^prune.threshold\b", params, re.MULTILINE) and "0.001" in params and "0.003" in params
        for key in ("mAP", "precision", "recall", "params"):
            assert re.search(rf"^{key}$", metrics, re.MULTILINE), f"metric {key} not compared:\n{metrics}"
        for variant in VARIANTS:
            assert str(variant["mAP"]) in metrics, f"mAP {variant['mAP']} of {variant['name']} not shown"
        browser.save_screenshot(str(ARTIFACTS / "mlflow_compare_detectnet_v2.png"))
        print(f"\nscreenshots: {shot} and {shot.with_name('mlflow_compare_detectnet_v2.png')}; "
              f"UI test {time.monotonic() - started:.1f} s")
    finally:
        code = cli.interrupt()
    assert code == 0, "\n".join(cli.lines)
    assert "Stopped." in cli.lines
    with socket.socket() as sock:  # the server's whole process group is gone: the port is free again
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", int(url.rsplit(":", 1)[1])))
