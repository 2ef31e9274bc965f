"""NADE: the neural autoregressive distribution estimator.

Larochelle & Murray, "The Neural Autoregressive Distribution Estimator", AISTATS 2011.

The chain rule p(x) = prod_d p(x_d | x_<d) with every conditional a one-hidden-layer
network whose weights are shared across d:

    h_d = sigmoid(c + W[:, <d] x_<d)            (hidden state after reading x_<d)
    p(x_d = 1 | x_<d) = sigmoid(b_d + V_d . h_d)

Sharing W makes the pre-activations a running sum, a_{d+1} = a_d + W[:, d] x_d, so all D
conditionals cost O(DH) together rather than O(D^2 H): here an exclusive cumulative sum
over pixels computes every a_d in one pass. Pixels are taken in raster order.

Legend: B batch, D pixels (C*H*W), H hidden units.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp.models import register_model
from dlcamp.models.generative.base import BinaryAutoregressive


class NADE(BinaryAutoregressive):
    def __init__(self, input_shape: Sequence[int], hidden: int = 500) -> None:
        super().__init__(input_shape)
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        d = self.num_dims
        self.hidden = hidden
        self.W = nn.Parameter(torch.empty(hidden, d).uniform_(-1 / math.sqrt(d), 1 / math.sqrt(d)))  # read x_d
        self.c = nn.Parameter(torch.zeros(hidden))
        self.V = nn.Parameter(
            torch.empty(d, hidden).uniform_(-1 / math.sqrt(hidden), 1 / math.sqrt(hidden))
        )  # predict x_d
        self.b = nn.Parameter(torch.zeros(d))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.flatten(1)  # (B, D)
        contrib = xf.unsqueeze(2) * self.W.t()  # (B, D, H): W[:, d] x_d
        # a_d = c + sum_{j<d} W[:, j] x_j: the cumulative sum shifted by one pixel
        a = self.c + F.pad(contrib.cumsum(1)[:, :-1], (0, 0, 1, 0))
        logits = (torch.sigmoid(a) * self.V).sum(2) + self.b  # (B, D)
        return logits.view(x.shape)

    @torch.no_grad()
    def sample(
        self, n: int, condition: torch.Tensor | None = None, *, prefix: torch.Tensor | None = None, start: int = 0
    ) -> torch.Tensor:
        """O(DH) per image: the running pre-activation a_d is updated as pixels are drawn."""
        x = torch.zeros(n, self.num_dims, device=self.W.device)
        if prefix is not None:
            x[:, :start] = prefix.to(x.device).reshape(n, -1)[:, :start]
        a = self.c.expand(n, self.hidden).clone()
        for d in range(self.num_dims):
            if d >= start:
                p = torch.sigmoid(torch.sigmoid(a) @ self.V[d] + self.b[d])
                x[:, d] = torch.bernoulli(p)
            a += x[:, d : d + 1] * self.W[:, d]
        return x.view(n, *self.input_shape)


@register_model("nade")
def nade(*, input_shape: Sequence[int] = (1, 8, 8), hidden: int = 500) -> NADE:
    """NADE (Larochelle & Murray 2011): the chain rule with weight-shared sigmoid conditionals."""
    return NADE(input_shape, hidden)
