"""Headless Chromium for the browser tests, driven by Selenium with Debian's chromium and chromedriver.

No browser is downloaded: Selenium gets the driver's path, so its selenium-manager never runs.
``.ci/run`` installs the Debian packages ``chromium`` and ``chromium-driver`` when they are missing,
and the tests skip with the reason when a developer's machine has neither.

Chromium resolves no host name but 127.0.0.1 and localhost (``--host-resolver-rules``), and the
background-networking flags stop its own update, sync and metrics requests. A page that requests
an outside resource therefore fails with a console error instead of sending traffic out.

Screenshots go to ``$RISKCAST_TEST_ARTIFACTS`` when it is set, else to ``test-artifacts/browser/``
in the repository.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS_VARIABLE = "RISKCAST_TEST_ARTIFACTS"
WINDOW_SIZE = (1600, 1000)
# Full-page screenshots stop at this height, so a long report gives a PNG of a few MB at most.
MAX_SCREENSHOT_HEIGHT = 12000

CHROMIUM_FLAGS = (
    "--headless=new",
    # Chromium's sandbox does not start as root, which is how CI runs.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
    f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
)


def require_chromium() -> None:
    """Skip the calling test when Chromium, its driver or Selenium is missing."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not found: install the Debian packages chromium and "
                    f"chromium-driver (`apt-get install chromium chromium-driver`) to run the browser tests")
    pytest.importorskip("selenium", reason="selenium is not installed: pip install -e '.[test]'")


@contextmanager
def open_chromium() -> Iterator:
    """Start headless Chromium with a new empty profile, and quit it and delete the profile on exit."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="riskcast-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})

        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def artifacts_folder() -> Path:
    folder = Path(os.environ.get(ARTIFACTS_VARIABLE) or REPOSITORY / "test-artifacts" / "browser")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_screenshot(driver, name: str, full_page: bool = False) -> Path:
    """Save the window, or with ``full_page`` the whole page up to 12,000 px, as ``<artifacts>/<name>.png``."""
    path = artifacts_folder() / f"{name}.png"
    if full_page:
        width, height = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight];")
        clip = {"x": 0, "y": 0, "width": width, "height": min(height, MAX_SCREENSHOT_HEIGHT), "scale": 1}
        shot = driver.execute_cdp_cmd("Page.captureScreenshot",
                                      {"format": "png", "captureBeyondViewport": True, "clip": clip})
        path.write_bytes(base64.b64decode(shot["data"]))
    else:
        driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def console_errors(driver) -> list[str]:
    """Return the console messages at level SEVERE since the last call: errors and failed requests."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
