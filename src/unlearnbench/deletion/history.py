"""The deletion requests in the store, as ``unlearnbench show`` prints them: one row per
request, never averaged with another (two requests on one model are unrelated experiments,
not seeds), with its scores before and after, the membership AUC, the speed-up and its
warnings. Reads store records only (no torch), so ``show`` stays quick."""
from __future__ import annotations

import datetime
import math

BENCHMARK_PREFIX = "user:"


def is_deletion(benchmark: str) -> bool:
    return benchmark.startswith(BENCHMARK_PREFIX)


def _number(value, form: str = ".1f") -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:{form}}"


def _before_after(metrics: dict, name: str, form: str) -> str:
    before, after = metrics.get("original_" + name), metrics.get(name)
    return f"{_number(before, form)} → {_number(after, form)}"


def render_deletions(runs: list[dict], console) -> None:
    """One table per ``user:`` benchmark of ``runs`` (``Store.runs`` records), a row per run in
    the order they were made, then each run's warnings, one line each."""
    from rich.markup import escape
    from rich.table import Table

    for benchmark in sorted({run["benchmark"] for run in runs}):
        mine = sorted((r for r in runs if r["benchmark"] == benchmark),
                      key=lambda r: (r.get("finished_at") or 0.0, r["id"]))
        language = any("forget_nll" in run["metrics"] for run in mine)
        score, form = ("prob", ".3f") if language else ("accuracy", ".1f")
        table = Table(title=f"{escape(benchmark)} (deletion requests, one row each: "
                            f"{'answer probability' if language else 'accuracy'} before → after)")
        for title in ("Run", "Finished", "Method", "Removed", "Forget", "Retain", "Holdout",
                      "MIA AUC after [95%]", "Speed-up", "Warnings"):
            table.add_column(title, justify="left" if title in ("Method", "Warnings") else "right")
        for run in mine:
            metrics, settings = run["metrics"], run.get("settings") or {}
            request = settings.get("deletion", {})
            auc = metrics.get("mia_auc")
            low, high = metrics.get("mia_auc_low"), metrics.get("mia_auc_high")
            mia = "—" if auc is None else \
                f"{auc:.3f} [{_number(low, '.3f')}, {_number(high, '.3f')}]"
            if "speedup" in metrics:
                speed = f"{_number(metrics['speedup'])}x"
            elif "speedup_estimate" in metrics:
                speed = f"~{_number(metrics['speedup_estimate'])}x est."
            else:
                speed = "—"
            finished = datetime.datetime.fromtimestamp(run["finished_at"]).strftime(
                "%Y-%m-%d %H:%M") if run.get("finished_at") else "—"
            codes = ", ".join(dict.fromkeys(w["code"] for w in request.get("warnings", [])))
            table.add_row(str(run["id"]), finished,
                          escape(f"{run['method']} (seed {run['seed']})"
                                 + ("" if run["status"] == "finished" else " FAILED")),
                          str(request.get("count", "?")),
                          *(_before_after(metrics, f"{split}_{score}", form)
                            for split in ("forget", "retain", "holdout")),
                          mia, speed, escape(codes or "none"))
        console.print(table)
        for run in mine:
            for warning in (run.get("settings") or {}).get("deletion", {}).get("warnings", []):
                console.print(f"  run {run['id']}: warning: {warning['message']}", markup=False,
                              highlight=False, soft_wrap=True)
            if run["error"]:
                console.print(f"  run {run['id']} failed: {run['error']}", markup=False,
                              highlight=False, soft_wrap=True)
