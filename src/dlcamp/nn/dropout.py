"""Dropout, written out (the "inverted" form used by every modern framework).

Paper: "Dropout: A Simple Way to Prevent Neural Networks from Overfitting", Nitish
Srivastava, Geoffrey Hinton, Alex Krizhevsky, Ilya Sutskever and Ruslan Salakhutdinov,
JMLR 15, 2014 (no arXiv id; the idea first appeared as arXiv:1207.0580, Hinton et al.
2012, "Improving neural networks by preventing co-adaptation of feature detectors").

Intuition: in training every unit is zeroed independently with probability p, so a
unit cannot rely on any particular other unit being present (no co-adaptation); each
step trains a different thinned sub-network, and the full network at test time acts as
an approximate average of this exponential ensemble. The paper scales the weights by
(1 - p) at test time; the inverted form instead scales the kept units by 1 / (1 - p)
during training, so the expected activation is unchanged and evaluation is the identity:

    mask ~ Bernoulli(1 - p)        y = x * mask / (1 - p)        E[y] = x
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Dropout"]


class Dropout(nn.Module):
    """Zero each element with probability ``p`` in training, scale the rest by 1/(1-p).

    Any input shape; the output has the input's shape. ``p=1`` zeroes everything (no
    division by zero); in eval mode the layer is the identity.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability p must be in [0, 1], got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            # Every unit dropped; 1/(1-p) is undefined, so multiply by an all-zero mask
            # (keeps the output in the autograd graph, with zero gradient).
            mask = torch.zeros_like(x)
        else:
            keep_prob = 1.0 - self.p
            # Keep mask, pre-scaled so kept units carry 1/(1-p) and dropped ones 0.
            mask = torch.empty_like(x).bernoulli_(keep_prob).div_(keep_prob)
        return x.mul_(mask) if self.inplace else x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
