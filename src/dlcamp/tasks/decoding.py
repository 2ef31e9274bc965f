"""Decoding an encoder–decoder model: greedy search and beam search.

A seq2seq model is trained with teacher forcing (the decoder reads the true previous
tokens), but at test time it must read its own. Decoding searches for the output y that
maximises log p(y | x) = sum_t log p(y_t | y_<t, x):

- greedy: take the single most likely token at every step. Cheap, but one early choice
  can rule out the best sequence (a token with p = 0.5 followed by a sure one beats a
  token with p = 0.6 followed by a coin flip).
- beam search (e.g. Sutskever et al. 2014, arXiv:1409.3215): keep the ``beam_size``
  best partial outputs at every step; each grows by every token, and the best
  ``beam_size`` of the beam_size × V candidates survive. A finished hypothesis (it
  emitted EOS) stays in the beam with its score frozen. The winner is the best finished
  hypothesis by score / length^alpha (``length_penalty`` alpha; 0 = raw log-probability,
  which favours short outputs when lengths differ); one cut off at ``max_len`` wins only
  when none finished.

The model interface is the ``Seq2Seq`` contract (``dlcamp.models.sequence.seq2seq``):
``encode(src) -> memory``, a tuple of tensors with the batch first, and
``decode(memory, prefix) -> logits (B, T, V)`` for a whole prefix that starts with BOS. Both searches re-decode the prefix at each
step: simple and exact, quadratic in the output length (outputs here are short).

Token ids: PAD 0, BOS 1, EOS 2 (``dlcamp.data.text.Vocab``). Outputs are (B, n): the
tokens after BOS, EOS included, PAD after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from dlcamp.models.sequence.seq2seq import Seq2Seq

PAD, BOS, EOS = 0, 1, 2

__all__ = ["beam_search", "greedy_decode"]


def _next_log_probs(model: Seq2Seq, memory: tuple[Tensor, ...], seqs: Tensor) -> Tensor:
    """log p(next | prefix) (N, V) with PAD and BOS ruled out: they are never generated."""
    logits = model.decode(memory, seqs)[:, -1].float()
    banned = torch.zeros(logits.size(-1), dtype=torch.bool, device=logits.device)
    banned[[PAD, BOS]] = True
    return logits.masked_fill(banned, float("-inf")).log_softmax(-1)  # renormalised over the tokens that may come


@torch.no_grad()
def greedy_decode(model: Seq2Seq, src: Tensor, *, max_len: int) -> Tensor:
    """The most likely token at each step, until every row has emitted EOS or ``max_len`` tokens."""
    memory = model.encode(src)
    seqs = torch.full((src.size(0), 1), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        token = _next_log_probs(model, memory, seqs).argmax(-1)
        token = token.masked_fill(done, PAD)
        seqs = torch.cat([seqs, token[:, None]], dim=1)
        done |= token == EOS
        if bool(done.all()):
            break
    return seqs[:, 1:]


@torch.no_grad()
def beam_search(
    model: Seq2Seq, src: Tensor, *, max_len: int, beam_size: int = 4, length_penalty: float = 0.0
) -> Tensor:
    """The best of ``beam_size`` hypotheses kept at every step (see the module docstring)."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    B, K, device = src.size(0), beam_size, src.device
    memory = tuple(m.repeat_interleave(K, dim=0) for m in model.encode(src))  # row b*K + k: beam k of b
    seqs = torch.full((B * K, 1), BOS, dtype=torch.long, device=device)
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all K beams start identical: keep one, or the top-K would be K copies
    finished = torch.zeros(B * K, dtype=torch.bool, device=device)
    for _ in range(max_len):
        logp = _next_log_probs(model, memory, seqs)  # (B*K, V)
        V = logp.size(-1)
        # A finished hypothesis may only be extended by PAD, at no cost: its score is frozen.
        frozen = torch.full_like(logp, float("-inf"))
        frozen[:, PAD] = 0.0
        logp = torch.where(finished[:, None], frozen, logp)
        candidates = (scores.reshape(-1, 1) + logp).reshape(B, K * V)
        scores, index = candidates.topk(K, dim=1)  # (B, K) best continuations of any beam
        parent = (torch.arange(B, device=device)[:, None] * K + index // V).reshape(-1)
        token = (index % V).reshape(-1)
        seqs = torch.cat([seqs[parent], token[:, None]], dim=1)
        finished = finished[parent] | (token == EOS)
        if bool(finished.all()):
            break
    lengths = (seqs[:, 1:] != PAD).sum(1).clamp(min=1).float().reshape(B, K)
    final = scores / lengths.pow(length_penalty)
    # A hypothesis cut off at max_len is incomplete: it wins only when none finished.
    done = finished.reshape(B, K)
    final = torch.where(done | ~done.any(1, keepdim=True), final, torch.full_like(final, float("-inf")))
    best = final.argmax(1)  # (B,)
    return seqs.reshape(B, K, -1)[torch.arange(B, device=device), best, 1:]
