"""A real headless browser for the HTML report: Debian's chromium and chromedriver driven by
Selenium (``pip install selenium``; ``apt-get install chromium chromium-driver``). Used by the
report's browser test and by ``benchmarks/report_screenshots.py``; nothing is downloaded:
the driver is the system's, never one Selenium Manager would fetch."""
from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

from ..errors import UserError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)


def find(names: tuple[str, ...], variable: str) -> str | None:
    """The executable ``$variable`` names if it is set, else the first of ``names`` on the
    PATH; None if that is not an executable."""
    if os.environ.get(variable):
        return shutil.which(os.environ[variable])
    return next((path for path in map(shutil.which, names) if path), None)


def missing() -> str | None:
    """Why no browser can be started here (None when one can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the Python package selenium is not installed (pip install selenium)"
    if find(BROWSERS, "UNLEARNBENCH_CHROMIUM") is None:
        return ("no chromium on the PATH or at $UNLEARNBENCH_CHROMIUM (apt-get install "
                "chromium chromium-driver)")
    if find(DRIVERS, "UNLEARNBENCH_CHROMEDRIVER") is None:
        return ("no chromedriver on the PATH or at $UNLEARNBENCH_CHROMEDRIVER (apt-get "
                "install chromium-driver)")
    return None


def open_browser(width: int = 1280, height: int = 900):
    """A headless chromium (Selenium WebDriver) that keeps the page's console log."""
    reason = missing()
    if reason:
        raise UserError(f"cannot start a browser: {reason}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = find(BROWSERS, "UNLEARNBENCH_CHROMIUM")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(find(DRIVERS, "UNLEARNBENCH_CHROMEDRIVER"))
    return webdriver.Chrome(service=service, options=options)


def full_page_screenshot(driver, path: str | Path) -> Path:
    """Save the whole page (not only the window) as a PNG, through the DevTools protocol.
    The window is first widened until no horizontally scrolling block (``.scroll``: a wide
    table) hides a column."""
    needed = driver.execute_script(
        "return Math.ceil(Math.max(0, ...[...document.querySelectorAll('.scroll')].map("
        "e => e.getBoundingClientRect().left + e.scrollWidth)) + 32)")
    size = driver.get_window_size()
    if needed > size["width"]:
        driver.set_window_size(needed, size["height"])
    width = driver.execute_script("return document.documentElement.scrollWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    path = Path(path)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
