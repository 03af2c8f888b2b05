"""``delete``: one deletion request on a user's own model, end to end.

Load the model and data (one batch checks they fit), build a scenario around them, choose
the method (``--method auto``: ``auto``), run the registered method through ``unlearning.unlearn``,
score the original, the unlearned model and (with ``retrain`` and a training recipe) a model
retrained without the forget records, judge the inputs' range and the scores (``user_data``,
``verdicts``: warnings, speed-up), save the unlearned (and retrained) model in its own form,
record the run in the store and write the audit report.
Nothing is written to ``out`` unless all of that succeeded: the files are assembled in a
temporary directory beside it and renamed into place."""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..cache import content_key, file_sha256
from ..errors import Diverged, UserError
from ..metrics.inference import InferenceCache
from ..registry import methods
from ..specs import Recipe, resolve_params
from ..store import RunRecord, Store
from ..sweep.jobs import environment
from ..unlearning import check_supports, unlearn
from ..unlearning import Scenario
from .audit import recorded_metrics, score_model, write_report
from .auto import DEFAULT_TRIALS, choose
from .user_data import UserData, input_warnings, load_user_data, parse_forget
from .user_model import UserModel, load_user_model, save_user_model
from .user_scenario import DEFAULT_RECIPES, user_scenario
from .verdicts import DEFAULT_TOLERANCE, find_warnings, speedup

MIA_DESCRIPTION = (
    "LOSS attack: each record is scored by minus its loss; the AUC is the chance that a forget "
    "record scores above a holdout record (never trained on). 0.5: the forget records look "
    "unseen; above 0.5 they still look trained on; far below 0.5 they stand out as unusually "
    "badly fitted, which can itself reveal the request.")
# Methods that own the original model's training (Amnesiac replays it to record its updates,
# SISA replaces it by an ensemble of shard models) cannot unlearn a model trained elsewhere.
OWN_TRAINING = {"amnesiac": "replays the original training to record its updates",
                "sisa": "trains its own sharded ensemble in place of the original"}
RETRAINED_DIR = "retrained"
AUTO = "auto"  # --method auto: chosen by ``auto.choose``
HASHED_AS = {
    "classification": "each removed row's x bytes then its y bytes as stored in the .npz "
                      "(C order), rows in file order",
    "language": "each removed record's JSON (sorted keys, UTF-8) and a newline, in file order"}


@dataclass
class Request:
    """A loaded deletion request: the model, the data, the ids and the scenario around them."""

    user: UserModel
    data: UserData
    holdout: UserData | None
    forget_ids: list[str]
    positions: np.ndarray
    scenario: Scenario
    hashes: dict[str, str]  # SHA-256 of every input file


def delete(model: str, data: str, forget: str | Iterable, method: str, out: str,
           holdout: str | None = None, params: dict | None = None, recipe: dict | None = None,
           seed: int = 0, db: str = "unlearnbench.db", retrain: bool = False,
           device: str = "cpu", command: str | None = None,
           utility_tolerance: float = DEFAULT_TOLERANCE, tune: int | None = None) -> dict:
    """Unlearn the records ``forget`` names (ids, see ``user_data``) from ``model`` (see
    ``user_model`` for the forms) with registered ``method`` and hyperparameters ``params``;
    write the unlearned model and ``audit.json`` / ``audit.md`` into the new directory ``out``,
    record the run in the store ``db``, and return the audit as a dict.

    ``method="auto"`` chooses the method and its hyperparameters with ``tune`` trials (default
    8) on a pseudo request drawn from the retain records (``auto``; needs ``holdout``), then
    runs the choice on the real request; the audit's ``auto`` lists the trials.
    ``recipe``: fields of ``specs.Recipe`` (epochs, lr, batch_size, optimizer, schedule...) for
    what trains from scratch; ``retrain=True`` compares with a model retrained on the rest with
    it (classifiers given as a module only, and only when a recipe is given: a user model comes
    without its training recipe), saved in ``out/retrained``. ``utility_tolerance``: the points
    of retain or holdout utility that may be lost before the audit warns (``verdicts``).
    ``command``: the command line, kept in the audit and the store (default: this call)."""
    _check_options(method, params, tune, utility_tolerance)
    recipe_fields = _recipe_fields(recipe or {})
    if command is None:
        command = (f"unlearnbench.delete(model={model!r}, data={data!r}, forget={forget!r}, "
                   f"method={method!r}, out={str(out)!r}, holdout={holdout!r}, params={params!r}, "
                   f"recipe={recipe!r}, seed={seed!r}, retrain={retrain!r}, "
                   f"utility_tolerance={utility_tolerance!r}, tune={tune!r})")
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} already exists and is not an empty directory; give a new "
                        "directory (the unlearned model and the audit are written there)")
    store = Store(db, command=command)
    request = load_request(model, data, holdout, forget, recipe_fields, seed, device)
    choice = None
    if method == AUTO:
        choice = choose(request.scenario, seed, DEFAULT_TRIALS if tune is None else tune,
                        utility_tolerance)
        method, params = choice["method"], choice["params"]
    check_supports(method, request.scenario, params)
    # The first optimizer step of a process imports torch._dynamo (seconds): not the method's time.
    import torch._dynamo  # noqa: F401

    record = _new_record(request, method, params, seed, retrain, out, choice)
    unlearned, timings = _unlearn(request, record, params, store, out)
    retrain_note, retrained = _retrain(request, retrain, bool(recipe_fields), seed)
    metrics, membership, losses = _score(request, unlearned, retrained, seed, timings)
    warnings = input_warnings(request.data, request.holdout) + find_warnings(
        metrics, membership, request.user.task, utility_tolerance)
    recipe_used = dataclasses.asdict(request.scenario.spec.recipe)
    speed = speedup(timings, retrain_note, recipe_used, len(request.scenario.splits["retain"]))
    audit = {
        "format": "unlearnbench-deletion-audit/1",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        **describe_inputs(request, str(model)),
        "method": {"name": method, "description": methods.get(method).description,
                   "settings": record.params},
        "auto": choice,
        "recipe": recipe_used,
        "recipe_given": sorted(recipe_fields),
        "seed": seed,
        "timings": timings,
        "speedup": speed,
        "warnings": warnings,
        "utility_tolerance": utility_tolerance,
        "metrics": metrics,
        "membership_inference": (
            {"attack": "loss", "members": "forget", "nonmembers": "holdout",
             "description": MIA_DESCRIPTION, **membership} if request.holdout else
            {"skipped": "no holdout set was given (--holdout): nothing to compare the "
                        "forget records with"}),
        "retrain": retrain_note,
        "versions": record.versions, "git_commit": record.git_commit,
    }
    record.timings, record.metrics = timings, recorded_metrics(metrics, membership)
    if speed["value"] is not None:
        record.metrics["speedup" if speed["kind"] == "measured" else "speedup_estimate"] = \
            speed["value"]
    record.settings["deletion"]["warnings"] = [
        {"code": w["code"], "message": w["message"]} for w in warnings]
    loss_name = "loss" if request.user.task == "classification" else "nll"
    record.per_example = {f"forget_{loss_name}": ("forget", request.scenario.forget.ids,
                                                  losses["unlearned"]["forget"])}
    _write(audit, request, record, store, db, unlearned, retrained, out)
    return audit


def _check_options(method: str, params: dict | None, tune: int | None,
                   utility_tolerance: float) -> None:
    """Refuse what is wrong with the options before anything is loaded."""
    if method == AUTO:
        if tune is not None and tune < 1:
            raise UserError(f"--tune {tune}: give the number of trials, at least 1 (default "
                            f"{DEFAULT_TRIALS})")
        if params:
            raise UserError(f"--set {next(iter(params))}=...: --method auto chooses the "
                            "hyperparameters itself; give only recipe.* settings, or name a "
                            "method")
    else:
        entry = methods.get(method)  # an unknown name fails first, with the closest names
        if method in OWN_TRAINING:
            raise UserError(f"method {method!r} {OWN_TRAINING[method]}, so it cannot unlearn a "
                            "model trained elsewhere; choose another method (`unlearnbench list "
                            "methods`)")
        if tune is not None:
            raise UserError(f"--tune {tune} sets the trial budget of --method auto; drop it or "
                            "use --method auto")
        resolve_params(entry.params, dict(params or {}), method)
    if not (isinstance(utility_tolerance, (int, float)) and math.isfinite(utility_tolerance)
            and utility_tolerance >= 0):
        raise UserError(f"--utility-tolerance {utility_tolerance!r} is not allowed: give the "
                        "points of utility that may be lost, a number >= 0 (default 2)")


def _new_record(request: Request, method: str, params: dict | None, seed: int, retrain: bool,
                out: Path, choice: dict | None) -> RunRecord:
    """The store's record of the run, before anything ran: its key (the input files, the ids,
    the method and settings, the output directory) and the request's identity."""
    resolved = resolve_params(methods.get(method).params, dict(params or {}), method)
    settings = dataclasses.asdict(resolved) if resolved is not None else {}
    versions, commit = environment()
    if request.user.kind == "hf":
        import transformers
        versions["transformers"] = transformers.__version__
    identity = request_identity(request)
    if choice is not None:
        identity["auto"] = {"trials": choice["trials"], "candidates": choice["candidates"]}
    key = content_key({"files": request.hashes, "forget": request.forget_ids, "method": method,
                       "params": settings, "seed": seed, "out": str(out.resolve()),
                       "retrain": [retrain, request.scenario.spec.recipe],
                       **({"auto": identity["auto"]} if choice is not None else {})})
    return RunRecord(key, request.scenario.spec.name, method, settings, seed, "finished",
                     started_at=time.time(), versions=versions, git_commit=commit,
                     settings={"deletion": identity})


def _unlearn(request: Request, record: RunRecord, params: dict | None, store: Store, out: Path):
    """(unlearned model, timings) of the record's method with ``params``; a divergence is
    recorded as a failed run and reported in one line."""
    try:
        return unlearn(request.scenario, record.method, params, seed=record.seed)
    except Diverged as exc:
        record.status, record.error, record.timings = "failed", str(exc), {"steps": exc.step}
        store.write(record)
        raise UserError(f"{record.method} diverged ({exc}); nothing was written to {out}; try a "
                        "smaller learning rate with --set lr=...") from None


def _score(request: Request, unlearned, retrained, seed: int, timings: dict):
    """Scores, membership AUCs and per-example losses of the original, the unlearned and (if
    any) the retrained model; adds the time it took to ``timings``."""
    start = time.perf_counter()
    cache = InferenceCache(request.scenario.task)
    metrics, membership, losses = {}, {}, {}
    for role, candidate in (("original", request.user.model), ("unlearned", unlearned),
                            ("retrained", retrained)):
        if candidate is not None:
            metrics[role], membership[role], losses[role] = score_model(
                cache, candidate, request.scenario.splits, seed)
    timings["metrics_seconds"] = time.perf_counter() - start
    return metrics, membership, losses


def _write(audit: dict, request: Request, record: RunRecord, store: Store, db: str,
           unlearned, retrained, out: Path) -> None:
    """Save the models, record the run and write the report: assembled in a temporary
    directory beside ``out``, renamed into place once all of it succeeded. Completes
    ``audit`` with the output files and the store's run."""
    staging = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        written = save_user_model(request.user, unlearned, staging)
        if retrained is not None:
            written += save_user_model(request.user, retrained, staging / RETRAINED_DIR)
            audit["retrain"]["path"] = str(out / RETRAINED_DIR)
        run_id = store.write(record)
        audit["output"] = {"path": str(out),
                           "files_sha256": {str(out / p.relative_to(staging)): file_sha256(p)
                                            for p in written}}
        audit["store"] = {
            "path": str(db) if store.path is not None else store.name,  # no password
            "run_id": run_id, "key": record.key, "benchmark": record.benchmark,
            "request": {k: v for k, v in record.settings["deletion"].items() if k != "warnings"}}
        audit["recorded_metrics"] = record.metrics
        write_report(audit, staging)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_request(model: str, data: str, holdout: str | None, forget, recipe_fields: dict,
                 seed: int, device: str) -> Request:
    """Load and check everything a request names, in the order a user fixes them: the model,
    the data, the ids; then the scenario (one batch through the model)."""
    user = load_user_model(model, device)
    dataset = load_user_data(data, user.task)
    held = load_user_data(holdout, user.task, "holdout") if holdout else None
    forget_ids = parse_forget(forget)
    positions = dataset.positions(forget_ids)
    recipe = dataclasses.replace(DEFAULT_RECIPES[user.task], **recipe_fields)
    scenario = user_scenario(user, dataset, held, positions, recipe, seed, device)
    files = [*user.files, dataset.path, *([held.path] if held else [])]
    return Request(user, dataset, held, forget_ids, positions, scenario,
                   {str(path): file_sha256(path) for path in files})


def request_identity(request: Request) -> dict:
    """What makes this deletion request itself, as the store records it (the run's settings,
    so no two requests share a leaderboard row): the SHA-256 of the forget ids (sorted, one
    per line, each ending in a newline), of the data file, and of the model (of its files'
    SHA-256 hex digests, concatenated in the order the audit lists them), and the count; the
    workflow adds the request's warnings."""
    ids = "".join(f"{i}\n" for i in sorted(request.forget_ids))
    model_files = "".join(request.hashes[str(p)] for p in request.user.files)
    return {"forget_ids_sha256": hashlib.sha256(ids.encode()).hexdigest(),
            "data_sha256": request.hashes[str(request.data.path)],
            "model_sha256": hashlib.sha256(model_files.encode()).hexdigest(),
            "count": len(request.forget_ids)}


def describe_inputs(request: Request, model: str) -> dict:
    """The audit's account of what was removed, from what model and what data."""
    data, held, hashes = request.data, request.holdout, request.hashes
    return {
        "request": {"ids": request.forget_ids, "count": len(request.forget_ids),
                    "records_sha256": data.records_sha256(request.positions),
                    "records_sha256_of": HASHED_AS[request.user.task]},
        "model": {"kind": request.user.kind, "source": model, "name": request.user.name,
                  "files_sha256": {str(p): hashes[str(p)] for p in request.user.files}},
        "data": {"path": str(data.path), "sha256": hashes[str(data.path)], "records": len(data),
                 "retained": len(data) - len(request.positions),
                 "ids": "the file's ids" if data.has_ids else "row numbers (0-based)"},
        "holdout": None if held is None else {"path": str(held.path), "records": len(held),
                                              "sha256": hashes[str(held.path)]}}


def _recipe_fields(overrides: dict) -> dict:
    """The recipe fields ``overrides`` sets, coerced to their types (unknown names refused)."""
    resolved = resolve_params(Recipe, overrides, "recipe")
    return {name: getattr(resolved, name) for name in overrides}


def _retrain(request: Request, wanted: bool, recipe_given: bool, seed: int):
    """(the audit's note, the retrained model or None): a model of the same architecture
    trained from scratch on the retain set with the given recipe, by the registered
    ``retrain`` method, where it is asked for and can be done."""
    if not wanted:
        return {"asked": False, "done": False, "reason": "not asked for (--retrain)"}, None
    recipe = dataclasses.asdict(request.scenario.spec.recipe)
    reason = None
    if request.user.kind == "hf":
        reason = ("retraining a language model from scratch is not attempted here (a pretrained "
                  "model's training data and recipe are not at hand)")
    elif request.user.kind == "torchscript":
        reason = ("a TorchScript model cannot be re-initialised; give the model as "
                  "FILE.py:CLASS,WEIGHTS.safetensors")
    elif not recipe_given:
        reason = ("a user model comes without its training recipe; give it with --set "
                  "recipe.epochs=N (and recipe.lr, recipe.batch_size, recipe.optimizer, "
                  "recipe.momentum, recipe.weight_decay, recipe.schedule as trained)")
    if reason:
        return {"asked": True, "done": False, "reason": reason}, None
    try:
        model, timings = unlearn(request.scenario, "retrain", seed=seed)
    except Diverged as exc:
        return {"asked": True, "done": False,
                "reason": f"retraining diverged ({exc}) with recipe {recipe}"}, None
    return {"asked": True, "done": True, "seconds": timings["unlearn_seconds"],
            "recipe": recipe}, model


def parse_settings(items: Iterable[str], method: str) -> tuple[dict, dict]:
    """``--set`` items -> (method hyperparameters, recipe fields): ``lr=0.01`` or
    ``METHOD.lr=0.01`` set the method's, ``recipe.epochs=5`` the training recipe's."""
    params, recipe = {}, {}
    for item in items:
        target, eq, value = item.partition("=")
        owner, dot, name = target.rpartition(".")
        if not eq or not name or (dot and owner not in ("recipe", method)):
            raise UserError(f"--set {item!r}: write PARAM=VALUE (a hyperparameter of {method}) "
                            "or recipe.FIELD=VALUE (the training recipe), e.g. --set lr=0.001")
        (recipe if owner == "recipe" else params)[name] = value
    return params, recipe
