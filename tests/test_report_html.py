"""The HTML report: built from a store of real digits runs (retrain, finetune, ga over two
seeds, ga with a learning curve), checked as text (self-contained, escaped) and in a real
headless browser (Debian's chromium through Selenium): no console errors, the tables hold
the stored numbers, a screenshot in $UNLEARNBENCH_ARTEFACTS (else the test's tmp dir).
Where no browser can be started the browser tests skip and say why."""
import os
import sqlite3
import subprocess
import sys
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from unlearnbench.report import browser
from unlearnbench.report.html import build_report, write_report
from unlearnbench.report.markup import number
from unlearnbench.store import RunRecord, Store

COMMAND = "unlearnbench run --benchmark digits-random10 --methods retrain,finetune,ga --seeds 2"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def digits_db(tmp_path_factory):
    from unlearnbench.cache import ModelCache
    from unlearnbench.sweep.jobs import plan
    from unlearnbench.sweep.grid import run_grid

    work = tmp_path_factory.mktemp("report")
    store = Store(work / "digits.db", command=COMMAND)
    jobs = (plan(["digits-random10"], ["retrain", "finetune"], [0, 1])
            + plan(["digits-random10"], ["ga"], [0, 1], curve_every=2, curve_metrics=["ua", "ta"]))
    assert run_grid(jobs, store, ModelCache(work / "cache"))["finished"] == 6
    store.close()
    return work / "digits.db"


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory):
    """Runs whose benchmark, method, hyperparameters, error and command carry markup."""
    db = tmp_path_factory.mktemp("hostile") / "hostile.db"
    store = Store(db, command=f"unlearnbench run --methods '{HOSTILE}'")
    rng = np.random.default_rng(0)
    for method in (f"ga$x${HOSTILE}", "retrain"):
        for seed in (0, 1):
            forget, test = (rng.integers(0, 2, 20).astype(float) for _ in range(2))
            store.write(RunRecord(
                key=f"{method}/{seed}", benchmark=f"<img src=x onerror=alert(2)>{HOSTILE}",
                method=method, params={"note": f"</td>{HOSTILE}"}, seed=seed, status="finished",
                metrics={"ua": 100 - 100 * forget.mean(), "ta": 100 * test.mean(),
                         "avg_gap": float(seed), "forget_accuracy": 100 * forget.mean()},
                per_example={"forget_accuracy": ("forget", np.arange(20), forget),
                             "ta": ("test", np.arange(100, 120), test)}))
    store.write(RunRecord(key="failed", benchmark=f"<img src=x onerror=alert(2)>{HOSTILE}",
                          method=f"ga$x${HOSTILE}", params={"note": "other"}, seed=0,
                          status="failed", error=f"diverged {HOSTILE}"))
    store.close()
    return db


class Page(HTMLParser):
    """Tags and their attributes, and the page's text, as a browser's parser sees them."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.text = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def stored_means(db) -> dict[str, dict[str, float]]:
    """Mean over each method's finished runs of every stored metric, read from the store."""
    values: dict[str, dict[str, list]] = {}
    for run in Store(db).runs():
        for name, value in run["metrics"].items():
            values.setdefault(run["method"], {}).setdefault(name, []).append(value)
    return {method: {name: float(np.mean(v)) for name, v in metrics.items()}
            for method, metrics in values.items()}


def test_the_report_is_one_self_contained_file(digits_db, tmp_path):
    out = write_report(digits_db, tmp_path / "report.html")
    page = Page(out.read_text(encoding="utf-8"))
    tags = [tag for tag, _ in page.tags]
    assert "script" not in tags and "iframe" not in tags
    for tag, attributes in page.tags:  # nothing fetched: images inline, no style sheet links
        for name in ("src", "href"):
            if name in attributes:
                assert attributes[name].startswith(("data:", "#")), (tag, attributes)
    figures = {a["alt"] for tag, a in page.tags if tag == "img"}
    assert figures == {"trade-off", "cost frontier", "MIA ROC", "per-seed distribution",
                       "learning curves"}
    text = "".join(page.text)
    assert COMMAND in text  # the command line recorded with the runs


def test_text_from_the_store_is_escaped(hostile_db):
    text = build_report(Store(hostile_db))
    assert "<script" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    page = Page(text)
    assert not any(tag == "script" for tag, _ in page.tags)
    assert all(a.get("src", "data:").startswith("data:") for tag, a in page.tags if tag == "img")
    shown = "".join(page.text)
    for raw in (f"ga$x${HOSTILE}", f"<img src=x onerror=alert(2)>{HOSTILE}", f"</td>{HOSTILE}",
                f"diverged {HOSTILE}", f"--methods '{HOSTILE}'"):
        assert raw in shown, raw  # shown as text, exactly as stored


# The runs table as stores written before later columns and tables were added had it.
OLD_RUNS_TABLE = ("CREATE TABLE runs (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, "
                  "benchmark TEXT NOT NULL, method TEXT NOT NULL, params TEXT NOT NULL, "
                  "seed INTEGER NOT NULL, request INTEGER, status TEXT NOT NULL, error TEXT, "
                  "started_at REAL, finished_at REAL, unlearn_seconds REAL, "
                  "unlearn_cpu_seconds REAL, metrics_seconds REAL, steps INTEGER, "
                  "versions TEXT, git_commit TEXT)")

def test_an_old_store_gains_the_command_column(tmp_path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as old:
        old.execute(OLD_RUNS_TABLE)
        old.execute("INSERT INTO runs (key, benchmark, method, params, seed, status) "
                    "VALUES ('old', 'digits-random10', 'ga', '{}', 0, 'finished')")
    store = Store(db, command="unlearnbench run -b digits-random10")
    store.write(RunRecord("new", "digits-random10", "ga", {}, 1, "finished"))
    assert [(r["key"], r["command"]) for r in store.runs()] == [
        ("old", None), ("new", "unlearnbench run -b digits-random10")]
    assert "not recorded" in build_report(store)


def test_report_errors_speak_to_the_user(digits_db, tmp_path):
    from unlearnbench.errors import UserError

    with pytest.raises(UserError, match="no store at"):
        write_report(tmp_path / "missing.db", tmp_path / "r.html")
    with pytest.raises(UserError, match="does not exist"):
        write_report(digits_db, tmp_path / "no" / "r.html")
    with pytest.raises(UserError, match="holds no runs for 'cifar10-random10'"):
        write_report(digits_db, tmp_path / "r.html", benchmark="cifar10-random10")


@pytest.fixture(scope="module")
def driver():
    reason = browser.missing()
    if reason:
        warnings.warn(f"browser tests skipped: {reason}")
        pytest.skip(reason)
    session = browser.open_browser()
    yield session
    session.quit()


def artefact_dir(tmp_path) -> Path:
    folder = Path(os.environ.get("UNLEARNBENCH_ARTEFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def load(driver, path: Path) -> list[dict]:
    """Open ``path``; return the console entries it logged that are errors."""
    driver.get_log("browser")  # drop whatever an earlier page left
    driver.get(path.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_the_report_in_a_real_browser(driver, digits_db, tmp_path, capsys):
    from selenium.webdriver.common.by import By

    out = write_report(digits_db, tmp_path / "report.html")
    assert load(driver, out) == []
    # every figure decoded; nothing fetched from anywhere
    assert driver.execute_script(
        "return [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert driver.execute_script("return document.images.length") == 5
    fetched = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(name.startswith("data:") for name in fetched), fetched

    means = stored_means(digits_db)
    rows = driver.find_elements(By.CSS_SELECTOR, "table.leaderboard tr[data-label]")
    assert sorted(row.get_attribute("data-label") for row in rows) == ["finetune", "ga", "retrain"]
    checked = 0
    for row in rows:
        method = row.get_attribute("data-label")
        assert row.find_element(By.CSS_SELECTOR, "td.seeds").text == "2"
        for cell in row.find_elements(By.CSS_SELECTOR, "td[data-metric]"):
            metric = cell.get_attribute("data-metric")
            if metric == "unlearn_seconds":  # a runs column, not a metric value
                continue
            assert float(cell.get_attribute("data-mean")) == pytest.approx(means[method][metric],
                                                                           rel=1e-12)
            assert cell.text.startswith(number(means[method][metric]))
            checked += 1
    assert checked >= 3 * 6  # UA, RA, TA, MIA, Avg. Gap, Speed-up for each method

    # The confidence attack's AUC is the Mann-Whitney statistic of the stored per-example
    # confidences: P(member score > non-member score) + P(tie) / 2, pooled over seeds.
    store = Store(digits_db)
    cells = driver.find_elements(By.CSS_SELECTOR, "table.roc td[data-auc]")
    assert len(cells) == 3
    for cell in cells:
        method = cell.find_element(By.XPATH, "preceding-sibling::td").text
        runs = [r for r in store.runs() if r["method"] == method]
        forget = np.concatenate([store.per_example(r["id"], "forget_confidence")[2]
                                 for r in runs])
        test = np.concatenate([store.per_example(r["id"], "test_confidence")[2] for r in runs])
        wins = (forget[:, None] > test[None, :]).mean() + (forget[:, None] == test[None, :]).mean() / 2
        assert float(cell.get_attribute("data-auc")) == pytest.approx(wins, abs=1e-9)

    # The per-example table: each cell is the method's mean over the seeds holding the example
    per_example = {}
    for run in store.runs():
        _, ids, values = store.per_example(run["id"], "forget_accuracy")
        for example, value in zip(ids.tolist(), values.tolist()):
            per_example.setdefault((run["method"], example), []).append(value)
    header = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "table.worst th")][1:]
    for row in driver.find_elements(By.CSS_SELECTOR, "table.worst tr")[1:]:
        cells = row.find_elements(By.TAG_NAME, "td")
        example = int(cells[0].text)
        for method, cell in zip(header, cells[1:]):
            if (method, example) in per_example:
                assert float(cell.get_attribute("data-value")) == pytest.approx(
                    np.mean(per_example[(method, example)]))
    assert COMMAND in driver.find_element(By.CSS_SELECTOR, "table.environments").text

    shot = browser.full_page_screenshot(driver, artefact_dir(tmp_path) / "report-digits-test.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with capsys.disabled():
        print(f"\nreport screenshot: {shot}")


def test_hostile_names_stay_text_in_a_real_browser(driver, hostile_db, tmp_path):
    from selenium.webdriver.common.by import By

    out = write_report(hostile_db, tmp_path / "hostile.html")
    assert load(driver, out) == []
    labels = [cell.text for cell in driver.find_elements(
        By.CSS_SELECTOR, "table.leaderboard td.method")]
    assert any(label.startswith(f"ga$x${HOSTILE}[note=") for label in labels), labels
    assert driver.find_element(By.TAG_NAME, "h2").text == f"<img src=x onerror=alert(2)>{HOSTILE}"
    assert driver.execute_script("return document.scripts.length") == 0


@pytest.mark.slow
def test_report_command(digits_db, tmp_path):
    script = Path(sys.executable).with_name("unlearnbench")
    cli = [str(script)] if script.is_file() else [sys.executable, "-m", "unlearnbench.cli"]
    out = tmp_path / "report.html"
    done = subprocess.run([*cli, "report", "--db", str(digits_db), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {out}" and out.stat().st_size > 10_000


def test_report_command_without_a_store_says_so(tmp_path, capsys):
    from unlearnbench.cli import main

    with pytest.raises(SystemExit) as exit_code:
        main(["report", "--db", str(tmp_path / "none.db"), "--out", str(tmp_path / "r.html")])
    assert exit_code.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: no store at") and len(error.splitlines()) == 1
    assert not (tmp_path / "r.html").exists()
