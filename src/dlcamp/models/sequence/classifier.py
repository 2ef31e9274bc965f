"""A Transformer encoder that classifies a whole token sequence.

Encoder: "Attention Is All You Need", Vaswani et al. 2017, arXiv:1706.03762; the class
token read out by a linear head: BERT (Devlin et al. 2019, arXiv:1810.04805) and ViT
(Dosovitskiy et al. 2021, arXiv:2010.11929), whose encoder stack this model shares
(``dlcamp.models.classification.vit.ViTEncoder``).

Intuition: the model is ViT with the patch projection swapped for a token embedding.
Tokens are embedded, a learned class token is put in front, learned position vectors
are added, and pre-norm encoder layers let every token attend to every other. One
vector must then summarise the sequence for the head: either the class token's output
(``pool="cls"``; it has no content of its own, so attention makes it a learned summary)
or the mean of the real tokens' outputs (``pool="mean"``).

Batches are right-padded with PAD (id 0). PAD keys are masked out of every attention
(``src_key_padding_mask``), so no real token, nor the class token, ever reads a PAD; PAD
queries still compute something, but nothing downstream reads them. Appending PADs
therefore leaves the logits unchanged.

Legend: B batch, S sequence length (without the class token), T = S + 1 tokens, V
vocabulary, D width (d_model), nh heads, K classes.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from dlcamp.models import register_model
from dlcamp.models.classification.vit import ViTEncoder
from dlcamp.models.sequence.contracts import TokenAttentionMapper
from dlcamp.nn import LearnedPositionalEmbedding

PAD = 0  # the text data modules' padding id (dlcamp.data.text.Vocab.PAD)
POOLS = ("cls", "mean")


class TransformerClassifier(nn.Module, TokenAttentionMapper):
    """Token embedding, class token, learned positions, a ``ViTEncoder``, a linear head.

    ``forward_features``: LongTensor[B, S] right-padded with PAD -> (B, D) pooled;
    ``forward_head``: -> (B, K).
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        num_classes: int,
        max_len: int,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.1,
        pool: Literal["cls", "mean"] = "cls",
        norm_first: bool = True,
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        if vocab_size < 2 or max_len < 1:
            raise ValueError(
                f"need vocab_size >= 2 (PAD and one token) and max_len >= 1, "
                f"got vocab_size={vocab_size}, max_len={max_len}"
            )
        self.pool = pool
        self.max_len = max_len
        self.num_features = d_model
        self.token_embed = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        self.pos_embed = LearnedPositionalEmbedding(max_len + 1, d_model, dropout=dropout)  # + 1: the class token
        self.encoder = ViTEncoder(
            dim=d_model,
            depth=num_layers,
            num_heads=nhead,
            mlp_dim=dim_feedforward,
            dropout=dropout,
            norm_first=norm_first,
        )
        self.head = nn.Linear(d_model, num_classes)
        # BERT's scale: token vectors as small as the position vectors (N(0, 0.02²)), so
        # neither drowns the other at the start; nn.Embedding's N(0, 1) would.
        nn.init.normal_(self.token_embed.weight, std=0.02)
        with torch.no_grad():
            self.token_embed.weight[PAD].zero_()

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, S) ids -> tokens (B, T, D) and the key padding mask (B, T), True = PAD."""
        if x.size(1) > self.max_len:
            raise ValueError(
                f"sequences of length {x.size(1)} exceed max_len={self.max_len}; "
                "build the model with a larger max_len or truncate the inputs"
            )
        padding = x == PAD  # (B, S)
        padding = torch.cat([padding.new_zeros(x.size(0), 1), padding], dim=1)  # (B, T), the class token is real
        cls = self.cls_token.expand(x.size(0), -1, -1)  # (B, 1, D)
        tokens = torch.cat([cls, self.token_embed(x)], dim=1)  # (B, T, D)
        return self.pos_embed(tokens), padding

    def forward_features(self, x: Tensor) -> Tensor:
        tokens, padding = self.embed(x)
        hidden = self.encoder(tokens, src_key_padding_mask=padding)  # (B, T, D)
        if self.pool == "cls":
            return hidden[:, 0]  # (B, D)
        real = (~padding[:, 1:]).unsqueeze(-1).to(hidden.dtype)  # (B, S, 1), 1 = a real token
        return (hidden[:, 1:] * real).sum(1) / real.sum(1).clamp(min=1)  # (B, D), mean over real tokens

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)  # (B, K)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """One (B, nh, T, T) map per layer, the class token first; columns of PAD tokens are zero."""
        tokens, padding = self.embed(x)
        return self.encoder.attention_maps(tokens, padding)


@register_model("transformer_classifier")
def transformer_classifier(
    *,
    vocab_size: int,
    num_classes: int,
    max_len: int,
    d_model: int = 64,
    nhead: int = 4,
    num_layers: int = 2,
    dim_feedforward: int = 128,
    dropout: float = 0.1,
    pool: Literal["cls", "mean"] = "cls",
    norm_first: bool = True,
) -> TransformerClassifier:
    """Transformer encoder over PAD-padded token ids, class-token or mean pooling, linear head."""
    return TransformerClassifier(
        vocab_size=vocab_size,
        num_classes=num_classes,
        max_len=max_len,
        d_model=d_model,
        nhead=nhead,
        num_layers=num_layers,
        dim_feedforward=dim_feedforward,
        dropout=dropout,
        pool=pool,
        norm_first=norm_first,
    )
