"""Looking into a model without changing it: its weight layers in order, the last k of them,
a fingerprint of its weights. Used by tasks, methods and metrics alike."""
from __future__ import annotations

import hashlib

from torch import nn


def model_fingerprint(model: nn.Module) -> str:
    """A digest of the weights (names and bytes): equal weights, equal fingerprint."""
    digest = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def layers(model: nn.Module) -> list[nn.Module]:
    """The model's parameterised leaf modules in definition order (Linear, Conv, norm...).
    "The last k layers" of CF-k and EU-k are the last k of these that hold weights of their
    own (normalisation layers ride along with the layer before them)."""
    return [m for m in model.modules()
            if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]


def last_layers(model: nn.Module, k: int) -> list[nn.Module]:
    """The last ``k`` weight layers (Linear/Conv/Embedding...), each with the normalisation
    layers that follow it."""
    found, seen = [], 0
    for module in reversed(layers(model)):
        found.append(module)
        if not isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)):
            seen += 1
            if seen == k:
                break
    return found[::-1]
