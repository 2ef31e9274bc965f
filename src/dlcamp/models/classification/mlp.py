"""The multilayer perceptron: affine maps and nonlinearities, stacked.

Rumelhart, Hinton & Williams, "Learning representations by back-propagating errors"
(Nature, 1986). An MLP flattens its input and applies ``depth`` hidden blocks
(Linear -> norm -> activation -> dropout) and a linear classifier. It is the curriculum's
first model: every optimizer and regularizer of the foundation week is tried on it.

Legend: B batch, D input features (C*H*W), W hidden width, K classes.
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

import torch
import torch.nn as nn

from dlcamp import nn as dnn
from dlcamp.models import register_model

# Named parts a recipe can choose; a builder maps the name to the class (no getattr magic).
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
}
NORMS: dict[str, Callable[[int], nn.Module] | None] = {
    "none": None,
    "batchnorm": dnn.BatchNorm1d,  # written here (dlcamp.nn)
    "torch_batchnorm": nn.BatchNorm1d,  # PyTorch's fused kernel, same maths and state-dict keys
}


class MLP(nn.Module):
    """Flatten -> [Linear -> norm -> act -> dropout] x depth -> Linear."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: Sequence[int],
        *,
        act_layer: Callable[[], nn.Module] = nn.ReLU,
        norm_layer: Callable[[int], nn.Module] | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            # With a norm after it, the Linear's bias is redundant (the norm re-centres).
            layers.append(nn.Linear(width, h, bias=norm_layer is None))
            if norm_layer is not None:
                layers.append(norm_layer(h))
            layers.append(act_layer())
            if dropout > 0:
                layers.append(dnn.Dropout(dropout))
            width = h
        self.features = nn.Sequential(*layers)
        self.num_features = width
        self.head = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x.flatten(1))  # (B, D) -> (B, W)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)  # (B, W) -> (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model("mlp")
def mlp(
    *,
    input_shape: Sequence[int] = (1, 8, 8),
    num_classes: int = 10,
    depth: int = 2,
    width: int = 256,
    hidden: Sequence[int] | None = None,
    activation: Literal["relu", "gelu", "tanh", "sigmoid", "silu"] = "relu",
    norm: Literal["none", "batchnorm", "torch_batchnorm"] = "none",
    dropout: float = 0.0,
) -> MLP:
    """Multilayer perceptron: depth, width, activation, dropout and batch norm as arguments."""
    if depth < 0 or width < 1:
        raise ValueError(f"mlp needs depth >= 0 and width >= 1, got depth={depth}, width={width}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"mlp dropout must be in [0, 1), got {dropout}")
    in_features = 1
    for d in input_shape:
        in_features *= int(d)
    widths = list(hidden) if hidden is not None else [width] * depth
    return MLP(
        in_features, num_classes, widths, act_layer=ACTIVATIONS[activation], norm_layer=NORMS[norm], dropout=dropout
    )
