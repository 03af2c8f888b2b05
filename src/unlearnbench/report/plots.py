"""The HTML report's figures, drawn with matplotlib's Agg canvas (no pyplot, no global
backend switch) and returned as PNG bytes that the report inlines as base64 ``data:`` URIs.

Every function takes plain numbers already read from the store and returns None when there
is nothing to draw. Text from the data (method labels, metric names) reaches the figures
through `plain`, so a ``$`` in a name is drawn as a dollar sign, not read as mathtext."""
from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

# The runs that frame a trade-off plot: drawn with their own markers and named in the legend.
REFERENCE_MARKERS = {"retrain": ("*", "retrained reference"), "original": ("X", "no unlearning")}
DPI = 100
MIN_CURVE_POINTS = 3  # fewer draw a segment, not a curve


def plain(text: str) -> str:
    """``text`` as matplotlib should draw it literally (no mathtext)."""
    return str(text).replace("$", r"\$")


def colours(labels: list[str]) -> dict[str, tuple]:
    """One colour per label, the same in every figure of a benchmark."""
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors + colormaps["Dark2"].colors
    return {label: palette[i % len(palette)] for i, label in enumerate(labels)}


def to_png(figure: Figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI, bbox_inches="tight")
    return out.getvalue()


def tradeoff(points: list[dict], x_title: str, y_title: str, colour: dict) -> bytes | None:
    """Forget–utility trade-off: one point per method at its mean over seeds, error bars of
    one seed standard deviation. ``points``: {label, method, x: [per seed], y: [per seed]}."""
    points = [p for p in points if p["x"] and p["y"]]
    if not points:
        return None
    figure = Figure(figsize=(6.4, 4.4))
    axes = figure.add_subplot()
    for point in points:
        x, y = np.asarray(point["x"], float), np.asarray(point["y"], float)
        marker, role = REFERENCE_MARKERS.get(point["method"], ("o", None))
        name = plain(point["label"]) + (f" ({role})" if role else "")
        axes.errorbar(x.mean(), y.mean(), xerr=x.std(ddof=1) if len(x) > 1 else None,
                      yerr=y.std(ddof=1) if len(y) > 1 else None, fmt=marker,
                      markersize=14 if marker == "*" else 9, capsize=3,
                      color=colour[point["label"]], label=name)
        axes.annotate(plain(point["label"]), (x.mean(), y.mean()), textcoords="offset points",
                      xytext=(7, 5), fontsize=8)
    axes.set_xlabel(plain(x_title))
    axes.set_ylabel(plain(y_title))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    return to_png(figure)


def frontier(points: list[dict], y_title: str, colour: dict) -> bytes | None:
    """The cost frontier: one point per row at (cost / retrain, headline metric), both means
    over seeds; the Pareto-optimal points (``report.frontier``) joined by a line.
    ``points``: {label, method, budget, cost, value, pareto}; the original and retrain
    without a budget are the reference points."""
    if not points:
        return None
    figure = Figure(figsize=(6.4, 4.4))
    axes = figure.add_subplot()
    for point in points:
        marker, role = (REFERENCE_MARKERS.get(point["method"], ("o", None))
                        if point["budget"] is None else ("o", None))
        axes.plot(point["cost"], point["value"], marker,
                  markersize=14 if marker == "*" else 8, color=colour[point["label"]],
                  markeredgecolor="black" if point["pareto"] else "none",
                  label=plain(point["label"]) + (f" ({role})" if role else ""))
    optimal = sorted((p["cost"], p["value"]) for p in points if p["pareto"])
    axes.plot(*zip(*optimal), "-", color="grey", alpha=0.6, zorder=0, label="Pareto frontier")
    axes.set_xlabel("cost / retrain (examples passed forward and backward)")
    axes.set_ylabel(plain(y_title))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    return to_png(figure)


def roc_curves(curves: list[dict], colour: dict) -> tuple[bytes | None, dict[str, float]]:
    """Membership-inference ROC curves, one per method: ``curves`` holds {label, members,
    nonmembers} (member scores, higher = more likely trained on, pooled over seeds). Returns
    the figure and each label's AUC. A label without both kinds of score is left out."""
    curves = [c for c in curves if len(c["members"]) and len(c["nonmembers"])]
    if not curves:
        return None, {}
    figure = Figure(figsize=(5.2, 4.6))
    axes = figure.add_subplot()
    aucs = {}
    for curve in curves:
        scores = np.concatenate([curve["members"], curve["nonmembers"]])
        truth = np.concatenate([np.ones(len(curve["members"])), np.zeros(len(curve["nonmembers"]))])
        false_positive, true_positive, _ = roc_curve(truth, scores)
        aucs[curve["label"]] = float(roc_auc_score(truth, scores))
        axes.plot(false_positive, true_positive, marker=".",
                  color=colour[curve["label"]],
                  label=f"{plain(curve['label'])} (AUC {aucs[curve['label']]:.3f})")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    axes.set_xlabel("false positive rate (non-members called members)")
    axes.set_ylabel("true positive rate (forget examples called members)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    return to_png(figure), aucs


def seed_distribution(values: dict[str, list[float]], metric_title: str,
                      colour: dict) -> bytes | None:
    """Per-seed values of one metric per method: a box over the seeds and every seed's value
    as a point (slightly spread sideways so equal values stay visible)."""
    values = {label: v for label, v in values.items() if v}
    if not values:
        return None
    labels = list(values)
    figure = Figure(figsize=(max(4.0, 1.1 * len(labels) + 1.5), 3.6))
    axes = figure.add_subplot()
    axes.boxplot([values[label] for label in labels], widths=0.5, showfliers=False,
                 medianprops={"color": "black"})
    spread = np.random.default_rng(0)
    for position, label in enumerate(labels, start=1):
        y = np.asarray(values[label], float)
        x = position + spread.uniform(-0.12, 0.12, size=len(y))
        axes.scatter(x, y, color=colour[label], zorder=3, s=28, edgecolor="black", linewidth=0.5)
    axes.set_xticks(range(1, len(labels) + 1), [plain(label) for label in labels], rotation=20,
                    ha="right")
    axes.set_ylabel(plain(metric_title))
    axes.grid(axis="y", alpha=0.3)
    return to_png(figure)


def learning_curves(points: list[dict], titles: dict[str, str], colour: dict) -> bytes | None:
    """Learning curves: one panel per metric, one line per (method, seed) over optimizer
    steps. ``points`` are `Store.curves` rows (method, seed, step, metric, value). A line
    needs `MIN_CURVE_POINTS`: a run observed at its first and last step only (a method
    without a training loop to follow, such as retrain) and the metrics a run's final point
    adds beyond the curve's own draw no curve and are left out."""
    curves: dict[str, dict[tuple, list]] = {}
    for p in points:
        if p["value"] is not None:
            curves.setdefault(p["metric"], {}).setdefault((p["method"], p["seed"]), []).append(
                (p["step"], p["value"]))
    curves = {metric: {run: sorted(line) for run, line in lines.items()
                       if len(line) >= MIN_CURVE_POINTS}
              for metric, lines in curves.items()}
    curves = {metric: lines for metric, lines in curves.items() if lines}
    if not curves:
        return None
    columns, rows = min(len(curves), 3), -(-len(curves) // 3)
    figure = Figure(figsize=(4.2 * columns, 3.4 * rows))
    for index, (metric, lines) in enumerate(curves.items(), start=1):
        axes = figure.add_subplot(rows, columns, index)
        shown = set()
        for (method, seed), line in lines.items():
            steps, values = zip(*line)
            axes.plot(steps, values, marker=".", color=colour.get(method, "grey"), alpha=0.8,
                      label=None if method in shown else plain(method))
            shown.add(method)
        axes.set_title(plain(titles.get(metric, metric)), fontsize=10)
        axes.set_xlabel("optimizer step")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    figure.tight_layout()
    return to_png(figure)


def tile(images: np.ndarray, columns: int, gap: int) -> np.ndarray:
    """``images`` (N, H, W[, 3]) in [0, 1] laid out in rows of ``columns``, ``gap`` mid-grey
    pixels apart (a gap visible on black and on white backgrounds)."""
    rows = -(-len(images) // columns)
    height, width = images.shape[1:3]
    out = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap,
                   *images.shape[3:]), 0.5)
    for index, picture in enumerate(images):
        top, left = (k * (size + gap) for k, size in zip(divmod(index, columns), (height, width)))
        out[top:top + height, left:left + width] = picture
    return out


def sample_grid(titles: list[str], images: np.ndarray) -> bytes:
    """One model's generated samples: a block of images per condition, side by side under
    its title. ``images``: uint8, (conditions, images, C, H, W), C 1 (grey) or 3."""
    pictures = np.moveaxis(images, 2, -1) / 255.0
    if pictures.shape[-1] == 1:
        pictures = pictures[..., 0]
    side = int(np.ceil(np.sqrt(images.shape[1])))
    blocks = np.stack([tile(block, side, 1) for block in pictures])
    gap = 4
    figure = Figure(figsize=(1.3 * len(titles), 1.7))
    axes = figure.add_subplot()
    axes.imshow(tile(blocks, len(blocks), gap), cmap="gray", vmin=0, vmax=1,
                interpolation="nearest")
    width = blocks.shape[2]
    axes.xaxis.tick_top()
    axes.set_xticks([i * (width + gap) + (width - 1) / 2 for i in range(len(titles))],
                    [plain(title) for title in titles], fontsize=8)
    axes.set_yticks([])
    axes.tick_params(length=0)
    for spine in axes.spines.values():
        spine.set_visible(False)
    return to_png(figure)
