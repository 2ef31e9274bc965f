"""PixelRNN: the chain rule over pixels with two-dimensional LSTMs.

van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks", ICML 2016,
sections 3.1-3.3. A 7×7 mask-A convolution reads the image; LSTM layers (with residual
connections) carry the context; a 1×1 output stack gives one Bernoulli logit per pixel.

**Row LSTM** processes the image row by row. For row r, all gates come from an
input-to-state convolution over row r (a 1×k kernel with mask B: positions <= j) plus a
state-to-state 1-D convolution (kernel k) over the hidden states of row r-1. A state sees
a triangle above it: a wide but incomplete context.

**Diagonal BiLSTM** sees the whole context. Each row i of the input map is shifted right
by i ("skewed"), so that the diagonals of the image become columns; an LSTM then runs
column by column, and the state-to-state convolution (kernel 2 over rows) lets position
(i, j) read the states of (i, j-1) and (i-1, j): by recursion, everything above and to the
left. A second LSTM runs right-to-left on the mirrored image; its states at row i have
read pixels to the right on row i, which are in the future, so its output is shifted down
one row before the two directions are added.

One pixel escapes the Diagonal BiLSTM's context, measured by gradients in the tests:
for pixel (i, j) the last pixel of the row above, (i-1, W-1), is seen only through the
first layer's kernel (when j + first_kernel // 2 >= W - 1). Its value enters the
features only at positions after it, on row i, where the left-to-right pass at (i, j)
cannot look right and the right-to-left pass was shifted down from row i-1. The paper's
"complete context" holds for every other pixel.

Legend: B batch, C input features, h LSTM units, H×W image.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp.models import register_model
from dlcamp.models.generative.base import BinaryAutoregressive
from dlcamp.models.generative.pixelcnn import output_head
from dlcamp.nn import MaskedConv2d


def _lstm_update(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LSTM cell update from pre-activations [B, 4h, ...] in the order (input, forget, output, cell)."""
    i, f, o, g = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class RowLSTM(nn.Module):
    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.input_to_state = MaskedConv2d(in_channels, 4 * hidden, (1, kernel_size), "B")
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, _, width = x.shape
        gates_in = self.input_to_state(x)  # (B, 4h, H, W), each row only reads x up to column j
        h = x.new_zeros(b, self.hidden, width)
        c = torch.zeros_like(h)
        rows = []
        for gates_row in gates_in.unbind(2):  # unbind: one backward op (indexing would write a zero map per row)
            h, c = _lstm_update(gates_row + self.state_to_state(h), c)
            rows.append(h)
        return torch.stack(rows, dim=2)  # (B, h, H, W)


def skew(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, H, W + H - 1], row i shifted right by i (diagonals become columns)."""
    b, c, height, width = x.shape
    out = x.new_zeros(b, c, height, width + height - 1)
    for i in range(height):
        out[:, :, i, i : i + width] = x[:, :, i]
    return out


def unskew(x: torch.Tensor, width: int) -> torch.Tensor:
    """The inverse of ``skew``: [B, C, H, W + H - 1] -> [B, C, H, W]."""
    return torch.stack([x[:, :, i, i : i + width] for i in range(x.shape[2])], dim=2)


class DiagonalLSTM(nn.Module):
    """One direction (left to right): 1×1 input-to-state, 2×1 state-to-state on the skewed map."""

    def __init__(self, in_channels: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.input_to_state = MaskedConv2d(in_channels, 4 * hidden, 1, "B")
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel_size=2)  # row i reads rows i-1 and i

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, height, width = x.shape
        gates_in = skew(self.input_to_state(x))  # (B, 4h, H, W + H - 1)
        h = x.new_zeros(b, self.hidden, height)
        c = torch.zeros_like(h)
        columns = []
        for gates_col in gates_in.unbind(3):
            h, c = _lstm_update(gates_col + self.state_to_state(F.pad(h, (1, 0))), c)
            columns.append(h)
        return unskew(torch.stack(columns, dim=3), width)  # (B, h, H, W)


class DiagonalBiLSTM(nn.Module):
    def __init__(self, in_channels: int, hidden: int) -> None:
        super().__init__()
        self.left_to_right = DiagonalLSTM(in_channels, hidden)
        self.right_to_left = DiagonalLSTM(in_channels, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        forward = self.left_to_right(x)
        backward = self.right_to_left(x.flip(3)).flip(3)
        # row i of the backward pass has read row i's right-hand (future) pixels: use row i-1's
        backward = F.pad(backward, (0, 0, 1, 0))[:, :, :-1]
        return forward + backward


LAYERS = {"row": RowLSTM, "diagonal": DiagonalBiLSTM}


class PixelRNN(BinaryAutoregressive):
    def __init__(
        self,
        input_shape: Sequence[int],
        kind: Literal["row", "diagonal"] = "diagonal",
        layers: int = 2,
        hidden: int = 32,
        channels: int = 32,
        first_kernel: int = 7,
        head_hidden: int = 64,
    ) -> None:
        super().__init__(input_shape)
        if kind not in LAYERS:
            raise ValueError(f"kind must be one of {', '.join(LAYERS)}, got {kind!r}")
        if min(layers, hidden, channels, head_hidden) < 1:
            raise ValueError("layers, hidden, channels and head_hidden must be >= 1")
        self.kind = kind
        self.first = MaskedConv2d(self.input_shape[0], channels, first_kernel, "A")
        self.rnns = nn.ModuleList(LAYERS[kind](channels, hidden) for _ in range(layers))
        self.projections = nn.ModuleList(nn.Conv2d(hidden, channels, 1) for _ in range(layers))  # h -> C, residual
        self.head = output_head(channels, head_hidden)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        features = self.first(x)
        for rnn, proj in zip(self.rnns, self.projections):
            features = features + proj(rnn(features))
        return self.head(features)


@register_model("pixelrnn")
def pixelrnn(
    *,
    input_shape: Sequence[int] = (1, 8, 8),
    kind: Literal["row", "diagonal"] = "diagonal",
    layers: int = 2,
    hidden: int = 32,
    channels: int = 32,
    first_kernel: int = 7,
    head_hidden: int = 64,
) -> PixelRNN:
    """PixelRNN (van den Oord et al. 2016): Row LSTM or Diagonal BiLSTM layers over a mask-A conv."""
    return PixelRNN(input_shape, kind, layers, hidden, channels, first_kernel, head_hidden)
