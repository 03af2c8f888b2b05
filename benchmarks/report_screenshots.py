"""Full-page screenshot of the HTML report of a store, for the docs.

    .venv/bin/python benchmarks/report_screenshots.py --db /tmp/report/digits.db \
        --out docs/report-digits.png [--benchmark digits-random10] [--html report.html]

Builds the report (`unlearnbench.report.html`), opens it in headless chromium (Debian's
``chromium chromium-driver`` packages, driven by Selenium) and saves the whole page as a
PNG. The page is checked on the way: a console error fails the screenshot.

The docs' stores:
    unlearnbench run --benchmark digits-random10 --methods retrain,finetune,ga,rl --seeds 3 \
        --curve-every epoch --curve-metrics ua,ta,mia_efficacy --db /tmp/report/digits.db
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from unlearnbench.errors import UserError
from unlearnbench.report.browser import full_page_screenshot, open_browser
from unlearnbench.report.html import write_report


def screenshot(db: Path, out: Path, benchmark: str | None = None, html: Path | None = None,
               width: int = 1280) -> Path:
    """Render the report of ``db`` and save its full-page screenshot to ``out``."""
    with tempfile.TemporaryDirectory() as scratch:
        page = write_report(db, html or Path(scratch) / "report.html", benchmark)
        driver = open_browser(width=width)
        try:
            driver.get(page.resolve().as_uri())
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            if errors:
                raise UserError(f"the report logged console errors: {errors}")
            return full_page_screenshot(driver, out)
        finally:
            driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="the store to report on")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--benchmark", default=None, help="only this benchmark")
    parser.add_argument("--html", type=Path, default=None, help="also keep the HTML here")
    parser.add_argument("--width", type=int, default=1280, help="window width in pixels")
    args = parser.parse_args()
    try:
        path = screenshot(args.db, args.out, args.benchmark, args.html, args.width)
    except UserError as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
