"""The evidence of a deletion request: before/after scores on the forget, retain and holdout
sets, a loss-based membership-inference test, and the report (JSON + Markdown) with the
warnings and speed-up of ``verdicts`` (and the trials of ``--method auto``).

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
``retrained_`` for the retrained comparison; the workflow adds ``speedup`` (measured) or
``speedup_estimate``.

``audit.json`` is standard JSON: a NaN or infinite number is written as null, and
``non_finite_numbers`` maps its JSON pointer (RFC 6901) to what it was (``NaN``, ``Infinity``,
``-Infinity``). In ``audit.md`` every name, id and path is escaped, so none can break a line,
a table or add markup."""
from __future__ import annotations

import json
import math
import re
import shlex
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
    non_finite: dict[str, str] = {}
    document = dict(finite_json(audit, "", non_finite), non_finite_numbers=non_finite)
    json_path.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
    md_path.write_text(markdown(audit))
    return json_path, md_path


def finite_json(value, pointer: str, non_finite: dict[str, str]):
    """``value`` with each NaN or infinite number replaced by None, recorded in
    ``non_finite`` under its JSON pointer (``pointer`` is ``value``'s own)."""
    if isinstance(value, float) and not math.isfinite(value):
        non_finite[pointer] = ("NaN" if math.isnan(value) else
                               "Infinity" if value > 0 else "-Infinity")
        return None
    if isinstance(value, dict):
        return {key: finite_json(item, f"{pointer}/{_pointer_token(key)}", non_finite)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item, f"{pointer}/{i}", non_finite) for i, item in enumerate(value)]
    return value


def _pointer_token(key) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


# Characters that make markup inline (emphasis, code, links, HTML, tables, strikethrough,
# entities, a heading's closing #s and escapes); CommonMark lets a backslash escape each.
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&#])")


def _text(value) -> str:
    """A name or id as literal Markdown text on one line: special characters escaped, line
    breaks shown as \\n."""
    escaped = MARKDOWN_SPECIAL.sub(r"\\\1", str(value))
    return escaped.replace("\r", "\\\\r").replace("\n", "\\\\n")


def _code(value) -> str:
    """A path or command as an inline code span on one line: fenced by more backticks than
    any run inside it (padded with a space where it starts or ends with one), line breaks
    shown as \\n."""
    text = str(value).replace("\r", "\\r").replace("\n", "\\n")
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text[:1] in ("`", " ") or text[-1:] in ("`", " ") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.4g}" if abs(value) < 10 or abs(value) >= 1e6 else f"{value:.2f}"


def _speedup(speed: dict) -> str:
    if speed["kind"] == "measured":
        return (f"{_number(speed['value'])}x, measured ({speed['retrain_seconds']:.2f} s to "
                f"retrain, {speed['unlearn_seconds']:.2f} s to unlearn)")
    if speed["value"] is None:
        return "none: the method took no optimizer steps (or no measurable time)"
    return f"{_number(speed['value'])}x, estimate: {_text(speed['basis'])}"


def markdown(audit: dict) -> str:
    request, method, metrics = audit["request"], audit["method"], audit["metrics"]
    roles = [r for r in PREFIXES if r in metrics]
    shown = ", ".join(map(_text, request["ids"][:20])) + (" …" if request["count"] > 20 else "")
    settings = _text(", ".join(f"{k}={v}" for k, v in method["settings"].items()) or "none")
    store = audit["store"]
    show = shlex.join(["unlearnbench", "show", "--db", store["path"], "-b", store["benchmark"]])
    lines = [
        f"# Deletion audit: {_text(audit['model']['name'])}", "",
        f"- **Removed**: {request['count']} records of {_code(audit['data']['path'])} "
        f"(ids: {shown}); SHA-256 of the removed records: {_code(request['records_sha256'])}",
        f"- **Method**: {_code(method['name'])} ({settings}); seed {audit['seed']}; "
        f"{audit['timings']['unlearn_seconds']:.2f} s, {audit['timings']['steps']} optimizer steps",
        f"- **Unlearned model**: {_code(audit['output']['path'])}",
        f"- **Speed-up over retraining**: {_speedup(audit['speedup'])}",
        f"- **Recorded**: run {store['run_id']} of {_code(store['path'])}, benchmark "
        f"{_code(store['benchmark'])} ({_code(show)})",
        "", "## Warnings", ""]
    lines += [f"- **{w['code']}**: {_text(w['message'])}" for w in audit["warnings"]] or [
        f"None (utility tolerance {audit['utility_tolerance']:g} points)."]
    lines += _auto_markdown(audit.get("auto"))
    lines += [
        "",
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
               f"recipe {_text(retrain['recipe'])}; saved in {_code(retrain['path'])}."
               if retrain["done"] else
               f"Skipped: {_text(retrain['reason'])}." if retrain["asked"] else
               "Not asked for (`--retrain`)."),
              "", "## Training recipe", "",
              "What trains from scratch (the retrained comparison, and methods that start from "
              "fresh weights); fields not given with `--set recipe.FIELD=VALUE` are defaults.",
              "", "| field | value | |", "|---|---|---|"]
    lines += [f"| {name} | {_text(value)} | "
              f"{'given' if name in audit['recipe_given'] else 'default'} |"
              for name, value in audit["recipe"].items()]
    lines += ["", "## Provenance", ""]
    lines += [f"- {label}: {_code(path)} sha256 {_code(digest)}" for label, files in
              (("model file", audit["model"]["files_sha256"]),
               ("output file", audit["output"]["files_sha256"])) for path, digest in files.items()]
    lines.append(f"- data: {_code(audit['data']['path'])} sha256 {_code(audit['data']['sha256'])}")
    if audit.get("holdout"):
        lines.append(f"- holdout: {_code(audit['holdout']['path'])} sha256 "
                     f"{_code(audit['holdout']['sha256'])}")
    lines.append("- versions: " + _text(", ".join(f"{k} {v}" for k, v in audit["versions"].items())
                                        + (f"; git commit {audit['git_commit']}"
                                           if audit.get("git_commit") else "")))
    if audit.get("command"):
        lines.append(f"- command: {_code(audit['command'])}")
    lines.append(f"- created: {audit['created']}")
    return "\n".join(lines) + "\n"


def _params(params: dict) -> str:
    return ", ".join(f"{k}={_number(v)}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items()) or "defaults"


def _trial_line(trial: dict) -> str:
    if trial["state"] != "complete":
        return f"failed: {trial['error']}"
    return (f"membership AUC {trial['mia_auc']:.3f}, forget "
            f"{trial['forget_score']:.1f} vs holdout {trial['holdout_score']:.1f}, retain fell "
            f"{trial['retain_fall']:.1f}, holdout fell {trial['holdout_fall']:.1f}"
            + ("" if trial["feasible"] else " (over the utility tolerance)"))


def _auto_markdown(auto: dict | None) -> list[str]:
    """The method choice of ``--method auto``: why, the objective and every trial."""
    if not auto:
        return []
    lines = ["", "## Method choice (--method auto)", "",
             f"Chose {_code(auto['method'])}: {_text(auto['why'])}.", "",
             f"Objective (lower is better): {_text(auto['objective'])}; "
             f"{auto['pseudo_forget']['count']} pseudo forget records drawn from "
             f"{auto['pseudo_forget']['drawn_from']} with seed {auto['pseudo_forget']['seed']}. "
             "It measures how far the records are from never-seen ones, not closeness to a "
             "model retrained without them.", "",
             "| trial | method | hyperparameters | score | result |", "|---:|---|---|---:|---|"]
    lines += [f"| {t['number']} | {_code(t['method'])} | {_text(_params(t['params']))} | "
              f"{_number(t['value'])} | {_text(_trial_line(t))} |" for t in auto["history"]]
    return lines


def summary(audit: dict) -> list[str]:
    """A few lines for the terminal: the trials and choice of ``--method auto``, what was
    removed, the scores before and after, the speed-up, where the model, the report and the
    record went, then one line per warning."""
    metrics, store = audit["metrics"], audit["store"]
    roles = [r for r in PREFIXES if r in metrics]
    lines = []
    auto = audit.get("auto")
    if auto:
        lines += [f"--method auto trial {t['number']} {t['method']} ({_params(t['params'])}): "
                  + (f"score {t['value']:.4f}, " if t["state"] == "complete" else "")
                  + _trial_line(t) for t in auto["history"]]
        lines.append(f"--method auto chose {auto['method']}: {auto['why']}")
    lines += [f"removed {audit['request']['count']} records with {audit['method']['name']} "
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
    speed = audit["speedup"]
    if speed["value"] is not None:
        how = "measured" if speed["kind"] == "measured" else "estimate from the recipe"
        lines.append(f"speed-up over retraining: {_number(speed['value'])}x ({how})")
    lines += [f"unlearned model and audit (audit.json, audit.md): {audit['output']['path']}",
              f"recorded as run {store['run_id']} in {store['path']} (benchmark "
              f"{store['benchmark']})"]
    lines += [f"warning: {w['message']}" for w in audit["warnings"]]
    return lines
