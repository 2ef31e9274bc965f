"""Checks shared by the classification builders."""

from __future__ import annotations

from typing import Sequence


def check_input_shape(model: str, input_shape: Sequence[int], in_channels: int) -> None:
    """``input_shape`` must be (in_channels, H, W); the message says which in_channels fits."""
    if len(input_shape) != 3 or input_shape[0] != in_channels:
        raise ValueError(
            f"{model}: input_shape {tuple(input_shape)} must be (in_channels={in_channels}, H, W); "
            f"pass in_channels={input_shape[0] if input_shape else '?'} for these images"
        )
