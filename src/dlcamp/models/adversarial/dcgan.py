"""DCGAN (Radford, Metz & Chintala 2016) and its conditional version.

Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", ICLR 2016, section 3 (the architecture guidelines) and 4
(training details).

The guidelines: no pooling (the generator upsamples with stride-2 transposed convolutions,
the discriminator downsamples with stride-2 convolutions); batch norm in both players,
except the generator's output and the discriminator's input layers; ReLU in the generator
with tanh at its output; LeakyReLU (slope 0.2) in the discriminator; no fully connected
hidden layers; every weight drawn from N(0, 0.02).

Generator, for an S×S image (S = s0 * 2^n with s0 the smallest size in 4..7 reached by
halving; 32 -> 4·2³, 28 -> 7·2², 8 -> 4·2¹):

    z [B, Z(+K), 1, 1] --ConvT(k=s0)--> [B, w·2^(n-1), s0, s0] --(ConvT 4/2/1, BN, ReLU)×(n-1)-->
    [B, w, S/2, S/2] --ConvT 4/2/1, tanh--> [B, C, S, S]

Discriminator, the mirror: [B, C(+K), S, S] --(Conv 4/2/1, [norm], LeakyReLU 0.2)×n-->
[B, w·2^(n-1), s0, s0] --flatten, linear--> [B] (the paper's last layer, a convolution over
the whole s0×s0 map, is this linear map). The conditional version feeds onehot(y) to G with
z and to D as K constant channels ("concat"), or projects D's features on a class
embedding ("projection", Miyato & Koyama 2018). WGAN-GP's critic must not use batch norm
(the gradient penalty is per sample): ``d_norm: layer`` (Gulrajani et al. 2017) or ``none``.

Legend: B batch, Z latent dimensions, K classes, C/S image channels and size, w width.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn as nn

from dlcamp.models import register_model
from dlcamp.models.adversarial.base import CONDITIONINGS, AdversarialModel, DiscriminatorHead, dcgan_init, one_hot
from dlcamp.nn.conv_transpose import ConvTranspose2d
from dlcamp.registry import forwards

D_NORMS = ("batch", "layer", "none")


def pyramid(size: int) -> tuple[int, int]:
    """(s0, n): size = s0 * 2**n with n >= 1 and s0 in 4..7, the DCGAN pyramid of an S×S image."""
    s0, n = size, 0
    while s0 % 2 == 0 and s0 // 2 >= 4:
        s0, n = s0 // 2, n + 1
    if n == 0 or not 4 <= s0 <= 7:
        raise ValueError(
            f"DCGAN needs square images of size s0·2^n with s0 in 4..7 and n >= 1 (8, 28, 32, 64...), got {size}"
        )
    return s0, n


def _d_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # layer norm over (C, H, W), as WGAN-GP's critic
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class DCGANGenerator(nn.Module):
    def __init__(self, latent_dim: int, out_shape: tuple[int, int, int], width: int, num_classes: int) -> None:
        super().__init__()
        c, s, _ = out_shape
        s0, n = pyramid(s)
        self.num_classes = num_classes
        chans = [width * 2 ** (n - 1 - i) for i in range(n)]  # w·2^(n-1), ..., w
        layers: list[nn.Module] = [
            ConvTranspose2d(latent_dim + num_classes, chans[0], s0, bias=False),  # 1×1 -> s0×s0
            nn.BatchNorm2d(chans[0]),
            nn.ReLU(),
        ]
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [ConvTranspose2d(a, b, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
        layers += [ConvTranspose2d(chans[-1], c, 4, stride=2, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        c = one_hot(y, self.num_classes, z)
        h = torch.cat([z, c], 1) if c is not None else z
        return self.net(h[:, :, None, None])  # [B, Z(+K), 1, 1] -> [B, C, S, S]


class DCGANDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple[int, int, int], width: int, num_classes: int, condition: str, norm: str) -> None:
        super().__init__()
        c, s, _ = in_shape
        s0, n = pyramid(s)
        self.concat = num_classes if condition == "concat" else 0
        chans = [width * 2**i for i in range(n)]  # w, ..., w·2^(n-1)
        layers: list[nn.Module] = [nn.Conv2d(c + self.concat, chans[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=norm == "none"), _d_norm(norm, b), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers)
        self.head = DiscriminatorHead(chans[-1] * s0 * s0, num_classes, projection=condition == "projection")

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        c = one_hot(y, self.concat, x)
        if c is not None:  # K constant planes: onehot(y) at every pixel
            x = torch.cat([x, c[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        return self.head(self.net(x).flatten(1), y)  # [B, w·2^(n-1)·s0·s0] -> [B]


class DCGAN(AdversarialModel):
    """Strided (transposed) convolutions, batch norm, ReLU/LeakyReLU, N(0, 0.02) weights."""

    def __init__(
        self,
        input_shape: Sequence[int],
        latent_dim: int = 100,
        width: int = 64,
        d_width: int | None = None,
        d_norm: Literal["batch", "layer", "none"] = "batch",
        num_classes: int = 0,
        condition: Literal["concat", "projection"] = "concat",
    ) -> None:
        super().__init__(input_shape, latent_dim, num_classes)
        if len(self.input_shape) != 3 or self.input_shape[1] != self.input_shape[2]:
            raise ValueError(f"DCGAN takes square images (C, S, S), got input_shape {self.input_shape}")
        if condition not in CONDITIONINGS or d_norm not in D_NORMS:
            raise ValueError(
                f"condition must be one of {', '.join(CONDITIONINGS)} and d_norm one of {', '.join(D_NORMS)}"
            )
        shape = self.input_shape
        self.generator = DCGANGenerator(self.latent_dim, shape, width, self.num_classes)
        self.discriminator = DCGANDiscriminator(shape, d_width or width, self.num_classes, condition, d_norm)
        dcgan_init(self)


@register_model("dcgan")
@forwards(DCGAN, drop=("num_classes", "condition"))
def dcgan(**kwargs) -> DCGAN:
    """DCGAN (Radford et al. 2016): strided convolutions and transposed convolutions, batch norm, N(0, 0.02)."""
    return DCGAN(**kwargs)


@register_model("cdcgan")
@forwards(DCGAN)
def cdcgan(*, num_classes: int, condition: Literal["concat", "projection"] = "concat", **kwargs) -> DCGAN:
    """Conditional DCGAN: onehot(y) with z in G and as constant planes in D (or a projection D)."""
    if num_classes < 1:
        raise ValueError("cdcgan needs labelled data (num_classes >= 1)")
    return DCGAN(num_classes=num_classes, condition=condition, **kwargs)
