"""MUSE's evaluation (Shi et al. 2024) on document corpora (``news``, ``books``): VerbMem and
KnowMem from shared greedy generations; PrivLeak is in ``membership.py``.

Deviations, for the small CPU models: generations are ``task.max_new_tokens`` long (48 by
default; MUSE generates 128 for VerbMem and 32 for KnowMem) and VerbMem compares them with
the same number of the true continuation's tokens; KnowMem's in-context examples are the
first ``ICL_SHOTS`` retain questions (MUSE uses a fixed handful of held-out pairs), which are
then left out of the retain score."""
from __future__ import annotations

import numpy as np

from ..data.text import TextSplit
from ..registry import metrics
from .evaluation import Evaluation, MetricResult
from .text_scores import cut_knowmem_answer, knowmem_prompt, rouge_l_f1

ICL_SHOTS = 3


@metrics.register("verbmem_forget", tasks=("language",), splits=("verbatim",), goal="retrain",
                  suite="muse", unit="%", title="VerbMem", group="forget", column=41,
                  headline=True)
def verbmem_forget(ev: Evaluation) -> MetricResult:
    """MUSE VerbMem: ROUGE-L F1 (x100) of greedy continuations of forget-text prefixes."""
    task = ev.scenario.task
    records = ev.scenario.splits["verbatim"].records
    generated = ev.output("verbatim", "generate")
    truths = task.tokenizer([r["continuation"] for r in records],
                            add_special_tokens=False)["input_ids"]
    values = 100 * np.array([rouge_l_f1(g, task.tokenizer.decode(t[:task.max_new_tokens]))
                             for g, t in zip(generated, truths)])
    return MetricResult(float(values.mean()), "verbatim", ev.ids("verbatim"), values)


def in_context(ev: Evaluation, split: str) -> TextSplit:
    """``split``'s questions behind MUSE's in-context prompt (shots from the retain questions),
    as a text set of its own; the shots themselves are left out."""
    shots = ev.scenario.splits["knowmem_retain"].records[:ICL_SHOTS]
    examples = [(r["question"], r["answer"]) for r in shots]
    source = ev.scenario.splits[split]
    keep = [i for i, r in enumerate(source.records) if split != "knowmem_retain" or i >= ICL_SHOTS]
    records = [{"prefix": knowmem_prompt(examples, source.records[i]["question"]).rstrip(),
                "continuation": " " + source.records[i]["answer"]} for i in keep]
    return TextSplit(f"{split}~icl", tuple(records), source.ids[keep])


def _knowmem(prefix: str, goal: str, title: str, group: str, column: int) -> None:
    split = f"knowmem_{prefix}"

    def metric(ev: Evaluation) -> MetricResult:
        text_set = in_context(ev, split)
        generated = ev.cache.output(ev.model, text_set, "generate")
        values = 100 * np.array([rouge_l_f1(cut_knowmem_answer(g), r["continuation"].strip())
                                 for g, r in zip(generated, text_set.records)])
        return MetricResult(float(values.mean()), split, text_set.ids, values)

    metric.__doc__ = (f"MUSE KnowMem on {prefix} QA: ROUGE-L F1 (x100) of greedy answers "
                      "behind an in-context prompt.")
    metrics.register(f"knowmem_{prefix}", tasks=("language",),
                     splits=(split, "knowmem_retain"), goal=goal, suite="muse", unit="%",
                     title=title, group=group, column=column, headline=True)(metric)


_knowmem("forget", "retrain", "KnowMem F", "forget", 42)
_knowmem("retain", "higher", "KnowMem R", "utility", 43)
