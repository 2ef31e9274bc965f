"""The GAN losses: what the discriminator (critic) and the generator each minimise.

Notation: D(x) is the discriminator's raw output (a logit, or a critic's score), s the
logistic sigmoid, x ~ p_data a real batch, x~ = G(z) a generated batch, E a batch mean.

The game of Goodfellow et al. 2014 ("Generative Adversarial Nets", eq. 1) is

    min_G max_D  V(D, G) = E log s(D(x)) + E log(1 - s(D(x~)))

For a fixed G the best discriminator is D*(x) = p_data(x) / (p_data(x) + p_G(x)), and at
D* the value is V = -log 4 + 2 JSD(p_data || p_G) (their Theorem 1): the generator
minimises a Jensen-Shannon divergence. Every loss below is a pair of functions, the
discriminator's ``d(real, fake)`` and the generator's ``g(fake)``, of D's outputs on a
real and a generated batch; ``LOSSES`` names them for recipes (``task.loss``).

- ``minimax`` (saturating): D minimises -V; G minimises E log(1 - s(D(x~))). Early in
  training D rejects the samples easily, s(D(x~)) is near 0, and G's gradient vanishes.
- ``non_saturating`` (Goodfellow et al. 2014, section 3): same D; G minimises
  -E log s(D(x~)), the same fixed point with strong gradients when G is losing.
- ``lsgan`` (Mao et al. 2017, "Least Squares Generative Adversarial Networks", eq. 2 with
  a = 0, b = c = 1): D minimises 1/2 E (D(x) - 1)^2 + 1/2 E D(x~)^2, G minimises
  1/2 E (D(x~) - 1)^2; D's output is a score, not a logit.
- ``hinge`` (Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018): D minimises
  E max(0, 1 - D(x)) + E max(0, 1 + D(x~)), G minimises -E D(x~).
- ``wgan_gp`` (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", Algorithm 1):
  the critic minimises E D(x~) - E D(x) + lambda E (||grad D(x^)||_2 - 1)^2 with
  x^ = eps x + (1 - eps) x~, eps ~ U[0, 1] per sample (``gradient_penalty``); G minimises
  -E D(x~). The critic estimates the Wasserstein-1 distance when it is 1-Lipschitz, which
  the penalty encourages; the paper trains the critic 5 times per generator step
  (``n_critic``) and uses no batch norm in the critic (the penalty is per sample).

Shapes: real, fake Tensor[B] (D's output per sample); every loss returns a scalar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["GANLoss", "LOSSES", "gradient_penalty", "get_loss"]


def minimax_d(real: Tensor, fake: Tensor) -> Tensor:
    """-E log s(D(x)) - E log(1 - s(D(x~))), with log s(a) = -softplus(-a), log(1 - s(a)) = -softplus(a)."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def minimax_g(fake: Tensor) -> Tensor:
    """E log(1 - s(D(x~))) = -E softplus(D(x~)): saturates (no gradient) when D rejects the samples."""
    return -F.softplus(fake).mean()


def non_saturating_g(fake: Tensor) -> Tensor:
    """-E log s(D(x~)) = E softplus(-D(x~))."""
    return F.softplus(-fake).mean()


def lsgan_d(real: Tensor, fake: Tensor) -> Tensor:
    """1/2 E (D(x) - 1)^2 + 1/2 E D(x~)^2 (targets b = 1 for real, a = 0 for fake)."""
    return 0.5 * (real - 1).square().mean() + 0.5 * fake.square().mean()


def lsgan_g(fake: Tensor) -> Tensor:
    """1/2 E (D(x~) - 1)^2 (target c = 1: G wants its samples scored as real)."""
    return 0.5 * (fake - 1).square().mean()


def hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    """E max(0, 1 - D(x)) + E max(0, 1 + D(x~))."""
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def critic_g(fake: Tensor) -> Tensor:
    """-E D(x~): the generator of the hinge loss and of WGAN(-GP)."""
    return -fake.mean()


def wasserstein_d(real: Tensor, fake: Tensor) -> Tensor:
    """E D(x~) - E D(x): the critic's loss without its gradient penalty (added by the task)."""
    return fake.mean() - real.mean()


@dataclass(frozen=True)
class GANLoss:
    """A GAN loss: the discriminator's and the generator's objectives and how to read D's output.

    ``probability``: D's output is the logit of P(real), so s(D(x)) is shown as D(x);
    otherwise it is a score shown as it is. ``penalty``: the critic adds the gradient
    penalty (weight ``task.gp_weight``).
    """

    name: str
    d: Callable[[Tensor, Tensor], Tensor]
    g: Callable[[Tensor], Tensor]
    probability: bool
    penalty: bool = False

    def shown(self, out: Tensor) -> Tensor:
        """D's output as it is plotted: a probability for the logit losses, else the score."""
        return torch.sigmoid(out) if self.probability else out


LOSSES: dict[str, GANLoss] = {
    "minimax": GANLoss("minimax", minimax_d, minimax_g, probability=True),
    "non_saturating": GANLoss("non_saturating", minimax_d, non_saturating_g, probability=True),
    "lsgan": GANLoss("lsgan", lsgan_d, lsgan_g, probability=False),
    "hinge": GANLoss("hinge", hinge_d, critic_g, probability=False),
    "wgan_gp": GANLoss("wgan_gp", wasserstein_d, critic_g, probability=False, penalty=True),
}


def get_loss(name: str) -> GANLoss:
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {name!r}")
    return LOSSES[name]


def gradient_penalty(
    critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, *, generator: torch.Generator | None = None
) -> Tensor:
    """E (||grad_x D(x^)||_2 - 1)^2 at x^ = eps x + (1 - eps) x~, eps ~ U[0, 1] per sample.

    ``critic`` maps a batch [B, ...] to scores [B] (a conditional critic closes over the
    labels). The graph is kept (``create_graph``) so the penalty trains the critic.
    """
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, generator=generator)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)  # [B, ...]
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()
