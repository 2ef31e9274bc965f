"""Noise injection as a regulariser: Gaussian noise on the inputs and on the weights.

Papers:
  "The Effects of Adding Noise During Backpropagation Training on a Generalization
  Performance", Guozhong An, Neural Computation 8(3), 1996 (no arXiv id): input and
  weight noise during training, and what each one penalises.
  "Practical Variational Inference for Neural Networks", Alex Graves, NeurIPS 2011 (no
  arXiv id): weight noise as a cheap stochastic variational posterior over the weights.
  (Input noise is also Bishop 1995, "Training with Noise is Equivalent to Tikhonov
  Regularization".)

Intuition:
  Input noise, x + N(0, std^2): the model sees a cloud around each training point
  instead of the point itself, so it is pushed to be flat (insensitive) in the input
  directions around the data; for small std this is, to first order, a penalty on the
  squared input gradient (Bishop 1995).
  Weight noise, w + N(0, std^2): the loss is evaluated at a random point near the
  current weights, so training minimises the expected loss over a neighbourhood of w
  and prefers wide, flat minima where small weight changes do not hurt. Graves reads
  this as sampling from a Gaussian posterior over the weights.

How weight noise is applied, and why: for one training step,
    1. perturb every trainable parameter, w_noisy = w + eps, eps ~ N(0, std^2);
    2. run forward and backward at w_noisy, so p.grad = dL/dw evaluated at w_noisy;
    3. put the clean w back, exactly (a saved copy, not w_noisy - eps, which would
       drift by rounding);
    4. the optimizer then steps from the clean w with the noisy-point gradient.
The noise must not be kept: the weights are a mean that noise is drawn around each
step, not a random walk that accumulates noise.

    with weight_noise(model, std=0.01):
        loss = criterion(model(x), y)
        loss.backward()
    optimizer.step()  # updates the clean weights

Under DDP each rank draws its own noise from its own RNG, so each rank's gradient is
taken at a different noisy point before they are averaged: more samples of the
expectation, not a bug.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = ["GaussianNoise", "weight_noise"]


class GaussianNoise(nn.Module):
    """Add N(0, std^2) noise to the input in training; the identity in eval. Any shape."""

    def __init__(self, std: float = 0.1) -> None:
        super().__init__()
        if std < 0:
            raise ValueError(f"noise std must be >= 0, got {std}")
        self.std = std

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.std == 0:
            return x
        return x + torch.randn_like(x) * self.std

    def extra_repr(self) -> str:
        return f"std={self.std}"


@contextmanager
def weight_noise(model: nn.Module, std: float) -> Iterator[None]:
    """Perturb every trainable parameter of ``model`` by N(0, std^2) inside the block.

    Run forward *and* backward inside the block, then step the optimizer after it: the
    gradients are those of the noisy weights, the step is applied to the clean ones,
    which are restored bit for bit on exit (also when the block raises). Frozen
    parameters (requires_grad=False) and buffers are left alone. Doubles the parameter
    memory for the duration (the clean copy).
    """
    if std < 0:
        raise ValueError(f"weight noise std must be >= 0, got {std}")
    params = [p for p in model.parameters() if p.requires_grad]
    if std == 0:
        yield
        return
    with torch.no_grad():
        clean = [p.detach().clone() for p in params]
        for p in params:
            p.add_(torch.randn_like(p), alpha=std)
    try:
        yield
    finally:
        with torch.no_grad():
            for p, clean_p in zip(params, clean):
                p.copy_(clean_p)
