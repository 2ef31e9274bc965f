"""The GAN of Goodfellow et al. 2014 and the conditional GAN of Mirza & Osindero 2014, as MLPs.

Goodfellow, Pouget-Abadie, Mirza, Xu, Warde-Farley, Ozair, Courville & Bengio,
"Generative Adversarial Nets", NeurIPS 2014; Mirza & Osindero, "Conditional Generative
Adversarial Nets", arXiv:1411.1784, 2014.

G maps noise z ~ N(0, I) through fully connected layers to a sample (a tanh image in
[-1, 1], or a point as it is); D maps a sample through fully connected layers (LeakyReLU,
optional dropout as in the paper's discriminator) to one logit. The conditional GAN gives
both players the class: G reads [z, onehot(y)], D reads [x, onehot(y)] ("concat", as
Mirza & Osindero), or D projects its features on a class embedding ("projection",
Miyato & Koyama 2018). On 2-D points the same MLPs are the usual mode-collapse test bed.

Legend: B batch, Z latent dimensions, K classes, D = prod(input_shape) sample dimensions.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn as nn

from dlcamp.models import register_model
from dlcamp.models.adversarial.base import CONDITIONINGS, AdversarialModel, DiscriminatorHead, one_hot
from dlcamp.registry import forwards


def _mlp(sizes: Sequence[int], act: type[nn.Module], dropout: float = 0.0, **act_kw) -> nn.Sequential:
    """Linear -> act (-> dropout) for every consecutive pair of ``sizes``."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), act(**act_kw)]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """[z, onehot(y)] [B, Z (+K)] -> hidden ReLU layers -> [B, *out_shape] (tanh for images)."""

    def __init__(self, latent_dim: int, out_shape: tuple[int, ...], hidden: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self.out_shape, self.num_classes = out_shape, num_classes
        self.body = _mlp([latent_dim + num_classes, *hidden], nn.ReLU)
        self.out = nn.Linear(hidden[-1] if hidden else latent_dim + num_classes, math.prod(out_shape))
        self.squash = nn.Tanh() if len(out_shape) == 3 else nn.Identity()

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        c = one_hot(y, self.num_classes, z)
        h = self.body(torch.cat([z, c], 1) if c is not None else z)
        return self.squash(self.out(h)).view(len(z), *self.out_shape)


class MLPDiscriminator(nn.Module):
    """[x, onehot(y)] [B, D (+K)] -> hidden LeakyReLU(0.2) layers -> one logit [B]."""

    def __init__(
        self, in_shape: tuple[int, ...], hidden: Sequence[int], num_classes: int, condition: str, dropout: float
    ) -> None:
        super().__init__()
        self.concat = num_classes if condition == "concat" else 0
        d_in = math.prod(in_shape) + self.concat
        self.body = _mlp([d_in, *hidden], nn.LeakyReLU, dropout, negative_slope=0.2)
        self.head = DiscriminatorHead(hidden[-1] if hidden else d_in, num_classes, projection=condition == "projection")

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1)  # [B, D]
        c = one_hot(y, self.concat, h)
        phi = self.body(torch.cat([h, c], 1) if c is not None else h)
        return self.head(phi, y)


class GAN(AdversarialModel):
    """An MLP generator and discriminator; conditional on the class when ``num_classes > 0``."""

    def __init__(
        self,
        input_shape: Sequence[int],
        latent_dim: int = 64,
        hidden: Sequence[int] = (256, 512),
        d_hidden: Sequence[int] = (512, 256),
        dropout: float = 0.0,
        num_classes: int = 0,
        condition: Literal["concat", "projection"] = "concat",
    ) -> None:
        super().__init__(input_shape, latent_dim, num_classes)
        if condition not in CONDITIONINGS:
            raise ValueError(f"condition must be one of {', '.join(CONDITIONINGS)}, got {condition!r}")
        self.generator = MLPGenerator(self.latent_dim, self.input_shape, list(hidden), self.num_classes)
        self.discriminator = MLPDiscriminator(self.input_shape, list(d_hidden), self.num_classes, condition, dropout)


@register_model("gan")
@forwards(GAN, drop=("num_classes", "condition"))
def gan(**kwargs) -> GAN:
    """GAN (Goodfellow et al. 2014): MLP generator and discriminator, on images or 2-D points."""
    return GAN(**kwargs)


@register_model("cgan")
@forwards(GAN)
def cgan(*, num_classes: int, condition: Literal["concat", "projection"] = "concat", **kwargs) -> GAN:
    """Conditional GAN (Mirza & Osindero 2014): the class given to both players (concat or projection)."""
    if num_classes < 1:
        raise ValueError("cgan needs labelled data (num_classes >= 1)")
    return GAN(num_classes=num_classes, condition=condition, **kwargs)
