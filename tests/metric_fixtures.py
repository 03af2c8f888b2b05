"""The hand-made scenario of the metric tests (``test_metrics.py``,
``test_metrics_registered.py``), whose every logit is chosen by hand.

It uses a "lookup-table" model: each example's single input feature holds its row number in
a logits table, and the model returns that row. So every prediction and every true-label
confidence is chosen by the test, and UA / RA / TA / forget accuracy / MIA-efficacy /
Avg. Gap are known exactly (see the tables below)."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from unlearnbench import registry
from unlearnbench.data import DataBundle, make_split
from unlearnbench.unlearning import Scenario
from unlearnbench.specs import BenchmarkSpec, ForgetSpec, Recipe
from unlearnbench.tasks.classification import ClassificationTask

NUM_CLASSES = 10

# --------------------------------------------------------------------------------------------
# A scenario whose every logit is chosen by hand
# --------------------------------------------------------------------------------------------
# Kinds of rows (logits over 10 classes, for an example whose true label is y):
#   "sure"   : logit 10 on y, 0 elsewhere   -> correct, confidence 1/(1+9e^-10) ~ 0.9996
#   "unsure" : logit 1 on y, 0 elsewhere    -> correct, confidence e/(e+9)      ~ 0.232
#   "wrong"  : logit 1 on (y+1)%10, 0 else  -> wrong,   confidence 1/(e+9)      ~ 0.085
# Members (retain) are all "sure"; non-members (test) are "unsure"/"wrong", so the SVC attack
# separates them cleanly: a forget example is judged a member iff it is "sure".
CONFIDENCE = {
    "sure": 1.0 / (1.0 + 9.0 * math.exp(-10.0)),
    "unsure": math.e / (math.e + 9.0),
    "wrong": 1.0 / (math.e + 9.0),
}
CORRECT = {"sure": 1.0, "unsure": 1.0, "wrong": 0.0}

# Split sizes and their (deliberately non-trivial) example ids.
FORGET_IDS = np.array([10, 3, 7, 42])
RETAIN_IDS = np.array([0, 1, 2, 4, 5, 6])
TEST_IDS = np.array([100, 101, 102, 103])
VALIDATION_IDS = np.array([200, 201])
FORGET_Y = [1, 2, 3, 4]
RETAIN_Y = [0, 5, 6, 7, 8, 9]
TEST_Y = [9, 8, 7, 6]
VALIDATION_Y = [0, 1]

# The evaluated model "U" and the retrained reference "R".
#   U: forget sure,sure,unsure,wrong -> forget acc 3/4 = 75, UA 25;
#      MIA predicts member for the two "sure" -> efficacy 2/4 non-members = 50
#      retain: 5 of 6 correct -> RA 83.33 (the wrong one is the 6th: beyond the first
#      len(test) = 4 retain examples, so it is not used as an attack member)
#      test: 3 of 4 correct -> TA 75
#   R: forget unsure,wrong,wrong,unsure -> forget acc 50, UA 50, MIA 100 (no "sure")
#      retain all correct -> RA 100; test 2 of 4 -> TA 50
#   Avg. Gap(U) = (|25-50| + |83.33-100| + |75-50| + |50-100|) / 4
#               = (25 + 100/6 + 25 + 50) / 4 = 29.1666...
U_ROWS = {
    "forget": ["sure", "sure", "unsure", "wrong"],
    "retain": ["sure", "sure", "sure", "sure", "sure", "wrong"],
    "test": ["unsure", "unsure", "wrong", "unsure"],
    "validation": ["sure", "sure"],
}
R_ROWS = {
    "forget": ["unsure", "wrong", "wrong", "unsure"],
    "retain": ["sure"] * 6,
    "test": ["unsure", "wrong", "wrong", "unsure"],
    "validation": ["sure", "sure"],
}
ORIGINAL_ROWS = {name: ["sure"] * len(rows) for name, rows in U_ROWS.items()}
EXPECTED_U = {"forget_accuracy": 75.0, "ua": 25.0, "ra": 500.0 / 6.0, "ta": 75.0,
              "mia_efficacy": 50.0}
EXPECTED_R = {"forget_accuracy": 50.0, "ua": 50.0, "ra": 100.0, "ta": 50.0,
              "mia_efficacy": 100.0}
EXPECTED_U_GAP = (25.0 + 100.0 / 6.0 + 25.0 + 50.0) / 4.0

SPLIT_ORDER = ("forget", "retain", "test", "validation")
SPLIT_IDS = {"forget": FORGET_IDS, "retain": RETAIN_IDS, "test": TEST_IDS,
             "validation": VALIDATION_IDS}
SPLIT_Y = {"forget": FORGET_Y, "retain": RETAIN_Y, "test": TEST_Y, "validation": VALIDATION_Y}


def _offsets() -> dict[str, int]:
    """Row number of each split's first example in the shared logits table."""
    out, start = {}, 0
    for name in SPLIT_ORDER:
        out[name] = start
        start += len(SPLIT_Y[name])
    return out


OFFSETS = _offsets()
TOTAL_ROWS = sum(len(y) for y in SPLIT_Y.values())


def logits_row(kind: str, label: int) -> torch.Tensor:
    row = torch.zeros(NUM_CLASSES)
    if kind == "sure":
        row[label] = 10.0
    elif kind == "unsure":
        row[label] = 1.0
    elif kind == "wrong":
        row[(label + 1) % NUM_CLASSES] = 1.0
    else:
        raise ValueError(kind)
    return row


class TableModel(nn.Module):
    """Returns row ``x[:, 0]`` of a fixed logits table; counts its forward calls."""

    def __init__(self, rows: dict[str, list[str]]):
        super().__init__()
        table = torch.zeros(TOTAL_ROWS, NUM_CLASSES)
        for name in SPLIT_ORDER:
            for i, (kind, label) in enumerate(zip(rows[name], SPLIT_Y[name])):
                table[OFFSETS[name] + i] = logits_row(kind, label)
        self.register_buffer("table", table)  # part of the state_dict -> of the fingerprint
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.table[x[:, 0].long()]


def make_splits() -> dict:
    splits = {}
    for name in SPLIT_ORDER:
        rows = np.arange(len(SPLIT_Y[name]), dtype=np.float32)[:, None] + OFFSETS[name]
        splits[name] = make_split(name, rows, SPLIT_Y[name], SPLIT_IDS[name])
    return splits


def make_scenario(model_rows=ORIGINAL_ROWS, reference_rows=R_ROWS,
                  train_seconds: float = 2.0) -> Scenario:
    splits = make_splits()
    data = DataBundle("table", splits["retain"], splits["validation"], splits["test"],
                      NUM_CLASSES)
    task = ClassificationTask(data, "mlp")
    spec = BenchmarkSpec("table", "table", "mlp", Recipe(), ForgetSpec())
    return Scenario(spec, 0, task, splits, TableModel(model_rows), TableModel(reference_rows),
                    original_meta={"train_seconds": 3.0},
                    reference_meta={"train_seconds": train_seconds})


def classification_metric_names() -> list[str]:
    """Classification metrics that apply to every scenario and are computed by default (those
    needing a corrective scenario's extra splits are checked in test_forget_kinds.py, the
    Anamnesis Index, computed on request, in test_anamnesis.py)."""
    return [e.name for e in registry.metrics.entries()
            if "classification" in e.attributes.get("tasks", ()) and not e.attributes.get("splits")
            and not e.attributes.get("on_request")]
