"""Batch normalization, written out.

Paper: "Batch Normalization: Accelerating Deep Network Training by Reducing Internal
Covariate Shift", Sergey Ioffe and Christian Szegedy, 2015, arXiv:1502.03167.

Intuition: each channel's pre-activation is standardised with the mean and variance of
the current mini-batch, then re-scaled and shifted by a learned ``weight`` (gamma) and
``bias`` (beta), so the layer can still represent the identity. Standardising keeps the
inputs of the next layer in a well-conditioned range whatever the earlier layers do,
which allows larger learning rates; the batch statistics add a little noise that acts
as a regulariser. At test time there is no batch to average over (or it should not
matter which other examples share it), so an exponential moving average of the batch
statistics, gathered during training, is used instead.

Per channel c, over every element that shares the channel (batch and spatial axes):

    mean_c = E[x]                          var_c = E[(x - mean_c)^2]    (biased, 1/n)
    y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c

    running_mean <- (1 - m) * running_mean + m * mean_c
    running_var  <- (1 - m) * running_var  + m * var_c * n / (n - 1)    (unbiased)

with m = ``momentum``, or m = 1 / num_batches_tracked (a cumulative average of all
batches seen) when ``momentum=None``. Normalising uses the biased variance (that is
what the batch really has); the running estimate uses the unbiased one (it estimates
the population variance). Parameters, buffers and state-dict keys match
``torch.nn.BatchNorm1d/2d`` so state dicts move both ways.

Shapes: B batch, C channels (``num_features``), L length, H, W spatial.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(nn.Module):
    """The math shared by BatchNorm1d and BatchNorm2d; subclasses only name the input layout."""

    _input_dims: tuple[int, ...] = ()  # the x.dim() values the subclass accepts
    _layout = ""  # those layouts in words, for the error message

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if num_features <= 0:
            raise ValueError(f"num_features must be a positive channel count, got {num_features}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] or None (cumulative average), got {momentum}")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        factory = {"device": device, "dtype": dtype}
        if affine:
            # gamma = 1, beta = 0: the layer starts as a plain standardisation.
            self.weight = nn.Parameter(torch.ones(num_features, **factory))
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() not in self._input_dims:
            raise ValueError(
                f"{type(self).__name__} expects {self._layout} input, got {x.dim()}-D input of shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) expects {self.num_features} channels "
                f"in dimension 1, got input of shape {tuple(x.shape)} with {x.shape[1]} channels"
            )
        # Reduce over every axis but the channel axis: (B, C, *) -> per-channel stats.
        reduce_dims = [0, *range(2, x.dim())]
        stats_shape = [1, self.num_features] + [1] * (x.dim() - 2)  # broadcasts as (1, C, 1, ...)
        use_batch_stats = self.training or not self.track_running_stats

        if use_batch_stats:
            n = x.numel() // self.num_features  # elements averaged per channel
            if self.training and n <= 1:
                raise ValueError(
                    f"{type(self).__name__} needs more than one value per channel in training to "
                    f"estimate a variance, got input of shape {tuple(x.shape)}; use a batch of at "
                    "least 2 or call .eval()"
                )
            mean = x.mean(dim=reduce_dims)  # (C,)
            var = x.var(dim=reduce_dims, unbiased=False)  # (C,) biased: the batch's own spread
            if self.training and self.track_running_stats:
                self._update_running_stats(mean.detach(), var.detach(), n)
        else:
            mean, var = self.running_mean, self.running_var

        x_hat = (x - mean.view(stats_shape)) * torch.rsqrt(var.view(stats_shape) + self.eps)
        if not self.affine:
            return x_hat
        return x_hat * self.weight.view(stats_shape) + self.bias.view(stats_shape)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, n: int) -> None:
        """Fold one batch's (C,) mean and biased variance, over n values each, into the running stats."""
        self.num_batches_tracked.add_(1)
        if self.momentum is None:
            # Cumulative moving average: after k batches each batch carries weight 1/k.
            # Kept a tensor: .item() would stall an accelerator's stream every step.
            momentum = self.num_batches_tracked.to(self.running_mean.dtype).reciprocal()
        else:
            momentum = self.momentum
        # Bessel's correction: the running variance estimates the population's.
        unbiased_var = var * (n / (n - 1))
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
        self.running_var.lerp_(unbiased_var.to(self.running_var.dtype), momentum)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch norm over (B, C) features or (B, C, L) sequences; statistics per channel C."""

    _input_dims = (2, 3)
    _layout = "a 2-D (batch, features) or 3-D (batch, channels, length)"


class BatchNorm2d(_BatchNorm):
    """Batch norm over (B, C, H, W) images; statistics per channel C over B, H and W."""

    _input_dims = (4,)
    _layout = "a 4-D (batch, channels, height, width)"
