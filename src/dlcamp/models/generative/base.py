"""The contract of explicit density models, and what autoregressive models share.

Every model of the likelihood week is an explicit density p(x) over images x of shape
``input_shape`` (C, H, W) and answers two questions:

- ``log_prob(x, condition=None) -> Tensor[B]``: log p(x) in nats, one number per image.
  Autoregressive models compute it exactly; the VAE returns the importance-weighted
  lower bound with ``k`` samples (Burda et al. 2015), which tightens as k grows.
- ``sample(n, condition=None) -> Tensor[n, C, H, W]``: n draws x ~ p(x), from the global
  torch RNG (seed it for repeatable grids).

``nll_loss(x, condition)`` is what training minimises, per image, in nats: -log p(x) for
the autoregressive models, the negative ELBO (or IWAE bound) for latent-variable models
(``LatentVariableModel``: an encoder q(z | x), decoder means E[x | z] and the ELBO's terms).

Binary images. The chain rule p(x) = prod_i p(x_i | x_<i) over pixels in raster order
(row by row, left to right) with a Bernoulli per conditional: ``BinaryAutoregressive``
turns a model's per-pixel logits l_i(x_<i) into log p(x) = sum_i [x_i log s(l_i) +
(1 - x_i) log(1 - s(l_i))] and samples pixel by pixel, one forward pass per pixel.
"""

from __future__ import annotations

import abc
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def check_binary(x: torch.Tensor, what: str = "input") -> None:
    """Refuse non-binary data: Bernoulli likelihoods of grey values are not densities."""
    if not torch.all((x == 0) | (x == 1)):
        raise ValueError(
            f"{what} must be binary (0/1) for a Bernoulli likelihood; "
            "use a binarized dataset (e.g. data.binarize=dynamic)"
        )


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum over all but the batch dimension of log Bernoulli(x | sigmoid(logits)), nats, [B]."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


class DensityModel(nn.Module, abc.ABC):
    """Base of the explicit models: ``log_prob``, ``sample``, ``nll_loss``."""

    input_shape: tuple[int, int, int]
    conditional: bool = False  # True: log_prob/sample need a class label as condition

    @property
    def num_dims(self) -> int:
        c, h, w = self.input_shape
        return c * h * w

    @abc.abstractmethod
    def log_prob(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x) in nats, Tensor[B]."""

    @abc.abstractmethod
    def sample(self, n: int, condition: torch.Tensor | None = None) -> torch.Tensor:
        """n images drawn from the model, Tensor[n, C, H, W]."""

    def nll_loss(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """What training minimises, per image: ``{"loss": Tensor[B], ...named terms}``."""
        return {"loss": -self.log_prob(x, condition)}

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.log_prob(x, condition)


class LatentVariableModel(DensityModel):
    """p(x) = ∫ p(x | z) p(z) dz with prior N(0, I) and an encoder q(z | x): the VAE family.

    Beyond ``DensityModel``, what the likelihood task reports (the two ELBO terms) and
    draws (reconstructions, decoder means, latent traversals and the latent map).
    """

    latent_dim: int  # Z

    @abc.abstractmethod
    def encode(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x): mean and log-variance, each Tensor[B, Z]."""

    @abc.abstractmethod
    def decode_mean(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z] for latents [B, Z] as images Tensor[B, C, H, W]."""

    @abc.abstractmethod
    def elbo(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"elbo", "recon", "kl"}``, each Tensor[B] in nats: elbo = recon - kl."""


class BinaryAutoregressive(DensityModel):
    """p(x) = prod_i Bernoulli(x_i | sigmoid(l_i(x_<i))) over pixels in raster order.

    Subclasses implement ``logits(x) -> Tensor[B, C, H, W]`` where the logit at pixel i
    depends only on the pixels before i (the autoregressive property, tested by gradients).
    """

    def __init__(self, input_shape: Sequence[int]) -> None:
        super().__init__()
        c, h, w = (int(d) for d in input_shape)
        if c != 1:
            raise ValueError(
                f"binary autoregressive models take single-channel images, got input_shape {tuple(input_shape)}"
            )
        self.input_shape = (c, h, w)

    @abc.abstractmethod
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel Bernoulli logits [B, C, H, W]; pixel i's logit reads only x_<i."""

    def log_prob(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return bernoulli_log_prob(self.logits(x), x)

    @torch.no_grad()
    def sample(
        self, n: int, condition: torch.Tensor | None = None, *, prefix: torch.Tensor | None = None, start: int = 0
    ) -> torch.Tensor:
        """Draw pixel by pixel in raster order (one forward pass per pixel).

        With ``prefix`` (Tensor[n, C, H, W]) and ``start``, the first ``start`` pixels are
        copied from ``prefix`` and the rest are drawn given them: image completion.
        """
        c, h, w = self.input_shape
        device = next(self.parameters()).device
        x = torch.zeros(n, c, h, w, device=device)
        if prefix is not None:
            x.view(n, -1)[:, :start] = prefix.to(device).reshape(n, -1)[:, :start]
        flat = x.view(n, -1)
        for i in range(start, h * w):
            p = torch.sigmoid(self.logits(x).reshape(n, -1)[:, i])
            flat[:, i] = torch.bernoulli(p)
        return x
