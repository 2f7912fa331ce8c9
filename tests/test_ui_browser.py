"""The MLflow UI as a user sees it, in headless Chromium: a real `eirnn train` run and a small
Optuna study in a SQLite store, served by `mlflow ui` on a free loopback port.

Screenshots go to the test's tmp folder and, when EIRNN_TEST_ARTIFACTS names a folder, there too.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, small_flags, tracking_env

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and Path(CHROMEDRIVER).exists()),
        reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
    ),
]

# what MLflow 3's sidebar shows in its GenAI view and not in the model-training view
GENAI_NAVIGATION = ("Evaluation runs", "Prompts & versions", "Playground", "Agent versions", "AI Gateway")
PAGE_WAIT_S = 90


@pytest.fixture(scope="module")
def ui_store(tmp_path_factory, tiny_recording_file):
    """A store with one `eirnn train` run (figures on) and a 2-trial study, and `mlflow ui` on it."""
    from eirnn.tracking.ui import free_port, start_ui, stop_server, wait_until_ready

    folder = tmp_path_factory.mktemp("ui-store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    port = free_port("127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    env = tracking_env(uri, EIRNN_UI_ADDRESS=base, PYTHONPATH=str(REPO / "src"))
    small = small_flags(data=str(tiny_recording_file))
    trained = subprocess.run(
        [sys.executable, "-m", "eirnn.cli", "train", *small, "--log-figures", "true", "--max-epochs", "5"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=folder,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    # the trials draw no figures: the report test reads the trained run's
    study = ["--max-epochs", "3", "--n-trials", "2", "--study-name", "ui-study", "--pruner", "none"]
    tuned = subprocess.run(
        [sys.executable, "-m", "eirnn.cli", "tune", *small, *study],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=folder,
    )
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    server = start_ui("127.0.0.1", port, uri, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(base, server)
        yield {"base": base, "uri": uri, "train_stdout": trained.stdout}
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1100"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def screenshot(browser, tmp_path):
    def save(name: str) -> Path:
        path = tmp_path / f"{name}.png"
        browser.save_screenshot(str(path))
        if os.environ.get("EIRNN_TEST_ARTIFACTS"):
            target = Path(os.environ["EIRNN_TEST_ARTIFACTS"])
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / path.name)
        return path

    return save


def wait_for_text(browser, text: str, timeout: float = PAGE_WAIT_S) -> str:
    """The page's visible text once it contains `text`."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = browser.find_element(By.TAG_NAME, "body").text
        if text in body:
            return body
        time.sleep(0.5)
    raise AssertionError(f"{text!r} did not appear on {browser.current_url}; the page shows: {body[:1500]}")


def printed_address(stdout: str) -> str:
    return re.search(r"open\s+(http://\S+)", stdout).group(1)


def test_printed_address_opens_the_run_in_model_training_view(ui_store, browser, screenshot):
    from mlflow.tracking import MlflowClient

    address = printed_address(ui_store["train_stdout"])
    assert address.startswith(ui_store["base"]) and address.endswith("?workflowType=machine_learning")
    run_id = re.search(r"/runs/([0-9a-f]{32})", address).group(1)
    run = MlflowClient(tracking_uri=ui_store["uri"]).get_run(run_id)
    browser.get(address)
    body = wait_for_text(browser, run.info.run_name)
    # the run description: score vs ceiling, epochs, data, registry
    score = run.data.metrics["final/best_selection_score"]
    ceiling = run.data.metrics["final/cond_noise_ceiling"]
    body = wait_for_text(browser, f"validation cond_psth_corr {score:.3f} vs noise ceiling {ceiling:.3f}")
    assert "5 of 5 epochs" in body and "tiny.npz" in body and "now the champion" in body
    screenshot("run_overview")
    for item in GENAI_NAVIGATION:
        assert item not in body, item


def test_experiment_address_is_model_training_and_trials_nest_under_the_study(ui_store, browser, screenshot):
    import mlflow
    from selenium.webdriver.common.by import By

    from eirnn.tracking.ui import experiment_address

    mlflow.set_tracking_uri(ui_store["uri"])
    browser.get(experiment_address(ui_store["base"], "eirnn"))
    body = wait_for_text(browser, "ui-study")
    for item in GENAI_NAVIGATION:
        assert item not in body, item
    assert "tiny.npz" in body  # the Dataset column
    # a collapsed parent hides its trials; expanding it shows them beneath it
    assert "trial-0" not in body
    browser.find_element(
        By.XPATH,
        "//span[normalize-space(text())='ui-study']/ancestor::div[contains(@class,'ag-cell-wrapper')][1]"
        "//button[contains(@data-component-id,'runnamecellrenderer')]",
    ).click()
    body = wait_for_text(browser, "trial-1")
    assert body.index("ui-study") < body.index("trial-0") and body.index("ui-study") < body.index("trial-1")
    screenshot("experiment_runs")


def test_report_renders_with_every_figure(ui_store, browser, screenshot):
    from mlflow.tracking import MlflowClient
    from selenium.webdriver.common.by import By

    address = printed_address(ui_store["train_stdout"])
    run_id = re.search(r"/runs/([0-9a-f]{32})", address).group(1)
    figures = [item for item in MlflowClient(tracking_uri=ui_store["uri"]).list_artifacts(run_id, "figures")]
    assert len(figures) >= 8
    report = address.replace(f"/runs/{run_id}", f"/runs/{run_id}/artifacts/report.html")
    browser.get(report)
    wait_for_text(browser, "report.html")
    deadline = time.monotonic() + PAGE_WAIT_S
    widths: list[int] = []
    while time.monotonic() < deadline and len(widths) < len(figures):
        frames = browser.find_elements(By.TAG_NAME, "iframe")
        if frames:
            browser.switch_to.frame(frames[0])
            widths = browser.execute_script(
                "return Array.from(document.images).filter(i => i.complete).map(i => i.naturalWidth)"
            )
            heading = browser.execute_script(
                "return document.querySelector('h1') && document.querySelector('h1').textContent"
            )
            browser.switch_to.default_content()
        time.sleep(0.5)
    assert heading and run_id in heading
    assert len(widths) == len(figures) and all(width > 0 for width in widths), widths
    screenshot("report_html")
