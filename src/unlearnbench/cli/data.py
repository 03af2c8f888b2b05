"""``data``: fetch data sets and models into the cache, export the generated data."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError
from .common import console
from .group import cli


@cli.group()
def data():
    """Fetch data sets and models into the cache; export generated data."""


@data.command()
@click.argument("name")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
def fetch(name, cache_dir):
    """Fetch a data set or model into the cache (those registered with a fetcher: mnist,
    cifar10, books, ...; `unlearnbench list datasets` shows their sources)."""
    from ..cache import default_cache_dir
    from ..registry import datasets, models

    fetchable = {e.name: e.attributes["fetch"] for registry in (datasets, models)
                 for e in registry.entries() if e.attributes.get("fetch")}
    if name not in fetchable:
        raise UserError(f"nothing called {name!r} can be fetched; choose one of: "
                        f"{', '.join(sorted(fetchable))}")
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    path = fetchable[name](root)
    console.print(f"{name} is ready at {path}", markup=False, highlight=False)


@data.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Directory to write.")
@click.option("--format", "layout", type=click.Choice(["jsonl", "hf"]), default="jsonl",
              show_default=True, help="TOFU's JSON-lines files or a saved Hugging Face DatasetDict.")
@click.option("--n-entities", type=int, default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def export(out_dir, layout, n_entities, seed):
    """Write the generated fictitious-people data in TOFU's layout (forget01/05/10,
    retain90/95/99, holdout01/05/10, world_facts, real_entities, idontknow); the `tofu` data
    set loads it back, as it loads real TOFU files."""
    from ..data.entities import REFUSALS, generate_entities
    from ..data.tofu_format import write_tofu_dataset, write_tofu_jsonl

    splits = generate_entities(n_entities, seed)
    if layout == "jsonl":
        write_tofu_jsonl(splits, out_dir)
        refusals = Path(out_dir) / "idontknow.jsonl"
        refusals.write_text("".join(f"{line}\n" for line in REFUSALS))
    else:
        write_tofu_dataset(splits, out_dir)
    console.print(f"wrote {len(splits)} splits to {out_dir}", markup=False, highlight=False)
