"""Character language models: p(x) = prod_t p(x_t | x_<t), one softmax per position.

Papers:

* Recurrent LM: "Recurrent neural network based language model", Tomas Mikolov et al.,
  Interspeech 2010; characters and LSTMs: "Generating Sequences With Recurrent Neural
  Networks", Alex Graves, 2013, arXiv:1308.0850.
* Decoder-only Transformer: "Improving Language Understanding by Generative
  Pre-Training", Radford et al. 2018 (GPT), with the pre-norm layout of GPT-2.
* Tied input/output embeddings: "Using the Output Embedding to Improve Language Models",
  Press & Wolf 2017, arXiv:1608.05859.

Intuition: a language model reads a window x_0 .. x_{T-1} and at every position t
outputs a distribution over the next token, y_t = x_{t+1}. Training scores all T
predictions at once, which is only honest if the output at t cannot see x_{t+1}, ...:
the model must be *causal*. An RNN is causal by construction (it reads left to right
and h_t is a function of x_<=t); a Transformer is causal because its self-attention is
masked so position t attends only to positions <= t.

    embedding:  e_t = E[x_t]                                        (B, T, E)
    core:       h_t = f(e_<=t)      RNN / LSTM / GRU, or masked self-attention
    output:     logits_t = W h_t (+ b),  p(x_{t+1} | x_<=t) = softmax(logits_t)

The n-gram model (``ngram.py``) shares the interface: the one count-based baseline that
fixes the past window to order - 1 tokens, which both neural cores escape.

Generation (``LanguageModel.generate``): sample a token from the last position's
distribution, append it, repeat. The default re-runs ``forward`` on the last
``context_window`` tokens every step (O(T) work per token for a Transformer without a
KV cache); the recurrent models carry their hidden state instead (O(1) per token).

Legend: B batch, T time, V vocabulary, E embedding size, H hidden size (d_model for the
Transformer), L layers.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from dlcamp import nn as dnn
from dlcamp.models import register_model
from dlcamp.models.sequence.contracts import TokenAttentionMapper

RecurrentState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


NUM_SPECIAL = 4  # ids 0..3: PAD, BOS, EOS, UNK


def sample_next(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw one token per row from logits (B, V) -> (B,).

    ``temperature`` divides the logits (< 1 sharpens, > 1 flattens); ``top_k`` keeps the
    k most likely tokens only. ``top_k=1`` is greedy decoding (the argmax, no draw).
    """
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    # The special ids (PAD, BOS, EOS, UNK of dlcamp.data.text.Vocab) are never generated:
    # an EOS would end the decoded text early, a PAD or UNK is no character.
    logits = logits.float().clone()
    logits[:, :NUM_SPECIAL] = float("-inf")
    if top_k == 1:
        return logits.argmax(-1)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}; use top_k=1 for greedy decoding")
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1), the k-th largest logit
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def _check_prompt(prompt: torch.Tensor, n: int) -> None:
    if prompt.dim() != 2 or prompt.size(1) < 1:
        raise ValueError(
            f"prompt must be a LongTensor [B, T0] with T0 >= 1, got shape {tuple(prompt.shape)}; "
            "start from a BOS column when there is no text"
        )
    if n < 0:
        raise ValueError(f"n (tokens to generate) must be >= 0, got {n}")


class LanguageModel(nn.Module):
    """Base of the language models: ``forward(x [B, T]) -> logits [B, T, V]`` and ``generate``.

    ``context_window`` is how many trailing tokens the default ``generate`` feeds back to
    ``forward`` (the Transformer's ``max_len``, the n-gram's order - 1).
    """

    context_window: int

    @torch.no_grad()
    def generate(
        self,
        prompt: torch.Tensor,
        n: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        top_k: int | None = None,
    ) -> torch.Tensor:
        """Continue ``prompt`` [B, T0] by ``n`` sampled tokens -> [B, T0 + n].

        Runs in the module's current mode: call ``eval()`` first unless dropout noise is wanted.
        """
        _check_prompt(prompt, n)
        tokens = prompt
        for _ in range(n):
            logits = self(tokens[:, -self.context_window :])[:, -1]  # (B, V): the next token's logits
            next_token = sample_next(logits, temperature, top_k, generator)  # (B,)
            tokens = torch.cat([tokens, next_token.unsqueeze(1)], dim=1)
        return tokens


_RECURRENT_CORES = {"rnn": dnn.RNN, "lstm": dnn.LSTM, "gru": dnn.GRU}


class RecurrentLM(LanguageModel):
    """Embedding -> L-layer RNN / LSTM / GRU -> linear to V. ``step`` carries the state."""

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        core: str = "lstm",
        embed_dim: int = 64,
        hidden: int = 256,
        num_layers: int = 2,
        dropout: float = 0.1,
        tie_weights: bool = False,
    ) -> None:
        super().__init__()
        self.context_window = max_len
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.dropout = nn.Dropout(dropout)
        # dnn.RNN defaults to tanh: the Elman network of the vanishing-gradient story.
        self.rnn = _RECURRENT_CORES[core](
            embed_dim, hidden, num_layers=num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        # Tying makes the output layer read embed_dim features, so a wider hidden state is
        # projected down first (Press & Wolf 2017, section 5).
        self.proj = nn.Linear(hidden, embed_dim) if tie_weights and hidden != embed_dim else nn.Identity()
        self.head = nn.Linear(embed_dim if tie_weights else hidden, vocab_size)
        if tie_weights:
            self.head.weight = self.embed.weight

    def step(self, x: torch.Tensor, state: RecurrentState | None = None) -> tuple[torch.Tensor, RecurrentState]:
        """x (B, T), state from the previous call (None = zeros) -> logits (B, T, V), new state."""
        emb = self.dropout(self.embed(x))  # (B, T, E)
        hidden, state = self.rnn(emb, state)  # (B, T, H); state (L, B, H) or its (h, c) pair
        return self.head(self.dropout(self.proj(hidden))), state  # (B, T, V)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T) -> logits (B, T, V); position t has read x[:, :t + 1] only."""
        return self.step(x)[0]

    @torch.no_grad()
    def generate(
        self,
        prompt: torch.Tensor,
        n: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        top_k: int | None = None,
    ) -> torch.Tensor:
        """As ``LanguageModel.generate``, but reading each new token once: the state carries the past."""
        _check_prompt(prompt, n)
        if n == 0:
            return prompt
        logits, state = self.step(prompt)  # read the whole prompt once
        generated = [sample_next(logits[:, -1], temperature, top_k, generator)]  # each (B,)
        for _ in range(n - 1):
            logits, state = self.step(generated[-1].unsqueeze(1), state)  # (B, 1, V)
            generated.append(sample_next(logits[:, -1], temperature, top_k, generator))
        return torch.cat([prompt, torch.stack(generated, dim=1)], dim=1)


class TransformerLM(LanguageModel, TokenAttentionMapper):
    """Decoder-only Transformer: token + learned position -> L causal pre-norm layers -> LN -> V."""

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        d_model: int = 256,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int | None = None,
        dropout: float = 0.1,
        tie_weights: bool = False,
    ) -> None:
        super().__init__()
        self.context_window = max_len
        self.embed = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.embed.weight, std=0.02)  # GPT-2's scale; positions use the same
        self.position = dnn.LearnedPositionalEmbedding(max_len, d_model, dropout)
        layers = [
            dnn.TransformerEncoderLayer(
                d_model,
                nhead,
                dim_feedforward or 4 * d_model,
                dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(num_layers)
        ]
        # Pre-norm leaves the residual stream un-normalised: one last LayerNorm before the head.
        self.blocks = dnn.TransformerEncoder(layers, norm=nn.LayerNorm(d_model))
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        if tie_weights:
            self.head.weight = self.embed.weight
        # The causal mask is what makes this a language model. Switching it off exists only
        # to show (tests, a lecture figure) that the future then leaks into every position.
        self.causal = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T) with T <= max_len -> logits (B, T, V)."""
        h = self.position(self.embed(x))  # (B, T, H)
        h = self.blocks(h, is_causal=self.causal)  # (B, T, H); row t attends to columns <= t
        return self.head(h)  # (B, T, V)

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One (B, nh, T, T) map per layer; row t is zero beyond column t (the causal mask)."""
        with dnn.keeping_attention(self.blocks):
            self(x)
        return [layer.self_attention_weights for layer in self.blocks.layers]


@register_model("char_lm")
def char_lm(
    *,
    vocab_size: int,
    max_len: int,
    core: str = "lstm",
    embed_dim: int = 64,
    hidden: int = 256,
    num_layers: int = 2,
    dropout: float = 0.1,
    nhead: int = 4,
    dim_feedforward: int | None = None,
    tie_weights: bool = False,
) -> LanguageModel:
    """Character LM: embedding -> RNN / LSTM / GRU / causal Transformer -> next-token logits.

    ``core="transformer"`` uses ``hidden`` as d_model (the embedding is d_model wide and
    ``embed_dim`` is unused); ``nhead`` and ``dim_feedforward`` (default 4 * hidden) apply to it only.
    """
    if vocab_size < 2 or max_len < 1:
        raise ValueError(f"need vocab_size >= 2 and max_len >= 1, got vocab_size={vocab_size}, max_len={max_len}")
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    if core == "transformer":
        if hidden % nhead:
            raise ValueError(f"hidden (d_model) = {hidden} must be a multiple of nhead = {nhead}")
        return TransformerLM(vocab_size, max_len, hidden, nhead, num_layers, dim_feedforward, dropout, tie_weights)
    if core not in _RECURRENT_CORES:
        raise ValueError(f"unknown core {core!r}; choose one of rnn, lstm, gru, transformer")
    return RecurrentLM(vocab_size, max_len, core, embed_dim, hidden, num_layers, dropout, tie_weights)
