"""Small regressors: one output per example (``num_classes`` is the output size, 1)."""
from __future__ import annotations

from torch import nn

from ..registry import models
from .vision import MLP


@models.register("mlp_regressor")
class MLPRegressor(MLP):
    """Regression MLP for feature vectors: two hidden ReLU layers of 64 units, one output."""

    def __init__(self, input_shape, num_classes: int = 1):
        super().__init__(input_shape, num_classes, hidden=(64, 64))


@models.register("cnn_regressor")
class CNNRegressor(nn.Module):
    """Regression CNN for small images: two 3x3 conv blocks (16, 32 channels) with
    max-pooling, a 64-unit hidden layer, one output."""

    def __init__(self, input_shape, num_classes: int = 1):
        super().__init__()
        channels, height, width = input_shape
        self.features = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * (height // 4) * (width // 4), 64),
                                  nn.ReLU(), nn.Linear(64, num_classes))

    def forward(self, x):
        return self.head(self.features(x))
