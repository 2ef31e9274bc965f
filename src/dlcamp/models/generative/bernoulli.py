"""The independent-Bernoulli baseline: every pixel on its own, p(x) = prod_i Bernoulli(x_i | p_i).

The model of the likelihood week that ignores all structure between pixels: its one
parameter per pixel is the logit of that pixel's marginal probability of being on, and
its maximum-likelihood fit is the training set's mean image. Every model that captures
dependencies (the chain rule's conditionals, a latent cause) must beat its NLL; the gap
is how much of an image's information is in the relations between its pixels.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from dlcamp.models import register_model
from dlcamp.models.generative.base import BinaryAutoregressive


class IndependentBernoulli(BinaryAutoregressive):
    """One logit per pixel, shared by all images (a chain rule whose conditionals ignore x_<i)."""

    def __init__(self, input_shape: Sequence[int]) -> None:
        super().__init__(input_shape)
        self.logit = nn.Parameter(torch.zeros(self.input_shape))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit.expand(x.shape[0], *self.input_shape)

    @torch.no_grad()
    def sample(
        self, n: int, condition: torch.Tensor | None = None, *, prefix: torch.Tensor | None = None, start: int = 0
    ) -> torch.Tensor:
        x = torch.bernoulli(torch.sigmoid(self.logit).expand(n, *self.input_shape).contiguous())
        if prefix is not None:
            x.view(n, -1)[:, :start] = prefix.to(x.device).reshape(n, -1)[:, :start]
        return x


@register_model("bernoulli")
def bernoulli(*, input_shape: Sequence[int] = (1, 8, 8)) -> IndependentBernoulli:
    """Independent Bernoulli pixels: the no-structure baseline of the likelihood models."""
    return IndependentBernoulli(input_shape)
