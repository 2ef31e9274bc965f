"""Cross-entropy with label smoothing and soft targets, written with log-softmax.

Paper (label smoothing): "Rethinking the Inception Architecture for Computer Vision",
Christian Szegedy, Vincent Vanhoucke, Sergey Ioffe, Jonathon Shlens and Zbigniew Wojna,
2016, arXiv:1512.00567, section 7 ("Model Regularization via Label Smoothing").

Intuition: with one-hot targets the loss is only minimised as the correct logit runs
away to infinity above the others, which makes the model over-confident and less able
to adapt. Label smoothing mixes the one-hot target q with the uniform distribution,

    q' = (1 - eps) * onehot(y) + eps / K

so the optimum is a finite logit gap and predicted probabilities stay calibrated.
Cross-entropy against any target distribution q (one-hot, smoothed, or the soft
labels that Mixup/CutMix produce) is

    loss = -sum_k q_k * log softmax(z)_k

and log_softmax (z_k - logsumexp(z)) is used rather than log(softmax(z)), which would
underflow to log(0) = -inf for very negative logits.

Shapes: B batch, K classes. logits Tensor[B, K]; target Tensor[B] (long class indices)
or Tensor[B, K] (probabilities, each row summing to 1).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["cross_entropy", "LabelSmoothingCrossEntropy"]

_REDUCTIONS = ("mean", "sum", "none")


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Cross-entropy of ``logits`` (Tensor[B, K]) against class indices or soft targets.

    Args:
        logits: Tensor[B, K], unnormalised scores.
        target: Tensor[B] of class indices (integer dtype) or Tensor[B, K] of
            probabilities (floating dtype), e.g. the soft labels of Mixup/CutMix.
        label_smoothing: eps in [0, 1]; the target becomes (1 - eps) * q + eps / K.
        reduction: "mean" (over the batch), "sum", or "none" (Tensor[B]).

    Returns:
        A scalar, or Tensor[B] per example when ``reduction="none"``.
    """
    if logits.dim() != 2:
        raise ValueError(f"cross_entropy expects logits of shape (batch, classes), got shape {tuple(logits.shape)}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    B, K = logits.shape
    log_probs = F.log_softmax(logits, dim=1)  # (B, K)

    if target.dim() == 1:
        if target.is_floating_point() or target.is_complex():
            raise ValueError(
                f"a 1-D target holds class indices and must have an integer dtype, got {target.dtype}; "
                "pass soft targets as a (batch, classes) tensor of probabilities"
            )
        if target.shape[0] != B:
            raise ValueError(f"target has {target.shape[0]} entries but logits have batch size {B}")
        # Checked on the CPU only: on an accelerator the check would stall the stream
        # every step, and gather's own device-side assert catches the mistake there.
        if target.device.type == "cpu" and B > 0 and (int(target.min()) < 0 or int(target.max()) >= K):
            raise ValueError(
                f"class indices must lie in [0, {K - 1}] for {K} classes, "
                f"got values in [{int(target.min())}, {int(target.max())}]"
            )
        # -log p_y, picked without building the one-hot matrix.
        nll = -log_probs.gather(1, target.long().unsqueeze(1)).squeeze(1)  # (B,)
        if label_smoothing > 0.0:
            # (1 - eps) * (-log p_y) + eps * mean_k(-log p_k): the smoothed target's CE.
            uniform_ce = -log_probs.mean(dim=1)  # (B,)
            loss = (1.0 - label_smoothing) * nll + label_smoothing * uniform_ce
        else:
            loss = nll
    elif target.dim() == 2:
        if not target.is_floating_point():
            raise ValueError(f"a 2-D target holds class probabilities and must be floating point, got {target.dtype}")
        if target.shape != logits.shape:
            raise ValueError(
                f"soft targets must have the logits' shape {tuple(logits.shape)}, got {tuple(target.shape)}"
            )
        probs = target.to(log_probs.dtype)
        if label_smoothing > 0.0:
            probs = (1.0 - label_smoothing) * probs + label_smoothing / K
        loss = -(probs * log_probs).sum(dim=1)  # (B,)
    else:
        raise ValueError(
            f"target must be class indices (batch,) or probabilities (batch, classes), got shape {tuple(target.shape)}"
        )

    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class LabelSmoothingCrossEntropy(nn.Module):
    """``cross_entropy`` with a fixed ``label_smoothing``, as a module for tasks to hold."""

    def __init__(self, label_smoothing: float = 0.1, reduction: str = "mean") -> None:
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.label_smoothing = label_smoothing
        self.reduction = reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(logits, target, label_smoothing=self.label_smoothing, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}, reduction={self.reduction!r}"
