"""The report's views of one benchmark beyond its leaderboard: the forget–utility
trade-off, the cost frontier, membership-inference ROC curves, per-seed distributions,
learning curves, a generative benchmark's samples, the forget examples not forgotten, and
the environment and command behind each run. Each takes the benchmark's leaderboard rows and
runs (each run carrying its row's ``label``) and returns an HTML fragment ("" where the store
holds nothing to show)."""
from __future__ import annotations

import datetime
import json
from collections import defaultdict

import numpy as np

from .. import registry
from ..store import Store
from . import plots
from .frontier import frontier
from .leaderboard import columns, goal_words, heading, sort_metric
from .markup import esc, header, image, number

# The trade-off plot's axes, the first pair a benchmark measured: (forget side, utility side).
TRADEOFF_AXES = [("ua", "ta"), ("forget_accuracy", "ta"), ("forget_prob", "model_utility"),
                 ("forget_prob", "retain_prob"), ("forget_quality", "model_utility")]
# ROC curves from stored per-example values: (member metric, non-member metric, sign that
# turns a value into a member score, what is plotted). The first pair present is used.
ROC_SOURCES = [
    ("forget_nll", "holdout_nll", -1.0,
     "LOSS attack: member score = −(mean answer-token NLL), forget records (members) against "
     "holdout records (non-members), pooled over seeds; the scores behind mia_loss."),
    ("forget_confidence", "test_confidence", 1.0,
     "confidence attack (the feature of SalUn's MIA-efficacy): member score = the softmax "
     "probability of the true label, forget examples (members) against test examples "
     "(non-members), pooled over seeds."),
    ("forget_accuracy", "ta", 1.0,
     "correctness attack: member score = 1 where the model classifies the example correctly, "
     "forget examples (members) against test examples (non-members), pooled over seeds. The "
     "store keeps per-example correctness, not confidences, so each curve has one operating "
     "point: (test accuracy, forget accuracy)."),
]
# Per-example forgetting: (metric over the forget split, what a value means). Higher = the
# example is still remembered.
FORGET_EXAMPLES = [("forget_accuracy", "1 = still classified correctly (mean over the seeds "
                                       "whose forget set holds the example)"),
                   ("forget_prob", "answer probability P(a|q)^(1/|a|), mean over seeds")]
NO_COMMAND = "not recorded (a run made before commands were stored)"
REFERENCE_METHODS = ("original", "retrain")
WORST = 15


def per_label(runs: list[dict], metric: str) -> dict[str, list[float]]:
    """The finite per-run values of ``metric``, by method label, in run order."""
    values: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        value = run["metrics"].get(metric)
        if metric == "unlearn_seconds":
            value = run.get("unlearn_seconds")
        if value is not None and np.isfinite(value):
            values[run["label"]].append(float(value))
    return values


def tradeoff_figure(rows, runs, measured, colour) -> str:
    axes = next(((x, y) for x, y in TRADEOFF_AXES if x in measured and y in measured), None)
    if axes is None:
        return ""
    x_values, y_values = per_label(runs, axes[0]), per_label(runs, axes[1])
    points = [{"label": row["label"], "method": row["method"], "x": x_values.get(row["label"], []),
               "y": y_values.get(row["label"], [])} for row in rows]
    x_title, y_title = (f"{heading(m)} [{m}]" for m in axes)
    missing = [name for name in REFERENCE_METHODS if not any(r["method"] == name for r in rows)]
    note = ("Mean over seeds, error bars one seed standard deviation. ★ retrained reference, "
            "✕ original" + (f" (not in the store: {', '.join(missing)})" if missing else "") + ".")
    return (f"<h3>Forget–utility trade-off</h3>"
            f"{image(plots.tradeoff(points, x_title, y_title, colour), 'trade-off')}"
            f'<p class="note">{esc(note)}</p>')


def frontier_figure(rows, colour) -> str:
    """The cost frontier of the rows with a measured cost (``report.frontier``)."""
    points = frontier(rows)
    if not points:
        return ""
    metric = points[0]["metric"]
    note = ("Cost: examples passed forward and backward as a fraction of the retrained "
            "reference's (original 0, retrain 1); mean over seeds. Outlined points are "
            f"Pareto-optimal ({goal_words(metric)} on the vertical axis).")
    return (f"<h3>Cost frontier</h3>"
            f"{image(plots.frontier(points, heading(metric), colour), 'cost frontier')}"
            f'<p class="note">{esc(note)}</p>')


def pooled(runs: list[dict], store: Store, metric: str, sign: float) -> dict[str, np.ndarray]:
    values: dict[str, list[np.ndarray]] = defaultdict(list)
    for run in runs:
        found = store.per_example(run["id"], metric)
        if found is not None:
            values[run["label"]].append(sign * found[2])
    return {label: np.concatenate(v) for label, v in values.items()}


def roc_figure(rows, runs, store, colour) -> str:
    for members_metric, nonmembers_metric, sign, description in ROC_SOURCES:
        members = pooled(runs, store, members_metric, sign)
        nonmembers = pooled(runs, store, nonmembers_metric, sign)
        curves = [{"label": row["label"], "members": members[row["label"]],
                   "nonmembers": nonmembers[row["label"]]}
                  for row in rows if row["label"] in members and row["label"] in nonmembers]
        png, aucs = plots.roc_curves(curves, colour)
        if png is not None:
            listed = "".join(f'<tr><td class="method">{esc(label)}</td>'
                             f'<td class="num" data-auc="{auc!r}">{auc:.3f}</td></tr>'
                             for label, auc in aucs.items())
            return (f"<h3>Membership inference ROC</h3>{image(png, 'MIA ROC')}"
                    f'<p class="note">{esc(description)}</p>'
                    f'<table class="roc"><tr><th>Method</th><th>AUC</th></tr>{listed}</table>')
    return ('<h3>Membership inference ROC</h3><p class="note">No per-example scores of forget '
            "and held-out examples in the store to draw one from.</p>")


def distribution_figure(rows, runs, measured, colour) -> str:
    metric = sort_metric(rows) or next((m for m in columns() if m in measured), None)
    if metric is None:
        return ""
    values = per_label(runs, metric)
    ordered = {row["label"]: values[row["label"]] for row in rows if row["label"] in values}
    png = plots.seed_distribution(ordered, heading(metric), colour)
    return (f"<h3>Per-seed distribution: {esc(heading(metric))}</h3>"
            f"{image(png, 'per-seed distribution')}"
            '<p class="note">A box over the seeds of each method and every seed as a point.</p>')


def samples_figure(rows, runs, store) -> str:
    """A generative benchmark's samples: one image per method (the references first), from
    its lowest seed's run that kept some."""
    shown = {}
    for run in sorted(runs, key=lambda run: run["seed"]):
        if run["label"] not in shown:
            found = store.samples(run["id"])
            if found is not None:
                shown[run["label"]] = run["seed"], found
    if not shown:
        return ""
    order = [row["label"] for row in sorted(
        rows, key=lambda row: (REFERENCE_METHODS + (row["method"],)).index(row["method"]))
        if row["label"] in shown]
    body = "".join(
        f'<tr><td class="method">{esc(label)}<br><small>seed {shown[label][0]}</small></td>'
        f'<td>{image(plots.sample_grid(*shown[label][1]), "samples: " + label)}</td></tr>'
        for label in order)
    titles = shown[order[0]][1][0]
    return ("<h3>Generated samples</h3>"
            f'<table class="samples">{header(["Method", "Samples per condition"])}{body}</table>'
            '<p class="note">The first images each model generates from the benchmark\'s fixed '
            "prompts (the same starting noise for every model; DDIM as its metrics sample), "
            f"by condition: {esc(', '.join(titles))}.</p>")


def curves_figure(name, store, colour) -> str:
    points = [p for p in store.curves(name) if p["benchmark"] == name]
    titles = {m: f"{heading(m)} [{m}]" for m in {p["metric"] for p in points}}
    png = plots.learning_curves(points, titles, colour) if points else None
    if png is None:
        return ""
    return (f"<h3>Learning curves</h3>{image(png, 'learning curves')}"
            '<p class="note">Recorded with <code>--curve-every</code>: the metrics of the model '
            "being unlearned every N optimizer steps (step 0: the original), one line per seed "
            "and method (runs of one method with different hyperparameters share its colour). "
            "Runs observed at their first and last step only (methods without a training loop "
            "to follow, such as retrain) are left out.</p>")


def approximate(method: str) -> bool:
    """Neither the no-op nor an exact method (registered ``exact=True``: a retrain in some
    form, SISA, the analytic head); a method this process does not know counts as approximate."""
    if method == "original":
        return False
    return not (method in registry.methods and registry.methods.get(method).attributes.get("exact"))


def worst_examples(rows, runs, store) -> str:
    """The forget examples the approximate methods still remember most (the references,
    original and retrain, shown beside them for comparison)."""
    for metric, meaning in FORGET_EXAMPLES:
        values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for run in runs:
            found = store.per_example(run["id"], metric)
            if found is not None:
                for example, value in zip(found[1].tolist(), found[2].tolist()):
                    values[run["label"]][example].append(value)
        if values:
            break
    else:
        return ""
    labels = [row["label"] for row in rows if row["label"] in values]
    methods = {row["label"]: row["method"] for row in rows}
    mean = {label: {e: float(np.mean(v)) for e, v in values[label].items()} for label in labels}
    judged = [label for label in labels if approximate(methods[label])] or labels
    retrain = next((label for label in labels if methods[label] == "retrain"), None)
    examples = sorted({e for label in labels for e in mean[label]})

    def remembered(example):
        scores = [mean[label][example] for label in judged if example in mean[label]]
        baseline = mean[retrain].get(example, 0.0) if retrain else 0.0
        return -float(np.mean(scores)) if scores else 0.0, baseline, example

    worst = sorted(examples, key=remembered)[:WORST]
    head = header(["Example id", *labels])
    body = "".join(
        f'<tr><td class="num">{example}</td>' + "".join(
            f'<td class="num" data-value="{mean[label][example]!r}">{mean[label][example]:.2f}</td>'
            if example in mean[label] else '<td class="num">—</td>' for label in labels) + "</tr>"
        for example in worst)
    ties = (" Ties are broken by the retrained reference's value, lowest first: an example "
            "the reference has forgotten that the methods still remember comes first."
            if retrain else "")
    return (f"<h3>Forget examples not forgotten</h3>"
            f'<p class="note">The {len(worst)} of {len(examples)} forget examples that the '
            f"approximate methods ({esc(', '.join(judged))}) remember most on average, by "
            f"<code>{esc(metric)}</code> per example ({esc(meaning)}).{esc(ties)}</p>"
            f'<div class="scroll"><table class="worst">{head}{body}</table></div>')


def provenance(runs: list[dict]) -> str:
    """Which environment and command produced each run: distinct environments first, then
    every run."""
    environments: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        environments[(run.get("git_commit"), json.dumps(run["versions"], sort_keys=True),
                      run.get("command"))].append(run)
    summary = "".join(
        f'<tr><td class="code">{esc(commit or "unknown")}</td>'
        f'<td class="code">{esc(", ".join(f"{k} {v}" for k, v in json.loads(versions).items()))}'
        f'</td><td class="code">{esc(command or NO_COMMAND)}</td>'
        f'<td class="num">{len(group)}</td></tr>'
        for (commit, versions, command), group in environments.items())

    def when(seconds):
        if seconds is None:
            return "—"
        moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M")

    per_run = "".join(
        f'<tr><td class="num">{run["id"]}</td><td class="method">{esc(run["label"])}</td>'
        f'<td class="num">{run["seed"]}</td><td>{esc(run["status"])}</td>'
        f'<td class="num">{number(run.get("unlearn_seconds"))}</td>'
        f'<td class="num">{number(run.get("metrics_seconds"))}</td>'
        f'<td class="num">{run.get("steps") if run.get("steps") is not None else "—"}</td>'
        f"<td>{when(run.get('started_at'))}</td>"
        f'<td class="code">{esc(json.dumps(run["params"], sort_keys=True))}</td>'
        f'<td class="code">{esc(run.get("error") or "")}</td></tr>'
        for run in runs)
    runs_head = header(["Run", "Method", "Seed", "Status", "Unlearn s", "Metrics s", "Steps",
                        "Started (UTC)", "Hyperparameters", "Error"])
    return ("<h3>Environment and commands</h3>"
            f'<div class="scroll"><table class="environments">'
            f'{header(["Git commit", "Versions", "Command", "Runs"])}{summary}</table></div>'
            f"<details><summary>Every run ({len(runs)})</summary>"
            f'<div class="scroll"><table class="runs">{runs_head}{per_run}</table></div></details>')
