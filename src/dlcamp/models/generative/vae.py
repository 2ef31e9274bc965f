"""The variational autoencoder, its ELBO, the importance-weighted bound, and the conditional VAE.

Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014; Burda, Grosse &
Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016; the conditional VAE of Sohn,
Lee & Yan, "Learning Structured Output Representation using Deep Conditional Generative
Models", NeurIPS 2015.

A latent-variable model p(x) = ∫ p(x | z) p(z) dz with prior p(z) = N(0, I) and a decoder
p(x | z) (Bernoulli pixels for binary images, Gaussian pixels with a learned per-pixel
scale for grey ones). The integral is intractable; an encoder q(z | x) = N(mu(x),
diag sigma²(x)) makes it a bound:

    log p(x) >= E_q[log p(x | z)] - KL(q(z | x) || p(z))   =  ELBO
                 reconstruction      prior-fitting (closed form for two Gaussians)

Sampling z = mu + sigma * eps, eps ~ N(0, I) (the reparameterisation trick) makes the
reconstruction term differentiable in the encoder's outputs.

With k samples z_1..z_k ~ q and weights w_j = p(x, z_j) / q(z_j | x), the bound
log (1/k) sum_j w_j (IWAE) equals the ELBO in expectation at k = 1, never decreases in
expectation as k grows, and tends to log p(x); ``log_prob`` returns it with ``k`` samples
(``eval_k`` by default), so a VAE's NLL in nats can stand next to the exact ones of the
autoregressive models. Training maximises the ELBO (``train_k = 1``) or the IWAE bound.

Legend: B batch, D pixels, Z latent dimensions, K classes (conditional VAE), k samples.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp.models import register_model
from dlcamp.models.generative.base import LatentVariableModel, check_binary
from dlcamp.registry import forwards

LOG_2PI = math.log(2 * math.pi)
IWAE_CHUNK = 1 << 16  # images × samples decoded at once when estimating log p(x)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """sum over the last dimension of log N(x | mean, exp(log_std)²)."""
    return (-0.5 * ((x - mean) * torch.exp(-log_std)).square() - log_std - 0.5 * LOG_2PI).sum(-1)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) in closed form, summed over the last dimension."""
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(-1)


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no activation after the last layer


class VAE(LatentVariableModel):
    def __init__(
        self,
        input_shape: Sequence[int],
        latent_dim: int = 16,
        hidden: Sequence[int] = (256, 256),
        decoder: Literal["bernoulli", "gaussian"] = "bernoulli",
        num_classes: int = 0,
        eval_k: int = 500,
        train_k: int = 1,
        min_log_std: float = -4.0,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(int(d) for d in input_shape)  # type: ignore[assignment]
        if decoder not in ("bernoulli", "gaussian"):
            raise ValueError(f"decoder must be 'bernoulli' or 'gaussian', got {decoder!r}")
        if latent_dim < 1 or eval_k < 1 or train_k < 1 or num_classes < 0:
            raise ValueError("latent_dim, eval_k and train_k must be >= 1 and num_classes >= 0")
        self.latent_dim, self.decoder_kind = latent_dim, decoder
        self.num_classes, self.eval_k, self.train_k = num_classes, eval_k, train_k
        self.conditional = num_classes > 0
        self.min_log_std = min_log_std
        d, hidden = self.num_dims, list(hidden)
        self.encoder = _mlp([d + num_classes, *hidden, 2 * latent_dim])  # -> (mu, log sigma²)
        self.decoder = _mlp([latent_dim + num_classes, *hidden[::-1], d])  # -> logits or means
        if decoder == "gaussian":
            self.log_std = nn.Parameter(torch.zeros(d))  # a learned scale per pixel

    # -- the two networks ------------------------------------------------------------
    def _with_condition(self, h: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        if not self.conditional:
            return h
        if condition is None:
            raise ValueError("a conditional VAE needs condition= (class labels, Tensor[B])")
        onehot = F.one_hot(condition.long(), self.num_classes).to(h.dtype)
        return torch.cat([h, onehot.expand(*h.shape[:-1], self.num_classes)], dim=-1)

    def encode(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x): mean and log-variance, each [B, Z]."""
        mu, logvar = self.encoder(self._with_condition(x.flatten(1), condition)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """p(x | z)'s parameters for [..., Z] latents: Bernoulli logits or Gaussian means, [..., D]."""
        if self.conditional and condition is not None and z.dim() == 3:
            condition = condition[:, None].expand(z.shape[:2])  # (B, k): one label per sample
        return self.decoder(self._with_condition(z, condition))

    def decode_mean(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z] as images [B, C, H, W] (pixel probabilities or means): for figures."""
        out = self.decode(z, condition)
        out = torch.sigmoid(out) if self.decoder_kind == "bernoulli" else out
        return out.view(-1, *self.input_shape)

    def log_likelihood(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """log p(x | z) summed over pixels; x [B, D] broadcast against params [..., D]."""
        if self.decoder_kind == "bernoulli":
            return -F.binary_cross_entropy_with_logits(params, x.expand_as(params), reduction="none").sum(-1)
        log_std = self.log_std.clamp(min=self.min_log_std)
        return gaussian_log_prob(x, params, log_std)

    def _check(self, x: torch.Tensor) -> None:
        if self.decoder_kind == "bernoulli":
            check_binary(x)

    # -- bounds ------------------------------------------------------------------------
    def elbo(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One-sample ELBO, each term [B] in nats: ``recon`` = log p(x | z), z ~ q (one draw),
        ``kl`` = KL(q || p) in closed form, ``elbo`` = recon - kl."""
        self._check(x)
        mu, logvar = self.encode(x, condition)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # reparameterised
        recon = self.log_likelihood(x.flatten(1), self.decode(z, condition))
        kl = kl_to_standard_normal(mu, logvar)
        return {"elbo": recon - kl, "recon": recon, "kl": kl}

    def log_weights(self, x: torch.Tensor, k: int, condition: torch.Tensor | None = None) -> torch.Tensor:
        """log w_j = log p(x | z_j) + log p(z_j) - log q(z_j | x) for z_j ~ q, [B, k]."""
        self._check(x)
        mu, logvar = self.encode(x, condition)
        std = torch.exp(0.5 * logvar)
        eps = torch.randn(x.shape[0], k, self.latent_dim, device=x.device, dtype=mu.dtype)
        z = mu[:, None] + std[:, None] * eps  # (B, k, Z)
        log_q = gaussian_log_prob(z, mu[:, None], 0.5 * logvar[:, None])
        log_prior = gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
        log_lik = self.log_likelihood(x.flatten(1)[:, None], self.decode(z, condition))
        return log_lik + log_prior - log_q

    def iwae(self, x: torch.Tensor, k: int, condition: torch.Tensor | None = None) -> torch.Tensor:
        """The importance-weighted bound log (1/k) sum_j w_j, [B], in chunks of samples."""
        chunk = max(1, IWAE_CHUNK // max(1, x.shape[0]))
        parts = [self.log_weights(x, min(chunk, k - s), condition) for s in range(0, k, chunk)]
        return torch.logsumexp(torch.cat(parts, dim=1), dim=1) - math.log(k)

    def log_prob(self, x: torch.Tensor, condition: torch.Tensor | None = None, k: int | None = None) -> torch.Tensor:
        """log p(x) estimated by the IWAE bound with ``k`` (default ``eval_k``) samples."""
        return self.iwae(x, k or self.eval_k, condition)

    def nll_loss(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        terms = self.elbo(x, condition)
        loss = -terms["elbo"] if self.train_k == 1 else -self.iwae(x, self.train_k, condition)
        return {"loss": loss, "recon": -terms["recon"], "kl": terms["kl"]}

    @torch.no_grad()
    def sample(self, n: int, condition: torch.Tensor | None = None) -> torch.Tensor:
        ref = next(self.parameters())
        z = torch.randn(n, self.latent_dim, device=ref.device, dtype=ref.dtype)
        params = self.decode(z, condition)
        if self.decoder_kind == "bernoulli":
            x = torch.bernoulli(torch.sigmoid(params))
        else:
            x = params + self.log_std.clamp(min=self.min_log_std).exp() * torch.randn_like(params)
        return x.view(n, *self.input_shape)


@register_model("vae")
@forwards(VAE, drop=("num_classes",))
def vae(*, input_shape: Sequence[int] = (1, 8, 8), **kwargs) -> VAE:
    """VAE (Kingma & Welling 2014): Gaussian encoder, Bernoulli/Gaussian decoder; IWAE log p(x) (Burda et al.)."""
    return VAE(input_shape, num_classes=0, **kwargs)


@register_model("cvae")
@forwards(VAE)
def cvae(*, input_shape: Sequence[int] = (1, 8, 8), num_classes: int = 10, **kwargs) -> VAE:
    """Conditional VAE (Sohn et al. 2015): encoder and decoder both read the class label."""
    return VAE(input_shape, num_classes=num_classes, **kwargs)
