"""The evidence of a deletion request: before/after scores on the forget, retain and holdout
sets, a loss-based membership-inference test, and the report (JSON + Markdown).

Scores per model and split (one forward pass each, through the shared inference cache):

- classifier: ``accuracy`` (percent correct) and ``loss`` (mean cross-entropy, nats);
- language model: ``nll`` (mean over records of the per-token mean answer NLL; a document's
  whole text) and ``prob`` (mean over records of exp(−that NLL): TOFU's length-normalised
  answer probability).

Membership inference (with a holdout set): the LOSS attack scores each record by minus its
loss (higher = looks trained on); the AUC of forget (members) against holdout (never trained
on) is P(a forget record scores above a holdout record), with a 95% percentile-bootstrap
interval (``metrics.mia_text.bootstrap_auc``). 0.5 means the forget records look like unseen
ones. The values the store records are named ``{split}_{score}`` and ``mia_auc`` (+ ``_low``
/ ``_high``) for the unlearned model, with the prefix ``original_`` for the model before and
``retrained_`` for the retrained comparison."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch.nn.functional as F
from torch import nn

from ..metrics.inference import InferenceCache
from ..metrics.mia_text import bootstrap_auc

SPLITS = ("forget", "retain", "holdout")
SCORES = {"classification": ("accuracy", "loss"), "language": ("nll", "prob")}
PREFIXES = {"original": "original_", "unlearned": "", "retrained": "retrained_"}
BOOTSTRAP_RESAMPLES = 1000


def split_scores(cache: InferenceCache, model: nn.Module, split) -> tuple[dict, np.ndarray]:
    """({score: value}, per-example loss) of ``model`` on ``split``."""
    if cache.task.name == "classification":
        logits = cache.logits(model, split)
        loss = F.cross_entropy(logits.double(), split.targets, reduction="none").numpy()
        correct = (logits.argmax(1) == split.targets).double().numpy()
        return {"accuracy": 100.0 * float(correct.mean()), "loss": float(loss.mean())}, loss
    nll = cache.output(model, split, "token_statistics").mean_nll()
    return {"nll": float(nll.mean()), "prob": float(np.exp(-nll).mean())}, nll


def score_model(cache: InferenceCache, model: nn.Module, splits: dict, seed: int
                ) -> tuple[dict, dict, dict[str, np.ndarray]]:
    """(scores per split, membership-inference AUC or {}, per-example losses per split)."""
    scores, losses = {}, {}
    for name in SPLITS:
        if name in splits:
            scores[name], losses[name] = split_scores(cache, model, splits[name])
    membership = {}
    if "holdout" in losses:
        auc, low, high = bootstrap_auc(-losses["forget"], -losses["holdout"],
                                       n=BOOTSTRAP_RESAMPLES, seed=seed)
        membership = {"auc": auc, "low": low, "high": high}
    return scores, membership, losses


def recorded_metrics(metrics: dict, membership: dict) -> dict[str, float]:
    """The flat metric values the store records (see the module docstring)."""
    flat = {}
    for role, prefix in PREFIXES.items():
        for split, scores in metrics.get(role, {}).items():
            flat.update({f"{prefix}{split}_{name}": value for name, value in scores.items()})
        auc = membership.get(role)
        if auc:
            flat.update({f"{prefix}mia_auc": auc["auc"], f"{prefix}mia_auc_low": auc["low"],
                         f"{prefix}mia_auc_high": auc["high"]})
    return flat


def write_report(audit: dict, directory: Path) -> tuple[Path, Path]:
    """``audit.json`` (everything) and ``audit.md`` (the same, for people) in ``directory``."""
    json_path, md_path = directory / "audit.json", directory / "audit.md"
    json_path.write_text(json.dumps(audit, indent=1) + "\n")
    md_path.write_text(markdown(audit))
    return json_path, md_path


def _number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.4g}" if abs(value) < 10 else f"{value:.2f}"


def markdown(audit: dict) -> str:
    request, method, metrics = audit["request"], audit["method"], audit["metrics"]
    roles = [r for r in PREFIXES if r in metrics]
    shown = ", ".join(request["ids"][:20]) + (" …" if request["count"] > 20 else "")
    settings = ", ".join(f"{k}={v}" for k, v in method["settings"].items()) or "none"
    store = audit["store"]
    lines = [
        f"# Deletion audit: {audit['model']['name']}", "",
        f"- **Removed**: {request['count']} records of `{audit['data']['path']}` "
        f"(ids: {shown}); SHA-256 of the removed records: `{request['records_sha256']}`",
        f"- **Method**: `{method['name']}` ({settings}); seed {audit['seed']}; "
        f"{audit['timings']['unlearn_seconds']:.2f} s, {audit['timings']['steps']} optimizer steps",
        f"- **Unlearned model**: `{audit['output']['path']}`",
        f"- **Recorded**: run {store['run_id']} of `{store['path']}`, benchmark "
        f"`{store['benchmark']}` (`unlearnbench show --db {store['path']} -b "
        f"{store['benchmark']}`)", "",
        "## Before and after", "",
        "| split | score | " + " | ".join(roles) + " |",
        "|---|---|" + "---:|" * len(roles)]
    for split in SPLITS:
        for score in metrics["original"].get(split, {}):
            lines.append(f"| {split} | {score} | " + " | ".join(
                _number(metrics[r][split][score]) for r in roles) + " |")
    mia = audit["membership_inference"]
    lines += ["", "## Membership inference", ""]
    if "skipped" in mia:
        lines.append(f"Skipped: {mia['skipped']}.")
    else:
        lines += [mia["description"], "", "| model | AUC | 95% interval |", "|---|---:|---|"]
        lines += [f"| {r} | {_number(mia[r]['auc'])} | [{_number(mia[r]['low'])}, "
                  f"{_number(mia[r]['high'])}] |" for r in roles if r in mia]
    retrain = audit["retrain"]
    lines += ["", "## Retrained comparison", "",
              (f"Retrained from scratch on the retain set in {retrain['seconds']:.2f} s with "
               f"recipe {retrain['recipe']}." if retrain["done"] else
               f"Skipped: {retrain['reason']}." if retrain["asked"] else
               "Not asked for (`--retrain`)."),
              "", "## Provenance", ""]
    lines += [f"- {label}: `{path}` sha256 `{digest}`" for label, files in
              (("model file", audit["model"]["files_sha256"]),
               ("output file", audit["output"]["files_sha256"])) for path, digest in files.items()]
    lines.append(f"- data: `{audit['data']['path']}` sha256 `{audit['data']['sha256']}`")
    if audit.get("holdout"):
        lines.append(f"- holdout: `{audit['holdout']['path']}` sha256 `{audit['holdout']['sha256']}`")
    lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in audit["versions"].items())
                 + (f"; git commit {audit['git_commit']}" if audit.get("git_commit") else ""))
    if audit.get("command"):
        lines.append(f"- command: `{audit['command']}`")
    lines.append(f"- created: {audit['created']}")
    return "\n".join(lines) + "\n"


def summary(audit: dict) -> list[str]:
    """A few lines for the terminal: what was removed, the scores before and after, where the
    model, the report and the record went."""
    metrics, store = audit["metrics"], audit["store"]
    roles = [r for r in PREFIXES if r in metrics]
    lines = [f"removed {audit['request']['count']} records with {audit['method']['name']} "
             f"(seed {audit['seed']}) in {audit['timings']['unlearn_seconds']:.2f} s",
             f"{'':22}" + "".join(f"{r:>12}" for r in roles)]
    for split in SPLITS:
        for score in metrics["original"].get(split, {}):
            lines.append(f"{split + ' ' + score:22}" + "".join(
                f"{_number(metrics[r][split][score]):>12}" for r in roles))
    mia = audit["membership_inference"]
    if "skipped" not in mia:
        lines.append(f"{'MIA AUC forget/holdout':22}" + "".join(
            f"{_number(mia[r]['auc']):>12}" for r in roles if r in mia))
    if audit["retrain"]["asked"] and not audit["retrain"]["done"]:
        lines.append(f"retrained comparison skipped: {audit['retrain']['reason']}")
    lines += [f"unlearned model and audit (audit.json, audit.md): {audit['output']['path']}",
              f"recorded as run {store['run_id']} in {store['path']} (benchmark "
              f"{store['benchmark']})"]
    return lines
