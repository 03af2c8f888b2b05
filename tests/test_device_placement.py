"""Device placement: every method and metric must run with the model on an accelerator
(``--device cuda``), with no CUDA-only code path.

Without a GPU the placement bugs that only a GPU shows (a tensor made on the host then
combined with the model's outputs, ``.numpy()`` on a model output, a CPU generator drawing
onto the model's device) are caught by ``SimulatedAccelerator``: a torch function mode that
tags every tensor with where it would live if the task's device were an accelerator and
reports each operation that a real one would refuse. Tags: parameters, the original's
buffers and whatever is moved with a ``torch.device`` (``task.device``, ``x.device``) live on
the accelerator; tensors made without a device, the data splits, and moves written ``.cpu()``
or ``"cpu"`` live on the host (so a deliberate move to the host must be written that way,
never as ``torch.device("cpu")``); tensors made where the mode cannot see (``torch.func``
internals) are left untagged and never reported. A move that is a no-op on the CPU returns a
copy, as it would between devices. When a GPU is present, a real digits run checks the same.
"""
from __future__ import annotations

import ast
import os
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

import unlearnbench
from unlearnbench import registry
from unlearnbench.cache import ModelCache
from unlearnbench.errors import UserError
from unlearnbench.metrics.evaluation import Evaluation, evaluate
from unlearnbench.metrics.inference import InferenceCache
from unlearnbench.metrics.zrf import random_model

ACCELERATOR, HOST = "accelerator", "host"
PACKAGE = Path(unlearnbench.__file__).parent
TORCH = os.path.dirname(torch.__file__)
INTO = {torch.Tensor.copy_, torch.Tensor.__setitem__}  # copy into the target from anywhere
MOVES = {torch.Tensor.to, torch.Tensor.cpu, torch.Tensor.cuda, *INTO}
TO_NUMPY = {torch.Tensor.numpy, torch.Tensor.__array__}


def side_of_device(device) -> str | None:
    if isinstance(device, str):
        return HOST if device.startswith("cpu") else ACCELERATOR
    return ACCELERATOR if isinstance(device, (torch.device, int)) else None


class SimulatedAccelerator(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.sides = WeakIdKeyDictionary()
        self.problems: list[str] = []

    def side(self, tensor: torch.Tensor) -> str | None:
        return ACCELERATOR if isinstance(tensor, nn.Parameter) else self.sides.get(tensor)

    def report(self, what: str) -> None:
        frames = [f for f in traceback.extract_stack()[:-3] if not f.filename.startswith(TORCH)]
        ours = [f for f in frames if f.filename.startswith(str(PACKAGE))] or frames
        self.problems.append(f"{ours[-1].filename}:{ours[-1].lineno}: {what}")

    def target(self, func, args, kwargs, tensors) -> str | None:
        """Where a move or a factory call puts its result (None: an ordinary operation)."""
        if func is torch.Tensor.cpu:
            return HOST
        if func is torch.Tensor.cuda:
            return ACCELERATOR
        if func in INTO:
            return self.side(args[0])
        if func is torch.Tensor.to:
            for where in (*args[1:], kwargs.get("device")):
                side = (self.side(where) if isinstance(where, torch.Tensor)
                        else side_of_device(where))
                if side is not None:
                    return side
            return self.side(args[0])  # a dtype change stays where it is
        if kwargs.get("device") is not None:
            return side_of_device(kwargs["device"])
        return None if tensors else HOST  # a factory call without a device: the host

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", str(func))
        target = self.target(func, args, kwargs, tensors)
        if target is None:
            # CPU scalars (0-d) may join accelerator tensors; a host index may index one
            inputs = tensors[:1] if func is torch.Tensor.__getitem__ else tensors
            sides = {self.side(t) for t in inputs
                     if t.dim() > 0 or self.side(t) == ACCELERATOR} - {None}
            if len(sides) > 1:
                self.report(f"{name} mixes host and accelerator tensors")
            target = ACCELERATOR if ACCELERATOR in sides else (HOST if sides else None)
            if func in TO_NUMPY and target == ACCELERATOR:
                self.report(f"{name} of an accelerator tensor")
        generator = kwargs.get("generator")
        if generator is not None and generator.device.type == "cpu" and target == ACCELERATOR:
            self.report(f"{name} draws with a CPU generator onto the accelerator")
        if func in MOVES and out is args[0] and target and self.side(out) != target:
            out = out.clone()  # between devices a move copies: the source stays where it was
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) and target and not (
                    func in INTO and tensor is args[0]):
                self.sides[tensor] = target
        return out


def simulate(scenario) -> SimulatedAccelerator:
    mode = SimulatedAccelerator()
    for buffer in scenario.original.buffers():
        mode.sides[buffer] = ACCELERATOR
    for split in scenario.splits.values():
        for tensor in (getattr(split, "inputs", None), getattr(split, "targets", None)):
            if isinstance(tensor, torch.Tensor):
                mode.sides[tensor] = HOST
    return mode


def methods_for(task: str) -> list[str]:
    """The methods of ``task`` for any model (an MoE-only method is checked in test_moe.py)."""
    return [n for n in registry.methods.names()
            if task in registry.methods.get(n).attributes.get("tasks", ())
            and not registry.methods.get(n).attributes.get("architecture")
            and not registry.methods.get(n).attributes.get("class_only")]  # digits-random10


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return unlearnbench.scenario("digits-random10", seed=0,
                                 cache=ModelCache(tmp_path_factory.mktemp("placement-cache")))


def test_the_simulation_reports_what_an_accelerator_refuses(digits):
    task, batch = digits.task, next(digits.task.batches(digits.forget, 8))
    wrong, right = simulate(digits), simulate(digits)
    with wrong:
        logits = task.logits(digits.original, batch).detach()
        torch.zeros(len(batch)).index_add(0, torch.arange(len(batch)), logits[:, 0])
        logits.numpy()
        torch.randn(3, generator=torch.Generator(), device=logits.device)
        digits.original(digits.forget.inputs[:4])  # a batch never moved to task.device
    with right:
        logits = task.logits(digits.original, batch).detach()
        torch.zeros(len(batch), device=logits.device).index_add(
            0, torch.arange(len(batch)).to(logits.device), logits[:, 0])
        logits.cpu().numpy()
        torch.randn(3, generator=torch.Generator()).to(logits.device)
        digits.original(digits.forget.inputs[:4].to(task.device))
    assert [p.rsplit(": ", 1)[1] for p in wrong.problems] == [
        "index_add mixes host and accelerator tensors", "numpy of an accelerator tensor",
        "randn draws with a CPU generator onto the accelerator",
        "linear mixes host and accelerator tensors"]
    assert right.problems == []


@pytest.mark.parametrize("method", methods_for("classification"))
def test_classification_method_keeps_tensors_on_the_task_device(digits, method):
    mode = simulate(digits)
    with mode:
        unlearnbench.unlearn(digits, method, max_steps=2)
    assert mode.problems == []


def test_classification_metrics_keep_tensors_on_the_task_device(digits):
    mode = simulate(digits)
    with mode:
        evaluate(digits, digits.original)
    assert mode.problems == []


# Per-example gradients over a language model's retain set cost seconds an example here.
LANGUAGE_PARAMS = {"fisher": {"max_examples": 8}, "iu": {"max_examples": 8},
                   "ssd_det": {"max_examples": 8}}


@pytest.mark.parametrize("method", methods_for("language"))
def test_language_method_keeps_tensors_on_the_task_device(language_scenario, method):
    mode = simulate(language_scenario)
    with mode:
        model, _ = unlearnbench.unlearn(language_scenario, method,
                                        LANGUAGE_PARAMS.get(method), max_steps=2)
        if method == "uld":  # its own decoding loop
            language_scenario.task.generate(model, language_scenario.forget.subset(np.arange(2)))
    assert mode.problems == []


def test_language_metrics_keep_tensors_on_the_task_device(language_scenario):
    mode = simulate(language_scenario)
    with mode:
        evaluate(language_scenario, language_scenario.original)
    assert mode.problems == []


AUDITED = [*(PACKAGE / d for d in ("methods", "metrics", "tasks", "deletion", "models")),
           PACKAGE / "studies" / "population.py", PACKAGE / "requests" / "worst_case.py"]


def cuda_only_code(tree: ast.AST) -> list[tuple[int, str]]:
    """``.cuda()`` calls, ``"cuda"`` device strings, and ``torch.cuda`` uses other than
    ``is_available()`` outside an ``if`` on it: the code must go through ``task.device``."""
    guarded = {id(node) for branch in ast.walk(tree) if isinstance(branch, ast.If)
               and "torch.cuda.is_available" in ast.unparse(branch.test)
               for node in ast.walk(branch)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "cuda":
            found.append((node.lineno, ".cuda()"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.split(":")[0] == "cuda":
            found.append((node.lineno, repr(node.value)))
        elif isinstance(node, ast.Attribute) and ast.unparse(node.value) == "torch.cuda" \
                and node.attr != "is_available" and id(node) not in guarded:
            found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


def test_cuda_only_code_finder_finds_it():
    code = ("x.cuda()\ntorch.zeros(1, device='cuda:0')\ntorch.cuda.synchronize()\n"
            "if torch.cuda.is_available():\n    torch.cuda.synchronize()\n")
    assert [line for line, _ in cuda_only_code(ast.parse(code))] == [1, 2, 3]


def test_no_cuda_only_code_path():
    files = [f for path in AUDITED for f in ([path] if path.is_file() else path.glob("*.py"))]
    found = [f"{f.relative_to(PACKAGE)}:{line}: {what}" for f in files
             for line, what in cuda_only_code(ast.parse(f.read_text()))]
    assert len(files) > 40 and found == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_digits_methods_and_metrics_run_on_cuda(tmp_path):
    scenario = unlearnbench.scenario("digits-random10", seed=0, cache=ModelCache(tmp_path),
                                     device="cuda")
    for method in methods_for("classification"):
        try:
            model, _ = unlearnbench.unlearn(scenario, method, max_steps=2)
        except UserError as exc:  # amnesiac's bit-exact replay may not hold on a GPU
            assert method == "amnesiac" and "not bit-reproducible" in str(exc)
            continue
        assert {p.device.type for p in model.parameters()} == {"cuda"}, method
        evaluate(scenario, model)
    state = torch.cuda.get_rng_state()  # zrf's random network leaves the GPU's RNG alone
    random_model(Evaluation(scenario, scenario.original, InferenceCache(scenario.task)))
    assert torch.equal(torch.cuda.get_rng_state(), state)
