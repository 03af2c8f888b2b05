"""``unlearn``: forget records from the user's own model and audit the result."""
from __future__ import annotations

import click

from .common import check_device, console, recorded_command, set_threads
from .group import cli


@cli.command("unlearn")
@click.option("--model", "model_path", required=True,
              help="Your model: FILE.py:CLASS,WEIGHTS.safetensors; a directory with model.py, "
                   "model.safetensors and model.json ({\"class\": ..., \"kwargs\": {...}}); a "
                   "TorchScript file; or a Hugging Face causal LM directory.")
@click.option("--data", "data_path", required=True,
              help="What the model was trained on: .npz with x, y (and ids) for a classifier; "
                   "JSONL of {\"text\"} or {\"question\", \"answer\"} (and \"id\") for a "
                   "language model.")
@click.option("--forget", required=True,
              help="Ids of the records to forget, comma-separated, or @FILE with one per line "
                   "(row numbers when the data has no ids).")
@click.option("--method", required=True,
              help="A registered method (`unlearnbench list methods`), or auto: chosen with "
                   "its hyperparameters by --tune trials on a pseudo request drawn from the "
                   "retained records (needs --holdout).")
@click.option("--tune", "tune", type=int, default=None, metavar="N",
              help="The trial budget of --method auto (default 8).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="New directory for the unlearned model and the audit (audit.json, audit.md).")
@click.option("--holdout", default=None,
              help="Data of the same kind the model never saw: holdout scores and the "
                   "membership-inference test.")
@click.option("--set", "assignments", multiple=True, metavar="PARAM=VALUE",
              help="A hyperparameter of the method (lr=0.001), or of the training recipe "
                   "(recipe.epochs=20) that --retrain and some methods use (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--db", type=click.Path(dir_okay=False), default="unlearnbench.db",
              show_default=True,
              help="The store the run is recorded in: a SQLite file or a database URL.")
@click.option("--retrain", is_flag=True,
              help="Also retrain from scratch without the forget records, compare, and save the "
                   "retrained model in OUT/retrained (classifiers given as a module, with the "
                   "recipe given by --set recipe.*: epochs, lr, batch_size, optimizer, "
                   "momentum, weight_decay, schedule).")
@click.option("--utility-tolerance", type=float, default=2.0, show_default=True,
              help="Warn where retain or holdout accuracy (language models: answer "
                   "probability, in percent) falls by more than this many points, and where a "
                   "--retrain model is this much weaker than the original on holdout.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", type=int, default=1, show_default=True, help="CPU threads (torch).")
def unlearn_request(model_path, data_path, forget, method, tune, out, holdout, assignments, seed,
                    db, retrain, utility_tolerance, device, threads):
    """Unlearn records from your own model; write the unlearned model and an audit report."""
    from ..deletion.audit import summary
    from ..deletion.workflow import delete, parse_settings

    set_threads(threads)
    check_device(device)
    params, recipe = parse_settings(assignments, method)
    audit = delete(model_path, data_path, forget, method, out, holdout=holdout, params=params,
                   recipe=recipe, seed=seed, db=db, retrain=retrain, device=device,
                   command=recorded_command(), utility_tolerance=utility_tolerance, tune=tune)
    for line in summary(audit):  # one terminal line each, however long
        console.print(line, markup=False, highlight=False, soft_wrap=True)
