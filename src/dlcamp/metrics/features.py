"""The shipped digits feature network: the eye through which generated digits are measured.

``load_digit_features()`` returns the ``digit_features`` CNN
(``dlcamp.models.classification.digit_features``) with the weights that ship in
``dlcamp/metrics/weights/digit_features.safetensors``, trained on the digits by the recipe
``digit-features-digits32`` and reproduced bit for bit by ``dlcamp bench digit-features``.
``digit_embeddings(images)`` maps digits [N, 1, H, W] in [0, 1] (8x8, 32x32 or any size)
to its 64-d features, ready for ``dlcamp.metrics.samples.fid`` and friends.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn as nn

from dlcamp.errors import UsageError

WEIGHTS = Path(__file__).parent / "weights" / "digit_features.safetensors"
RECIPE = "digit-features-digits32"


@lru_cache(maxsize=1)
def load_digit_features() -> nn.Module:
    """The trained digits feature network, in eval mode, frozen, on the CPU.

    Cached: every call returns the same module, so treat it as read-only (do not train it
    or move it; ``copy.deepcopy`` it for that).
    """
    from safetensors.torch import load_file

    from dlcamp.models import get_model

    if not WEIGHTS.is_file():
        raise UsageError(
            f"the digits feature network's weights are missing: {WEIGHTS} "
            "(they ship with dlcamp; `dlcamp bench digit-features` trains and writes them again)"
        )
    model = get_model("digit_features")
    model.load_state_dict(load_file(str(WEIGHTS)), strict=True)
    return model.eval().requires_grad_(False)


def digit_embeddings(images: torch.Tensor, *, batch_size: int = 500) -> torch.Tensor:
    """64-d features of digits: images (Tensor[N, 1, H, W], values in [0, 1]) -> Tensor[N, 64] on the CPU."""
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"digit_embeddings needs grey images [N, 1, H, W], got shape {tuple(images.shape)}")
    model = load_digit_features()
    with torch.no_grad():
        return torch.cat([model.features(batch.cpu().float()) for batch in images.split(batch_size)])


__all__ = ["RECIPE", "WEIGHTS", "digit_embeddings", "load_digit_features"]
