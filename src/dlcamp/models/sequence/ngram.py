"""The n-gram character model with interpolated Witten–Bell smoothing: the count-based baseline.

Papers: Witten & Bell, "The Zero-Frequency Problem: Estimating the Probabilities of
Novel Events in Adaptive Text Compression", IEEE Trans. Information Theory, 1991;
Chen & Goodman, "An Empirical Study of Smoothing Techniques for Language Modeling",
Harvard TR-10-98, 1998 (section 2.4 gives the interpolated form used here).

Intuition: an n-gram model *fixes the past window*. It assumes p(w | whole history) =
p(w | last n - 1 tokens) and estimates each conditional by counting. Counts of long
contexts are sparse (most 4-character contexts were seen a few times, many never), so
the estimate for a context h is interpolated with the estimate for h', h minus its
oldest token, down to a uniform distribution over the vocabulary: every probability is
positive and the NLL of unseen text stays finite. Witten–Bell sets the weight of the
lower order by how often h was followed by something *new*: a context followed by many
different types is one where novel continuations are likely.

    c(h, w)   times w followed h          c(h) = sum_w c(h, w)
    N1+(h .)  number of distinct w with c(h, w) > 0
    p(w | h) = (c(h, w) + N1+(h .) p(w | h')) / (c(h) + N1+(h .))      if c(h) > 0
             = p(w | h')                                              if c(h) = 0
    p(w | empty context) interpolates the unigram counts with p_0(w) = 1 / V.

Counting, vectorised. A context of length k (k = 0 .. n - 1) is the int64 key
sum_i x_{t-i} V^i, a number below V^k <= V^(n-1); the builder refuses (order, V) where
V^(n-1) >= 2^63 (order 8 with V = 256 gives 2^56 and fits). Per k the model keeps the
sorted unique context keys, and the (context, w) pairs as keys ``context_index * V + w``
(sorted, so a context's continuations are one contiguous run) with their counts. Keys
are merged with ``torch.unique(..., return_counts / return_inverse)`` and looked up with
``torch.searchsorted``: millions of characters count in seconds.

Window starts. A training window x_0 .. x_{T-1} is a slice of running text, so the
tokens before x_0 are unknown (not BOS). Position t has t + 1 tokens of context and uses
orders k <= t + 1 only, both when counting and when scoring: the first predictions of a
window back off to shorter contexts instead of inventing BOS padding. Targets equal to
``pad_id`` are not counted.

Fitting. ``observe(x, y)`` adds a batch's counts; it is what a training step calls (the
model has no parameters and needs no optimizer). New counts wait in a small pending list
and are merged into the tables when the list grows large, by ``finalize()``, or lazily by
``forward`` and ``state_dict``: calling ``finalize()`` is never required. The tables are
persistent buffers whose sizes change; ``load_state_dict`` resizes them, so a fitted
model loads into a freshly built one.

Legend: B batch, T time, V vocabulary, n order, k context length, C contexts, P pairs.
"""

from __future__ import annotations

from typing import Any

import torch

from dlcamp.models import register_model
from dlcamp.models.sequence.contracts import CountingModel
from dlcamp.models.sequence.language import LanguageModel

_PENDING_LIMIT = 1 << 21  # pending (context, w) entries, summed over orders, before a merge


class NGramLM(LanguageModel, CountingModel):
    """Interpolated Witten–Bell n-gram model over token ids; ``forward`` returns log-probabilities.

    A ``CountingModel``: trained by ``observe``, not by gradients.
    """

    def __init__(self, vocab_size: int, order: int = 5, pad_id: int | None = 0) -> None:
        super().__init__()
        self.vocab_size, self.order, self.pad_id = vocab_size, order, pad_id
        self.context_window = max(order - 1, 1)  # generation feeds back the last n - 1 tokens
        for k in range(order):
            # Persistent: the counts themselves.
            self.register_buffer(f"context_keys_{k}", torch.zeros(0, dtype=torch.long))  # (C_k,) sorted
            self.register_buffer(f"pair_keys_{k}", torch.zeros(0, dtype=torch.long))  # (P_k,) sorted
            self.register_buffer(f"pair_counts_{k}", torch.zeros(0, dtype=torch.long))  # (P_k,)
            # Derived from them (rebuilt after every merge or load).
            self.register_buffer(f"context_start_{k}", torch.zeros(1, dtype=torch.long), persistent=False)  # (C_k+1,)
            self.register_buffer(f"context_total_{k}", torch.zeros(0, dtype=torch.long), persistent=False)  # (C_k,)
        self._pending: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in range(order)]
        self._pending_size = 0

    # ------------------------------------------------------------------ keys
    def _context_keys(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x (B, T) -> per k = 0 .. n-1 the key of x[:, t-k+1 .. t] at every t, each (B, T).

        Entries with t < k - 1 (not enough tokens in the window) are meaningless; callers mask them.
        """
        keys = [torch.zeros_like(x)]
        for _ in range(1, self.order):
            # key_k[t] = key_{k-1}[t-1] * V + x[t]: append x_t as the least significant digit.
            shifted = torch.cat([torch.zeros_like(x[:, :1]), keys[-1][:, :-1]], dim=1)  # (B, T)
            keys.append(shifted * self.vocab_size + x)
        return keys

    @staticmethod
    def _available(k: int, length: int, device: torch.device) -> torch.Tensor:
        """(T,) bool: position t has the k tokens a length-k context needs (t + 1 >= k)."""
        return torch.arange(length, device=device) >= k - 1

    def _check_tokens(self, x: torch.Tensor, what: str) -> None:
        if x.numel() and (x.min() < 0 or x.max() >= self.vocab_size):
            raise ValueError(
                f"{what} holds token ids outside 0..{self.vocab_size - 1} "
                f"(min {int(x.min())}, max {int(x.max())}); check vocab_size"
            )

    # ------------------------------------------------------------------ counting
    @torch.no_grad()
    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Count a batch: x (B, T) contexts, y (B, T) targets (y[:, t] follows x[:, :t + 1])."""
        if x.shape != y.shape or x.dim() != 2:
            raise ValueError(
                f"observe needs x and y of the same shape [B, T], got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        self._check_tokens(x, "x")
        self._check_tokens(y, "y")
        V = self.vocab_size
        counted = y != self.pad_id if self.pad_id is not None else torch.ones_like(y, dtype=torch.bool)
        for k, keys in enumerate(self._context_keys(x)):
            mask = counted & self._available(k, x.size(1), x.device)  # (B, T)
            contexts, targets = keys[mask], y[mask]  # (N,), (N,)
            if contexts.numel() == 0:
                continue
            # Compress the batch before it waits: unique contexts, then unique (context, w) pairs.
            unique_contexts, context_index = torch.unique(contexts, return_inverse=True)
            pairs, pair_counts = torch.unique(context_index * V + targets, return_counts=True)
            self._pending[k].append((unique_contexts[pairs // V], pairs % V, pair_counts))
            self._pending_size += pairs.numel()
        if self._pending_size > _PENDING_LIMIT:
            self.finalize()

    @torch.no_grad()
    def finalize(self) -> None:
        """Merge the pending counts into the tables (idempotent; forward does it when needed)."""
        if self._pending_size == 0:
            return
        V = self.vocab_size
        for k in range(self.order):
            if not self._pending[k]:
                continue
            old_contexts = getattr(self, f"context_keys_{k}")
            old_pairs = getattr(self, f"pair_keys_{k}")
            # Every count as a (context key, w, count) triple: the stored ones and the new ones.
            device = old_pairs.device  # the module may have moved since the batch was observed
            contexts = torch.cat([old_contexts[old_pairs // V]] + [c.to(device) for c, _, _ in self._pending[k]])
            targets = torch.cat([old_pairs % V] + [w.to(device) for _, w, _ in self._pending[k]])
            counts = torch.cat([getattr(self, f"pair_counts_{k}")] + [n.to(device) for _, _, n in self._pending[k]])
            self._store(k, contexts, targets, counts)
            self._pending[k] = []
        self._pending_size = 0

    def _store(self, k: int, contexts: torch.Tensor, targets: torch.Tensor, counts: torch.Tensor) -> None:
        """Sum (context, w, count) triples (N,) into the order-k tables."""
        V = self.vocab_size
        context_keys, context_index = torch.unique(contexts, return_inverse=True)  # (C,), (N,)
        # Pair keys index contexts densely (< C * V), so they cannot overflow even when the
        # raw context keys use most of the int64 range.
        pair_keys, pair_index = torch.unique(context_index * V + targets, return_inverse=True)  # (P,), (N,)
        pair_counts = torch.zeros_like(pair_keys).index_add_(0, pair_index, counts)  # (P,)
        setattr(self, f"context_keys_{k}", context_keys)
        setattr(self, f"pair_keys_{k}", pair_keys)
        setattr(self, f"pair_counts_{k}", pair_counts)
        self._derive(k)

    def _derive(self, k: int) -> None:
        """Rebuild each context's run of pairs [start, start') and its total count c(h)."""
        V = self.vocab_size
        context_keys, pair_keys = getattr(self, f"context_keys_{k}"), getattr(self, f"pair_keys_{k}")
        bounds = torch.arange(context_keys.numel() + 1, device=pair_keys.device) * V  # (C+1,)
        setattr(self, f"context_start_{k}", torch.searchsorted(pair_keys, bounds))  # (C+1,)
        total = torch.zeros_like(context_keys).index_add_(0, pair_keys // V, getattr(self, f"pair_counts_{k}"))
        setattr(self, f"context_total_{k}", total)  # (C,)

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T) -> log p(next token | x[:, max(0, t-n+2) .. t]) as (B, T, V), float32."""
        self.finalize()
        self._check_tokens(x, "x")
        B, T = x.shape
        V = self.vocab_size
        # Start from the uniform distribution and raise the order one context length at a time.
        probs = torch.full((B * T, V), 1.0 / V, dtype=torch.float64, device=x.device)  # (B*T, V)
        for k, keys in enumerate(self._context_keys(x)):
            context_keys = getattr(self, f"context_keys_{k}")
            if context_keys.numel() == 0:
                continue
            keys = keys.reshape(-1)  # (B*T,)
            index = torch.searchsorted(context_keys, keys).clamp_(max=context_keys.numel() - 1)  # (B*T,)
            seen = (context_keys[index] == keys) & self._available(k, T, x.device).repeat(B)
            rows = seen.nonzero().squeeze(1)  # (Q,) positions whose length-k context was seen
            if rows.numel() == 0:
                continue
            contexts = index[rows]  # (Q,)
            starts = getattr(self, f"context_start_{k}")
            first, types = starts[contexts], starts[contexts + 1] - starts[contexts]  # (Q,) each; types = N1+(h .)
            # Scatter every context's run of (w, count) pairs into a dense (Q, V) count table.
            row_of_pair = torch.repeat_interleave(torch.arange(rows.numel(), device=x.device), types)  # (M,)
            run_offset = torch.arange(row_of_pair.numel(), device=x.device) - torch.repeat_interleave(
                types.cumsum(0) - types, types
            )  # (M,) position within its run
            pair_pos = torch.repeat_interleave(first, types) + run_offset  # (M,)
            counts = torch.zeros(rows.numel(), V, dtype=torch.float64, device=x.device)  # (Q, V)
            counts[row_of_pair, getattr(self, f"pair_keys_{k}")[pair_pos] % V] = getattr(self, f"pair_counts_{k}")[
                pair_pos
            ].double()
            total = getattr(self, f"context_total_{k}")[contexts].double().unsqueeze(1)  # (Q, 1): c(h)
            types = types.double().unsqueeze(1)  # (Q, 1)
            # Witten–Bell: (c(h, w) + N1+(h .) p(w | h')) / (c(h) + N1+(h .)).
            probs[rows] = (counts + types * probs[rows]) / (total + types)
        return probs.log().float().view(B, T, V)

    # ------------------------------------------------------------------ state dict
    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        self.finalize()  # pending counts belong in the checkpoint
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # The tables grow with the data: take the checkpoint's sizes before copying into them.
        for k in range(self.order):
            for name in (f"context_keys_{k}", f"pair_keys_{k}", f"pair_counts_{k}"):
                incoming = state_dict.get(prefix + name)
                if isinstance(incoming, torch.Tensor):
                    device = getattr(self, name).device
                    setattr(self, name, torch.zeros(incoming.shape, dtype=torch.long, device=device))
        self._pending = [[] for _ in range(self.order)]
        self._pending_size = 0
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        for k in range(self.order):
            self._derive(k)

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, order={self.order}"


@register_model("ngram")
def ngram(*, vocab_size: int, order: int = 5) -> NGramLM:
    """n-gram character model, interpolated Witten–Bell smoothing down to uniform (count-based)."""
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
    if order < 1:
        raise ValueError(f"order must be >= 1 (1 = unigram), got {order}")
    if vocab_size ** (order - 1) >= 2**63:
        raise ValueError(
            f"contexts of order - 1 = {order - 1} tokens over {vocab_size} symbols do not fit "
            "an int64 key; lower the order"
        )
    return NGramLM(vocab_size, order)
