"""Recurrent sequence classifier: read the whole sequence, classify from the final hidden state.

Papers: Elman, "Finding Structure in Time", 1990 (RNN); Hochreiter & Schmidhuber, "Long
Short-Term Memory", 1997 (the embedded Reber grammar is their long-range benchmark);
Cho et al. 2014, arXiv:1406.1078 (GRU).

Intuition: the label of an embedded Reber string is decided by its *second* symbol and
can only be checked against its second-to-last, so the final state must carry one bit
across the whole string. A plain RNN's gradient to that early step shrinks
geometrically with length; the gated cells keep it (see ``dlcamp.nn.recurrent``). This
model makes the comparison fair: same embedding, same head, only the cell changes.

    e_t = E[x_t]                          (B, S, E)
    h_S = cell(e_1 .. e_S)                last real step of each sequence, top layer
    logits = W h_S + b                    (B, num_classes)

Right padding (PAD = 0) is packed away: every sequence stops at its own length
(``pack_padded_sequence(..., enforce_sorted=False)``), so the final state never reads PAD
and the prediction does not depend on how much padding the batch needed.

Gate bias (``gate_bias``, default 1): the LSTM's forget gate and the GRU's update gate
start biased towards *keeping* the state (Gers, Schmidhuber & Cummins 2000; Jozefowicz,
Zaremba & Sutskever 2015 recommend a forget bias of 1). With the usual zero bias a gate
starts at 1/2, so the memory of the second symbol is halved at every step and after 25
steps is 3e-8 of what it was: the gradient that should teach the gate to latch never
arrives. (An exploratory run, noted in BENCHMARKS.md, saw the LSTM stay at chance for
2,000 steps on inner strings of 20 to 30 symbols with bias 0 and learn them with bias 1.)

Legend: B batch, S sequence length, E embedding size, H hidden size, L layers.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence

from dlcamp import nn as dnn
from dlcamp.models import register_model

PAD = 0

_CELLS = {"rnn": dnn.RNN, "lstm": dnn.LSTM, "gru": dnn.GRU}


class RecurrentClassifier(nn.Module):
    """Embedding -> packed RNN / LSTM / GRU -> last layer's final hidden state -> linear."""

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        cell: str = "lstm",
        embed_dim: int = 16,
        hidden: int = 64,
        num_layers: int = 1,
        gate_bias: float = 1.0,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.rnn = _CELLS[cell](embed_dim, hidden, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)
        if cell != "rnn":
            self._bias_keep_gate(cell, hidden, gate_bias)

    @torch.no_grad()
    def _bias_keep_gate(self, cell: str, hidden: int, value: float) -> None:
        """Set the bias of the gate that keeps the state: LSTM forget gate (rows H:2H of
        i|f|g|o), GRU update gate z (rows H:2H of r|z|n; h' = (1 - z) n + z h)."""
        for name, p in self.rnn.named_parameters():
            if name.startswith("bias_ih"):
                p[hidden : 2 * hidden] = value
            elif name.startswith("bias_hh"):
                p[hidden : 2 * hidden] = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, S) right-padded with PAD -> logits (B, num_classes)."""
        lengths = (x != PAD).sum(1).clamp(min=1)  # (B,); an all-PAD row reads a single PAD
        packed = pack_padded_sequence(self.embed(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, final = self.rnn(packed)  # (L, B, H), or (h, c) for the LSTM, in the input's batch order
        h_n = final[0] if isinstance(final, tuple) else final
        return self.head(h_n[-1])  # top layer's state after each sequence's last token: (B, H) -> (B, C)


@register_model("rnn_classifier")
def rnn_classifier(
    *,
    vocab_size: int,
    num_classes: int,
    cell: str = "lstm",
    embed_dim: int = 16,
    hidden: int = 64,
    num_layers: int = 1,
    gate_bias: float = 1.0,
) -> RecurrentClassifier:
    """Sequence classifier from the final state of an RNN / LSTM / GRU (the Reber grammar benchmark)."""
    if cell not in _CELLS:
        raise ValueError(f"unknown cell {cell!r}; choose rnn, lstm or gru")
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    return RecurrentClassifier(vocab_size, num_classes, cell, embed_dim, hidden, num_layers, gate_bias)
