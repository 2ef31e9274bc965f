"""Encoder–decoder (sequence-to-sequence) models: a GRU pair with or without attention, and the Transformer.

Papers:

* "Sequence to Sequence Learning with Neural Networks", Sutskever, Vinyals & Le 2014,
  arXiv:1409.3215; "Learning Phrase Representations using RNN Encoder-Decoder for
  Statistical Machine Translation", Cho et al. 2014, arXiv:1406.1078.
* Additive attention: "Neural Machine Translation by Jointly Learning to Align and
  Translate", Bahdanau, Cho & Bengio 2015, arXiv:1409.0473.
* Multiplicative attention: "Effective Approaches to Attention-based Neural Machine
  Translation", Luong, Pham & Manning 2015, arXiv:1508.04025 (the "general" score).
* "Attention Is All You Need", Vaswani et al. 2017, arXiv:1706.03762.

Intuition: the encoder reads the source, the decoder writes the target one token at a
time, conditioned on the source and on its own past (teacher forcing feeds the true
previous token while training). Without attention the whole source must squeeze
through the encoder's final state, a fixed-size bottleneck that fails on long inputs.
Attention removes it: at every output step the decoder takes a fresh weighted average
of *all* encoder states, the weights saying which source positions matter now.

    additive:        e_ti = v^T tanh(W_s s_{t-1} + W_h h_i)
    general, scaled: e_ti = s_{t-1}^T W_a h_i / sqrt(H)
    a_t = softmax_i(e_ti) over real (non-PAD) source positions,  c_t = sum_i a_ti h_i
    s_t = GRU([emb(y_{t-1}); c_t], s_{t-1}),   logits_t = W_o tanh(W_p [s_t; c_t; emb(y_{t-1})])

The Transformer does the same with multi-head cross-attention in every decoder layer and
replaces recurrence by self-attention (causal in the decoder).

One interface for both (what greedy and beam search need):

    encode(src (B, S)) -> memory, a tuple of tensors with batch on dim 0
    decode(memory, tgt_in (B, T)) -> logits (B, T, V)      (the whole prefix, causal)
    forward(src, tgt_in) = decode(encode(src), tgt_in)
    cross_attention() -> (B, T, S) weights of the last decode (heads averaged, last
        decoder layer for the Transformer, whose layers keep their weights only while
        their ``keep_attention`` is on: it costs the fused kernel), or None without
        attention
    attention_maps(src, tgt_in) -> {"cross": (B, T, S), "self": (B, T, T)}: one
        teacher-forced decode with the weights kept, heads averaged, last layer; "self"
        for the Transformer only, nothing without attention (for figures)

Token ids: PAD = 0 (right padding; PAD source positions are masked everywhere), BOS = 1
starts ``tgt_in``.

Legend: B batch, S source length, T target length, V vocabulary, E embedding size,
H hidden size, D encoder directions, L layers, A attention size, nh heads.
"""

from __future__ import annotations

import abc
import math

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dlcamp import nn as dnn
from dlcamp.models import register_model

PAD = 0

Memory = tuple[torch.Tensor, ...]


class Seq2Seq(nn.Module, abc.ABC):
    """Base and contract of the encoder–decoders (what decoding and the seq2seq task need):
    ``forward = decode(encode(src), tgt_in)``; subclasses record ``_attention``."""

    _attention: torch.Tensor | None = None

    @abc.abstractmethod
    def encode(self, src: torch.Tensor) -> Memory:
        """src (B, S) -> memory: a tuple of tensors, batch on dim 0."""

    @abc.abstractmethod
    def decode(self, memory: Memory, tgt_in: torch.Tensor) -> torch.Tensor:
        """memory, tgt_in (B, T) -> logits (B, T, V) for the whole prefix."""

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """src (B, S), tgt_in (B, T) = BOS + target[:-1] -> logits (B, T, V)."""
        return self.decode(self.encode(src), tgt_in)

    def cross_attention(self) -> torch.Tensor | None:
        """(B, T, S) attention of the last decode over source positions; rows sum to 1."""
        return self._attention

    @torch.no_grad()
    def attention_maps(self, src: torch.Tensor, tgt_in: torch.Tensor) -> dict[str, torch.Tensor]:
        """Decode ``tgt_in`` (B, T) given ``src`` (B, S) once; its attention by what it attends over:
        ``"cross"`` (B, T, S) the source. Empty without attention."""
        self(src, tgt_in)
        cross = self.cross_attention()
        return {"cross": cross} if cross is not None else {}


# ----------------------------------------------------------------------------------
# Attention over encoder states for the recurrent decoder
# ----------------------------------------------------------------------------------


def _attend(scores: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """scores (B, S), values (B, S, Dv), mask (B, S) True = real -> context (B, Dv), weights (B, S)."""
    weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)  # exp(-inf) = 0: PAD gets no weight
    return (weights.unsqueeze(1) @ values).squeeze(1), weights  # (B, 1, S) @ (B, S, Dv) -> (B, Dv)


class AdditiveAttention(nn.Module):
    """Bahdanau et al. 2015: e_i = v^T tanh(W_s s + W_h h_i), a one-hidden-layer scorer."""

    def __init__(self, query_dim: int, value_dim: int, attn_dim: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(value_dim, attn_dim, bias=False)  # W_h
        self.query_proj = nn.Linear(query_dim, attn_dim)  # W_s (and the hidden layer's bias)
        self.score = nn.Linear(attn_dim, 1, bias=False)  # v

    def keys(self, values: torch.Tensor) -> torch.Tensor:
        """W_h h_i for all i, once per source: (B, S, Dv) -> (B, S, A)."""
        return self.key_proj(values)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, H) -> context (B, Dv), weights (B, S)."""
        hidden = torch.tanh(keys + self.query_proj(query).unsqueeze(1))  # (B, S, A)
        return _attend(self.score(hidden).squeeze(-1), values, mask)


class GeneralAttention(nn.Module):
    """Luong et al. 2015 "general": e_i = s^T W_a h_i, scaled by 1/sqrt(H) as in the Transformer."""

    def __init__(self, query_dim: int, value_dim: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(value_dim, query_dim, bias=False)  # W_a
        self.scale = 1.0 / math.sqrt(query_dim)

    def keys(self, values: torch.Tensor) -> torch.Tensor:
        """W_a h_i: (B, S, Dv) -> (B, S, H)."""
        return self.key_proj(values)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, H) -> context (B, Dv), weights (B, S)."""
        scores = (keys @ query.unsqueeze(-1)).squeeze(-1) * self.scale  # (B, S, H) @ (B, H, 1) -> (B, S)
        return _attend(scores, values, mask)


# ----------------------------------------------------------------------------------
# GRU encoder–decoder
# ----------------------------------------------------------------------------------


class GRUSeq2Seq(Seq2Seq):
    """Bidirectional GRU encoder, bridge to the decoder's initial state, GRU decoder looped over time."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        hidden: int = 128,
        num_layers: int = 1,
        attention: str = "additive",
        dropout: float = 0.1,
        bidirectional: bool = True,
    ) -> None:
        super().__init__()
        directions = 2 if bidirectional else 1
        encoded = directions * hidden  # width of an encoder state h_i
        between = dropout if num_layers > 1 else 0.0
        # One embedding for source and target: the tasks share a character vocabulary.
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.encoder = dnn.GRU(
            embed_dim, hidden, num_layers, batch_first=True, dropout=between, bidirectional=bidirectional
        )
        # The bridge maps both directions' final states of each layer to that decoder layer's s_0.
        self.bridge = nn.Linear(encoded, hidden)
        if attention == "additive":
            self.attention: AdditiveAttention | GeneralAttention | None = AdditiveAttention(hidden, encoded, hidden)
        elif attention == "dot":
            self.attention = GeneralAttention(hidden, encoded)
        else:
            self.attention = None
        context = encoded if self.attention is not None else 0
        self.decoder = dnn.GRU(embed_dim + context, hidden, num_layers, batch_first=True, dropout=between)
        # A "deep output" (Bahdanau et al., appendix A): state, context and input token together.
        self.pre_output = nn.Linear(hidden + context + embed_dim, hidden)
        self.output = nn.Linear(hidden, vocab_size)

    def encode(self, src: torch.Tensor) -> Memory:
        """src (B, S) -> (s_0 (B, L, H), states (B, S, D*H), keys (B, S, A), mask (B, S))."""
        B, S = src.shape
        lengths = (src != PAD).sum(1).clamp(min=1)  # an all-PAD source reads one PAD rather than nothing
        mask = torch.arange(S, device=src.device)[None, :] < lengths[:, None]  # (B, S), True = read
        emb = self.dropout(self.embed(src))  # (B, S, E)
        # Packing stops each direction at the sequence's own end, so trailing PAD never
        # reaches a state: the encoding is the same however much padding follows.
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_states, final = self.encoder(packed)  # final (L*D, B, H)
        states, _ = pad_packed_sequence(packed_states, batch_first=True, total_length=S)  # (B, S, D*H), 0 at PAD
        L = self.encoder.num_layers
        final = final.view(L, -1, B, final.size(-1)).permute(2, 0, 1, 3).reshape(B, L, -1)  # (B, L, D*H)
        initial = torch.tanh(self.bridge(final))  # (B, L, H)
        keys = self.attention.keys(states) if self.attention is not None else states  # (B, S, A)
        return initial, states, keys, mask

    def decode(self, memory: Memory, tgt_in: torch.Tensor) -> torch.Tensor:
        """memory from ``encode``, tgt_in (B, T) -> logits (B, T, V), one decoder step per position."""
        initial, states, keys, mask = memory
        state = initial.transpose(0, 1).contiguous()  # (L, B, H)
        emb = self.dropout(self.embed(tgt_in))  # (B, T, E)
        logits, weights = [], []
        for emb_t in emb.unbind(1):  # unbind: one backward op, where emb[:, t] would write T zero-filled grads
            features = [emb_t]  # (B, E)
            if self.attention is not None:
                # The query is s_{t-1}: where to look is decided before reading y_{t-1} (Bahdanau).
                context, attn = self.attention(state[-1], keys, states, mask)  # (B, D*H), (B, S)
                features.append(context)
                weights.append(attn)
            output, state = self.decoder(torch.cat(features, -1).unsqueeze(1), state)  # (B, 1, H), (L, B, H)
            contexts = features[1:]  # [c_t] with attention, [] without
            deep = torch.tanh(self.pre_output(torch.cat([output.squeeze(1), *contexts, emb_t], -1)))  # (B, H)
            logits.append(self.output(self.dropout(deep)))  # (B, V)
        self._attention = torch.stack(weights, 1).detach() if weights else None  # (B, T, S)
        return torch.stack(logits, 1)  # (B, T, V)


# ----------------------------------------------------------------------------------
# Transformer encoder–decoder
# ----------------------------------------------------------------------------------


class TransformerSeq2Seq(Seq2Seq):
    """Vaswani et al. 2017 on ``dlcamp.nn`` layers, batch-first, one embedding shared by src, tgt and output."""

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        d_model: int = 128,
        nhead: int = 4,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 2,
        dim_feedforward: int = 256,
        dropout: float = 0.1,
        norm_first: bool = True,
        positional: str = "sinusoidal",
        tie_weights: bool = True,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        # std d^-1/2: scaled by sqrt(d) (sinusoidal) the inputs have unit variance, and as the
        # tied output matrix the logits start near unit scale.
        nn.init.normal_(self.embed.weight, std=d_model**-0.5)
        if positional == "sinusoidal":
            self.position: nn.Module = dnn.SinusoidalPositionalEncoding(d_model, max_len, dropout, scale_input=True)
        else:
            self.position = dnn.LearnedPositionalEmbedding(max_len, d_model, dropout)

        def final_norm() -> nn.LayerNorm | None:
            return nn.LayerNorm(d_model) if norm_first else None  # pre-norm stacks end un-normalised

        self.encoder = dnn.TransformerEncoder(
            [
                dnn.TransformerEncoderLayer(
                    d_model, nhead, dim_feedforward, dropout, batch_first=True, norm_first=norm_first
                )
                for _ in range(num_encoder_layers)
            ],
            norm=final_norm(),
        )
        self.decoder = dnn.TransformerDecoder(
            [
                dnn.TransformerDecoderLayer(
                    d_model, nhead, dim_feedforward, dropout, batch_first=True, norm_first=norm_first
                )
                for _ in range(num_decoder_layers)
            ],
            norm=final_norm(),
        )
        self.output = nn.Linear(d_model, vocab_size, bias=False)
        if tie_weights:
            self.output.weight = self.embed.weight

    def encode(self, src: torch.Tensor) -> Memory:
        """src (B, S) -> (encoded (B, S, d), padding (B, S) True = PAD)."""
        padding = src == PAD  # (B, S)
        encoded = self.encoder(self.position(self.embed(src)), src_key_padding_mask=padding)  # (B, S, d)
        return encoded, padding

    def decode(self, memory: Memory, tgt_in: torch.Tensor) -> torch.Tensor:
        """tgt_in (B, T) -> logits (B, T, V); causal self-attention, cross-attention to real source tokens."""
        encoded, padding = memory
        h = self.decoder(
            self.position(self.embed(tgt_in)),
            encoded,
            tgt_key_padding_mask=tgt_in == PAD,
            memory_key_padding_mask=padding,
            tgt_is_causal=True,
        )  # (B, T, d)
        weights = self.decoder.layers[-1].cross_attention_weights  # (B, nh, T, S)
        self._attention = weights.mean(1) if weights is not None else None  # (B, T, S)
        return self.output(h)  # (B, T, V)

    @torch.no_grad()
    def attention_maps(self, src: torch.Tensor, tgt_in: torch.Tensor) -> dict[str, torch.Tensor]:
        """As ``Seq2Seq.attention_maps``, plus ``"self"`` (B, T, T): the last decoder layer over its inputs."""
        with dnn.keeping_attention(self):
            self(src, tgt_in)
        last = self.decoder.layers[-1]
        return {
            "self": last.self_attention_weights.mean(1),  # (B, nh, T, T) -> (B, T, T)
            "cross": last.cross_attention_weights.mean(1),
        }  # (B, nh, T, S) -> (B, T, S)


@register_model("seq2seq_gru")
def seq2seq_gru(
    *,
    vocab_size: int,
    embed_dim: int = 64,
    hidden: int = 128,
    num_layers: int = 1,
    attention: str = "additive",
    dropout: float = 0.1,
    bidirectional: bool = True,
) -> GRUSeq2Seq:
    """GRU encoder-decoder (Cho et al. 2014) with additive (Bahdanau) or dot (Luong) attention, or none."""
    if attention not in ("none", "additive", "dot"):
        raise ValueError(f"unknown attention {attention!r}; choose none, additive or dot")
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    return GRUSeq2Seq(vocab_size, embed_dim, hidden, num_layers, attention, dropout, bidirectional)


@register_model("seq2seq_transformer")
def seq2seq_transformer(
    *,
    vocab_size: int,
    max_len: int,
    d_model: int = 128,
    nhead: int = 4,
    num_encoder_layers: int = 2,
    num_decoder_layers: int = 2,
    dim_feedforward: int = 256,
    dropout: float = 0.1,
    norm_first: bool = True,
    positional: str = "sinusoidal",
    tie_weights: bool = True,
) -> TransformerSeq2Seq:
    """Transformer encoder-decoder (Vaswani et al. 2017), pre-norm by default, tied embeddings."""
    if positional not in ("sinusoidal", "learned"):
        raise ValueError(f"unknown positional {positional!r}; choose sinusoidal or learned")
    if d_model % nhead:
        raise ValueError(f"d_model = {d_model} must be a multiple of nhead = {nhead}")
    if min(num_encoder_layers, num_decoder_layers) < 1:
        raise ValueError("num_encoder_layers and num_decoder_layers must be >= 1")
    return TransformerSeq2Seq(
        vocab_size,
        max_len,
        d_model,
        nhead,
        num_encoder_layers,
        num_decoder_layers,
        dim_feedforward,
        dropout,
        norm_first,
        positional,
        tie_weights,
    )
