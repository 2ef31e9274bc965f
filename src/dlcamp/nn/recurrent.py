"""Recurrent blocks, written out: RNN, LSTM and GRU cells and multi-layer layers.

Papers:

* Elman RNN: "Finding Structure in Time", Jeffrey L. Elman, Cognitive Science, 1990.
* LSTM: "Long Short-Term Memory", Sepp Hochreiter and Jürgen Schmidhuber, Neural
  Computation, 1997 (the forget gate is from Gers, Schmidhuber and Cummins, 2000).
* GRU: "Learning Phrase Representations using RNN Encoder-Decoder for Statistical
  Machine Translation", Kyunghyun Cho et al., 2014, arXiv:1406.1078.
* LSTM with projections (``proj_size``): "Long Short-Term Memory Recurrent Neural
  Network Architectures for Large Scale Acoustic Modeling", Haşim Sak, Andrew Senior
  and Françoise Beaufays, Interspeech 2014, arXiv:1402.1128.

Intuition: a recurrent network reads a sequence one step at a time and carries a hidden
state h_t = f(x_t, h_{t-1}) forward, with the same weights at every step. Trained by
back-propagation through time, the gradient reaching step t from step t + k is a
product of k Jacobians dh/dh; in a plain (Elman) RNN that product shrinks or explodes
geometrically with k, so long-range dependencies are hard to learn (vanishing
gradients). The LSTM adds a cell state c_t that is updated *additively*,
c_t = f * c_{t-1} + i * g, so along the cell path the Jacobian is just the forget gate
f: when the network keeps f near 1, gradient flows across many steps. Gates are
sigmoids in (0, 1) that decide, per unit and per step, what to write (input gate i),
what to keep (forget gate f) and what to show (output gate o). The GRU merges cell and
hidden state and uses two gates: an update gate z that interpolates between the old
state and a candidate, and a reset gate r that lets the candidate ignore the past.

Equations (torch.nn's conventions; W_i* act on x, W_h* on h, each with its own bias):

    RNN:   h' = act(W_ih x + b_ih + W_hh h + b_hh)            act = tanh or relu
    LSTM:  i, f, g, o = chunks of (W_ih x + b_ih + W_hh h + b_hh)   (gate order i f g o)
           c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
           h' = sigmoid(o) * tanh(c')
           with proj_size = P > 0: h' = W_hr (sigmoid(o) * tanh(c'))   (P < H)
    GRU:   r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)              (gate order r z n)
           z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
           n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
           h' = (1 - z) * n + z * h

Parameter names, shapes, constructor arguments and forward signatures match
``torch.nn.RNN/LSTM/GRU`` and ``torch.nn.RNNCell/LSTMCell/GRUCell``, so state dicts
move both ways with ``strict=True``. Layers accept a ``PackedSequence`` (sequences of
unequal lengths) and then return one; the final states are taken at each sequence's
true length.

LSTM projections (Sak et al. 2014): the recurrent matrix W_hh is 4H x H, the bulk of an
LSTM's parameters and compute when H is large. With ``proj_size = P < H`` the layer
keeps its H-wide cell but shows (and feeds back) only a learned P-dimensional
projection of it, h = W_hr (o * tanh(c)), so W_hh shrinks to 4H x P and the next
layer's input to D*P. Then h0 / h_n and the output have P features (c0 / c_n keep H),
and each layer and direction gains a ``weight_hr`` (P, H), as in torch.nn.LSTM.

Shapes: T time, B batch, I input size, H hidden size, L num_layers, D directions
(2 if bidirectional else 1), G gates (1 RNN, 4 LSTM, 3 GRU), P LSTM projection size
(``proj_size``; where it is 0, read H for P).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell"]

_NUM_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# ----------------------------------------------------------------------------------
# One step of each recurrence. ``input_proj`` is W_ih x + b_ih, computed outside the
# step so a layer can project the whole sequence in one matmul.
# ----------------------------------------------------------------------------------


def _rnn_step(input_proj: Tensor, h: Tensor, w_hh: Tensor, b_hh: Optional[Tensor], relu: bool) -> Tensor:
    pre = input_proj + F.linear(h, w_hh, b_hh)  # (B, H)
    return torch.relu(pre) if relu else torch.tanh(pre)


def _lstm_step(
    input_proj: Tensor,
    state: tuple[Tensor, Tensor],
    w_hh: Tensor,
    b_hh: Optional[Tensor],
    w_hr: Optional[Tensor] = None,
) -> tuple[Tensor, Tensor]:
    h, c = state  # h (B, P), c (B, H)
    gates = input_proj + F.linear(h, w_hh, b_hh)  # (B, P) @ (P, 4H) -> (B, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)  # each (B, H)
    # Additive cell update: along c the step Jacobian is sigmoid(f), not a matrix
    # product through a squashing nonlinearity, which is what keeps gradients alive.
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_next = torch.sigmoid(o) * torch.tanh(c_next)  # (B, H)
    if w_hr is not None:
        # Projection (Sak et al. 2014): only P < H numbers leave the cell and recur.
        h_next = F.linear(h_next, w_hr)  # (B, H) @ (H, P) -> (B, P)
    return h_next, c_next


def _gru_step(input_proj: Tensor, h: Tensor, w_hh: Tensor, b_hh: Optional[Tensor]) -> Tensor:
    hidden_proj = F.linear(h, w_hh, b_hh)  # (B, 3H)
    i_r, i_z, i_n = input_proj.chunk(3, dim=-1)  # each (B, H)
    h_r, h_z, h_n = hidden_proj.chunk(3, dim=-1)  # each (B, H)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    # The reset gate multiplies (W_hn h + b_hn), bias included, as torch and cuDNN do.
    # Cho et al. write n = tanh(W x + U (r * h)), i.e. reset *before* the matmul; the
    # two differ, and this form lets W_hh h be computed once for all three gates.
    n = torch.tanh(i_n + r * h_n)
    # z near 1 keeps the old state (a copy path for gradients, like the LSTM's f).
    return (1.0 - z) * n + z * h


def _init_uniform(module: nn.Module, hidden_size: int) -> None:
    # torch's default: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)).
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


# ----------------------------------------------------------------------------------
# Cells: one time step, parameters weight_ih (G*H, I), weight_hh (G*H, H), biases (G*H,)
# ----------------------------------------------------------------------------------


class _CellBase(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_gates: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.weight_ih = nn.Parameter(torch.empty(num_gates * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(num_gates * hidden_size, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(num_gates * hidden_size))
            self.bias_hh = nn.Parameter(torch.empty(num_gates * hidden_size))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_uniform(self, self.hidden_size)

    def _prepare(self, input: Tensor, hx: Optional[Tensor]) -> tuple[Tensor, Tensor, bool]:
        """Add a batch axis to unbatched input (I,) and default the state to zeros."""
        batched = input.dim() == 2
        if not batched:
            input = input.unsqueeze(0)  # (1, I)
            hx = hx.unsqueeze(0) if hx is not None else None
        if hx is None:
            hx = input.new_zeros(input.shape[0], self.hidden_size)  # (B, H)
        return input, hx, batched

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


class RNNCell(_CellBase):
    """Elman cell: h' = act(W_ih x + b_ih + W_hh h + b_hh). input (B, I), hx (B, H)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"unknown nonlinearity {nonlinearity!r}; use 'tanh' or 'relu'")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, num_gates=1)

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        input, hx, batched = self._prepare(input, hx)
        input_proj = F.linear(input, self.weight_ih, self.bias_ih)  # (B, H)
        h = _rnn_step(input_proj, hx, self.weight_hh, self.bias_hh, self.nonlinearity == "relu")
        return h if batched else h.squeeze(0)


class LSTMCell(_CellBase):
    """LSTM cell. input (B, I), hx = (h, c) each (B, H) -> (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, bias, num_gates=4)

    def forward(self, input: Tensor, hx: Optional[tuple[Tensor, Tensor]] = None) -> tuple[Tensor, Tensor]:
        h0, c0 = hx if hx is not None else (None, None)
        input, h0, batched = self._prepare(input, h0)
        if c0 is None:
            c0 = torch.zeros_like(h0)
        elif not batched:
            c0 = c0.unsqueeze(0)
        input_proj = F.linear(input, self.weight_ih, self.bias_ih)  # (B, 4H)
        h, c = _lstm_step(input_proj, (h0, c0), self.weight_hh, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(_CellBase):
    """GRU cell. input (B, I), hx (B, H) -> h' (B, H)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, bias, num_gates=3)

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        input, hx, batched = self._prepare(input, hx)
        input_proj = F.linear(input, self.weight_ih, self.bias_ih)  # (B, 3H)
        h = _gru_step(input_proj, hx, self.weight_hh, self.bias_hh)
        return h if batched else h.squeeze(0)


# ----------------------------------------------------------------------------------
# Layers: a stack of L layers, each run in D directions over the whole sequence.
# ----------------------------------------------------------------------------------


class _RNNBase(nn.Module):
    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
    ) -> None:
        super().__init__()
        if proj_size < 0:
            raise ValueError(f"proj_size should be a positive integer or zero to disable projections, got {proj_size}")
        if proj_size >= hidden_size and proj_size > 0:
            raise ValueError(
                f"proj_size has to be smaller than hidden_size, got proj_size={proj_size} >= hidden_size={hidden_size}"
            )
        if proj_size > 0 and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be in [0, 1], got {dropout}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        num_directions = 2 if bidirectional else 1
        gate_size = _NUM_GATES[mode] * hidden_size
        output_size = proj_size if proj_size > 0 else hidden_size  # P, the width of h
        # Registration order matches torch (per layer, per direction: w_ih, w_hh, b_ih,
        # b_hh, w_hr), so state_dict keys come out in the same order.
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else output_size * num_directions
            for direction in range(num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                params = {
                    f"weight_ih{suffix}": torch.empty(gate_size, layer_input),  # (G*H, I or D*P)
                    f"weight_hh{suffix}": torch.empty(gate_size, output_size),  # (G*H, P)
                }
                if bias:
                    params[f"bias_ih{suffix}"] = torch.empty(gate_size)  # (G*H,)
                    params[f"bias_hh{suffix}"] = torch.empty(gate_size)  # (G*H,)
                if proj_size > 0:
                    params[f"weight_hr{suffix}"] = torch.empty(proj_size, hidden_size)  # (P, H)
                for name, value in params.items():
                    self.register_parameter(name, nn.Parameter(value))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_uniform(self, self.hidden_size)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    def _weights(
        self, layer: int, direction: int
    ) -> tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
        """(w_ih, w_hh, b_ih, b_hh, w_hr) of one layer and direction; absent ones are None."""
        suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        return (
            getattr(self, f"weight_ih{suffix}"),
            getattr(self, f"weight_hh{suffix}"),
            getattr(self, f"bias_ih{suffix}", None),
            getattr(self, f"bias_hh{suffix}", None),
            getattr(self, f"weight_hr{suffix}", None),
        )

    def _step(
        self,
        input_proj: Tensor,
        state: tuple[Tensor, ...],
        w_hh: Tensor,
        b_hh: Optional[Tensor],
        w_hr: Optional[Tensor],
    ) -> tuple[Tensor, ...]:
        if self.mode == "LSTM":
            return _lstm_step(input_proj, state, w_hh, b_hh, w_hr)  # type: ignore[arg-type]
        if self.mode == "GRU":
            return (_gru_step(input_proj, state[0], w_hh, b_hh),)
        return (_rnn_step(input_proj, state[0], w_hh, b_hh, self.mode == "RNN_RELU"),)

    def _run_direction(
        self,
        input_proj: Tensor,
        state: tuple[Tensor, ...],
        w_hh: Tensor,
        b_hh: Optional[Tensor],
        w_hr: Optional[Tensor],
        valid: Optional[Tensor],
        reverse: bool,
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Unroll one layer in one direction.

        input_proj (T, B, G*H); state tuple of h (B, P) (and c (B, H)); valid (T, B, 1)
        bool or None.
        Where a step is padding (t >= length) the state is carried unchanged and the
        output is zero. Going forward this freezes the state after the last real step;
        going in reverse it keeps h0 until step length - 1, so each sequence's reverse
        pass starts at its own last element — the same as running it unpadded.
        """
        steps = range(input_proj.shape[0] - 1, -1, -1) if reverse else range(input_proj.shape[0])
        outputs: list[Tensor] = [None] * input_proj.shape[0]  # type: ignore[list-item]
        # unbind, not input_proj[t]: the backward of T separate selects writes T full-size
        # zero tensors (quadratic in T; 60% of an LSTM step at T = 128); unbind's is one stack.
        projections = input_proj.unbind(0)
        for t in steps:
            new_state = self._step(projections[t], state, w_hh, b_hh, w_hr)
            if valid is not None:
                new_state = tuple(torch.where(valid[t], new, old) for new, old in zip(new_state, state))
                outputs[t] = new_state[0] * valid[t]  # zero at padding, (B, P)
            else:
                outputs[t] = new_state[0]
            state = new_state
        return torch.stack(outputs), state  # (T, B, P)

    def _forward(self, input, hx: Optional[tuple[Tensor, ...]]):
        num_directions = 2 if self.bidirectional else 1
        packed = isinstance(input, PackedSequence)
        if packed:
            # Work on a padded, time-major copy in the *original* batch order; hx and
            # the returned h_n are in that order too, as in torch.
            x, lengths = pad_packed_sequence(input)  # (T, B, I), (B,)
            batched = True
        else:
            batched = input.dim() == 3
            x = input if batched else input.unsqueeze(1)  # unbatched (T, I) -> (T, 1, I)
            if batched and self.batch_first:
                x = x.transpose(0, 1)  # (B, T, I) -> (T, B, I)
            lengths = None
        T, B = x.shape[0], x.shape[1]
        if T == 0:
            raise ValueError("input sequence must have at least one time step")

        n_state = 2 if self.mode == "LSTM" else 1
        # h is P wide when projected, the LSTM's cell state c always H wide.
        state_sizes = (self.proj_size or self.hidden_size, self.hidden_size)[:n_state]
        if hx is None:
            # zeros: h (L*D, B, P) (and c (L*D, B, H))
            hx = tuple(x.new_zeros(self.num_layers * num_directions, B, size) for size in state_sizes)
        elif not batched:
            hx = tuple(h.unsqueeze(1) for h in hx)  # (L*D, H) -> (L*D, 1, H)
        for h, size in zip(hx, state_sizes):
            expected = (self.num_layers * num_directions, B, size)
            if tuple(h.shape) != expected:
                raise ValueError(f"expected hidden state of shape {expected}, got {tuple(h.shape)}")

        valid = None
        if lengths is not None:
            steps = torch.arange(T).unsqueeze(1)  # (T, 1)
            valid = (steps < lengths.unsqueeze(0)).unsqueeze(-1).to(x.device)  # (T, B, 1)

        layer_input = x
        final_states: list[tuple[Tensor, ...]] = []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0.0 and self.training:
                # Dropout between stacked layers only, never on the last layer's output.
                layer_input = F.dropout(layer_input, self.dropout, training=True)
            direction_outputs = []
            for direction in range(num_directions):
                w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(layer, direction)
                idx = layer * num_directions + direction
                input_proj = F.linear(layer_input, w_ih, b_ih)  # (T, B, G*H), all steps at once
                out, state = self._run_direction(
                    input_proj, tuple(h[idx] for h in hx), w_hh, b_hh, w_hr, valid, reverse=direction == 1
                )
                direction_outputs.append(out)
                final_states.append(state)
            layer_input = torch.cat(direction_outputs, dim=-1)  # (T, B, D*P)

        output = layer_input  # (T, B, D*P)
        # h_n (L*D, B, P) (and c_n (L*D, B, H)), layer-major then direction, as torch orders them.
        h_n = tuple(torch.stack([s[k] for s in final_states]) for k in range(n_state))

        if packed:
            sorted_indices = input.sorted_indices
            if sorted_indices is not None:
                output = output.index_select(1, sorted_indices)  # to descending-length order
                lengths = lengths.index_select(0, sorted_indices.to(lengths.device))
            # data: (sum(lengths), D*P), packed step by step like the input.
            data = pack_padded_sequence(output, lengths, enforce_sorted=True).data
            output = PackedSequence(data, input.batch_sizes, sorted_indices, input.unsorted_indices)
        elif not batched:
            output = output.squeeze(1)  # (T, D*P)
            h_n = tuple(h.squeeze(1) for h in h_n)  # (L*D, P) (c_n: (L*D, H))
        elif self.batch_first:
            output = output.transpose(0, 1)  # (B, T, D*P)
        return output, h_n


class RNN(_RNNBase):
    """Multi-layer Elman RNN, tanh or relu.

    input (T, B, I) or (B, T, I) if batch_first, or a PackedSequence; h0 (L*D, B, H).
    Returns output (T, B, D*H) (or (B, T, D*H) / PackedSequence) and h_n (L*D, B, H).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"unknown nonlinearity {nonlinearity!r}; use 'tanh' or 'relu'")
        self.nonlinearity = nonlinearity
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)

    def forward(self, input, hx: Optional[Tensor] = None):
        output, (h_n,) = self._forward(input, None if hx is None else (hx,))
        return output, h_n


class LSTM(_RNNBase):
    """Multi-layer LSTM, optionally with projections (``proj_size`` = P, 0 < P < H).

    forward(input, (h0, c0)) -> (output, (h_n, c_n)); h0 / h_n (L*D, B, P), c0 / c_n
    (L*D, B, H), output (T, B, D*P) (or (B, T, D*P) / PackedSequence); P = H when
    ``proj_size`` is 0.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
    ) -> None:
        super().__init__(
            "LSTM",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
        )

    def forward(self, input, hx: Optional[tuple[Tensor, Tensor]] = None):
        output, (h_n, c_n) = self._forward(input, None if hx is None else tuple(hx))
        return output, (h_n, c_n)


class GRU(_RNNBase):
    """Multi-layer GRU. forward(input, h0) -> (output, h_n), h (L*D, B, H)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)

    def forward(self, input, hx: Optional[Tensor] = None):
        output, (h_n,) = self._forward(input, None if hx is None else (hx,))
        return output, h_n
