"""What a deletion audit's numbers say: warnings where they cannot be taken at face value, and
the speed-up over retraining. Pure functions of the audit's scores (no torch).

Each warning is ``{"code", "message", "numbers"}``, the message one line:

- ``utility_collapsed``: the retain or holdout utility fell by more than ``tolerance`` points
  (classifiers: accuracy in percent; language models: the answer probability exp(−NLL) in
  percent, so that one tolerance means the same on both);
- ``no_test_power``: the original's forget-vs-holdout membership AUC interval already holds
  0.5, so the test cannot tell a forgotten record from an unseen one on this model;
- ``forget_score_rose``: the forget accuracy (language: answer probability) went up;
- ``retrain_weak``: the retrained reference is more than ``tolerance`` points below the
  original on holdout, so its recipe does not reproduce the original's training;
- ``inputs_off_scale`` (from the inputs, not the scores: ``user_data.input_warnings``): a
  classifier's data or holdout inputs are far off the scale the model was trained on."""
from __future__ import annotations

# The utility score per task: (score name, factor to points, words for it).
UTILITY = {"classification": ("accuracy", 1.0, "accuracy"),
           "language": ("prob", 100.0, "answer probability")}
DEFAULT_TOLERANCE = 2.0


def find_warnings(metrics: dict, membership: dict, task: str, tolerance: float) -> list[dict]:
    """The warnings (see the module docstring) for the scores of ``audit.score_model`` per
    role (original, unlearned, retrained) and their membership AUCs."""
    score, factor, words = UTILITY[task]
    original, unlearned = metrics["original"], metrics["unlearned"]
    found = []
    for split in ("retain", "holdout"):
        if split not in original:
            continue
        before, after = original[split][score] * factor, unlearned[split][score] * factor
        if before - after > tolerance:
            found.append(_warning(
                "utility_collapsed",
                f"utility collapsed: {split} {words} fell {before - after:.1f} points, from "
                f"{before:.1f} to {after:.1f} (tolerance {tolerance:g}, --utility-tolerance)",
                split=split, before=before, after=after, tolerance=tolerance))
    mia = membership.get("original")
    if mia and mia["low"] <= 0.5 <= mia["high"]:
        found.append(_warning(
            "no_test_power",
            "this test cannot show forgetting on this model; the original's forget records "
            f"already look unseen (its membership AUC {mia['auc']:.3f}, 95% interval "
            f"[{mia['low']:.3f}, {mia['high']:.3f}], contains 0.5)",
            auc=mia["auc"], low=mia["low"], high=mia["high"]))
    before, after = original["forget"][score] * factor, unlearned["forget"][score] * factor
    if after > before:
        found.append(_warning(
            "forget_score_rose",
            f"the forget {words} went up, from {before:.1f} to {after:.1f}: the method fitted "
            "the forget records more closely, not less",
            before=before, after=after))
    retrained = metrics.get("retrained", {})
    if "holdout" in retrained:
        reference = original["holdout"][score] * factor
        weaker = retrained["holdout"][score] * factor
        if reference - weaker > tolerance:
            found.append(_warning(
                "retrain_weak",
                "the retrain recipe does not reproduce the original; compare with care: the "
                f"retrained model's holdout {words} is {weaker:.1f} against the original's "
                f"{reference:.1f} (tolerance {tolerance:g})",
                original=reference, retrained=weaker, tolerance=tolerance))
    return found


def _warning(code: str, message: str, **numbers) -> dict:
    return {"code": code, "message": message, "numbers": numbers}


def speedup(timings: dict, retrain: dict, recipe: dict, retained: int) -> dict:
    """Retraining's cost over the unlearning's: measured in seconds when the request retrained,
    else estimated in optimizer steps from the recipe (epochs × ⌈retained / batch size⌉ steps
    of retraining against the method's steps); ``value`` None when the method took no time or
    no steps."""
    if retrain.get("done"):
        seconds = timings["unlearn_seconds"]
        return {"kind": "measured", "value": retrain["seconds"] / seconds if seconds > 0 else None,
                "retrain_seconds": retrain["seconds"],
                "unlearn_seconds": timings["unlearn_seconds"]}
    retrain_steps = recipe["epochs"] * -(-retained // recipe["batch_size"])
    steps = timings["steps"]
    return {"kind": "estimate", "value": retrain_steps / steps if steps else None,
            "retrain_steps": retrain_steps, "unlearn_steps": steps,
            "basis": f"recipe epochs ({recipe['epochs']}) x ceil(retained records ({retained}) "
                     f"/ batch size ({recipe['batch_size']})) optimizer steps against the "
                     "method's, as if every step cost the same"}
