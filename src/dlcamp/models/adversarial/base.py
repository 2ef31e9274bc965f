"""What every adversarial model is: a generator G(z, y) and a discriminator D(x, y), as two groups.

A GAN defines its density only implicitly: x = G(z) with z ~ N(0, I). It has no log p(x)
to maximise; a discriminator D learns to tell real from generated samples, and G learns
from D's gradients to fool it (``dlcamp.models.adversarial.losses``). The two players are
the model's two parameter groups, ``generator`` and ``discriminator``, each trained by its
own optimizer (a recipe's ``optim: {generator: ..., discriminator: ...}``).

Spaces. The models work on images in [-1, 1] (a tanh output, as DCGAN does) and on points
as they are; ``to_model_space`` and ``to_data_space`` convert from and to the data's [0, 1]
images. A conditional model (``num_classes > 0``) takes the class y of every sample.

An exponential moving average of the generator's weights (Karras et al. 2018, "Progressive
Growing of GANs", section 5; Yazıcı et al. 2019) is kept by ``enable_ema``: the task
updates it after every generator step, and samples come from it when it exists. It is
part of the model's weights (``generator_ema.*``) but of neither group: no optimizer steps it.

Legend: B batch, Z latent dimensions, K classes, C/H/W image shape (or D point dimensions).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from dlcamp.models.contracts import Grouped
from dlcamp.nn.conv_transpose import ConvTranspose2d


def one_hot(y: torch.Tensor | None, num_classes: int, like: torch.Tensor) -> torch.Tensor | None:
    """Labels [B] as one-hot float [B, K] on ``like``'s device and dtype (None when unconditional)."""
    if not num_classes:
        return None
    if y is None:
        raise ValueError("this model is conditional: give the class of every sample")
    return nn.functional.one_hot(y.long(), num_classes).to(device=like.device, dtype=like.dtype)


class AdversarialModel(nn.Module, Grouped):
    """Base of the GANs: ``generator(z, y) -> x`` and ``discriminator(x, y) -> [B]``, as two groups."""

    generator: nn.Module
    discriminator: nn.Module
    generator_ema: nn.Module | None

    def __init__(self, input_shape, latent_dim: int, num_classes: int = 0) -> None:
        super().__init__()
        self.input_shape = tuple(int(d) for d in input_shape)
        if len(self.input_shape) not in (1, 3):
            raise ValueError(f"input_shape must be (C, H, W) images or (D,) points, got {self.input_shape}")
        if latent_dim < 1 or num_classes < 0:
            raise ValueError("latent_dim must be >= 1 and num_classes >= 0")
        self.latent_dim, self.num_classes = int(latent_dim), int(num_classes)
        self.generator_ema = None

    # -- what tasks use ---------------------------------------------------------------------
    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def images(self) -> bool:
        return len(self.input_shape) == 3

    def param_groups(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Data -> what D sees: images [0, 1] -> [-1, 1]; points unchanged."""
        return x * 2 - 1 if self.images else x

    def to_data_space(self, x: torch.Tensor) -> torch.Tensor:
        """What G makes -> data: images [-1, 1] -> [0, 1]; points unchanged."""
        return ((x + 1) / 2).clamp(0, 1) if self.images else x

    def latent(self, n: int, *, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I), Tensor[n, Z]."""
        return torch.randn(n, self.latent_dim, device=device, generator=generator)

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """G(z, y) in model space, [B, *input_shape] (the trained generator, with gradients)."""
        return self.generator(z, y)

    def discriminate(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """D(x, y), [B]: a logit of P(real) or a critic's score, as the loss reads it."""
        return self.discriminator(x, y)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.generate(z, y)

    # -- the averaged generator and sampling --------------------------------------------------
    def enable_ema(self) -> None:
        """Keep ``generator_ema``, a copy of G updated by ``update_ema`` (and saved with the weights)."""
        if self.generator_ema is None:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """ema <- decay * ema + (1 - decay) * G for weights; buffers (batch-norm statistics) copied."""
        assert self.generator_ema is not None
        for e, p in zip(self.generator_ema.parameters(), self.generator.parameters()):
            e.lerp_(p.detach(), 1 - decay)
        for e, b in zip(self.generator_ema.buffers(), self.generator.buffers()):
            e.copy_(b)

    def sampler(self) -> nn.Module:
        """The generator that samples: the average when one is kept, else G itself."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    @torch.no_grad()
    def sample(
        self,
        n: int,
        condition: torch.Tensor | None = None,
        *,
        z: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """n samples in data space ([0, 1] images or points), from ``sampler()`` as it is (call eval() first)."""
        device = next(self.parameters()).device
        if z is None:
            z = self.latent(n, device=device, generator=generator)
        if self.conditional and condition is None:
            condition = torch.arange(n, device=device) % self.num_classes
        y = condition.to(device) if condition is not None else None
        return self.to_data_space(self.sampler()(z.to(device), y))


class DiscriminatorHead(nn.Module):
    """D's last layer on features phi(x) [B, F]: psi(phi) [B], plus, for a projection
    discriminator (Miyato & Koyama 2018, "cGANs with Projection Discriminator", eq. 3),
    the inner product of a learned class embedding with phi: psi(phi) + <embed(y), phi>."""

    def __init__(self, features: int, num_classes: int = 0, projection: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(features, 1)
        self.embed = nn.Embedding(num_classes, features) if projection and num_classes else None

    def forward(self, phi: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        out = self.linear(phi).squeeze(1)  # [B]
        if self.embed is not None:
            if y is None:
                raise ValueError("this model is conditional: give the class of every sample")
            out = out + (self.embed(y.long()) * phi).sum(1)
        return out


CONDITIONINGS = ("concat", "projection")


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2016, section 4: every weight ~ N(0, 0.02); batch-norm scales ~ N(1, 0.02); biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, nn.Embedding) or m.bias is None:
                continue
            nn.init.zeros_(m.bias)
