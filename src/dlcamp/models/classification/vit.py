"""ViT: the Vision Transformer, an image read as a sentence of patches.

Dosovitskiy, Beyer, Kolesnikov, Weissenborn, Zhai, Unterthiner, Dehghani, Minderer,
Heigold, Gelly, Uszkoreit & Houlsby, "An Image is Worth 16x16 Words: Transformers for
Image Recognition at Scale", ICLR 2021, arXiv:2010.11929.

Idea: drop the convolutions' built-in assumptions (locality, translation equivariance)
and hand a plain Transformer encoder the image as a sequence. Cut it into N = HW / P²
non-overlapping P x P patches, project each linearly to a D-dimensional token (one
strided convolution with kernel = stride = P does exactly that), prepend a learned
class token, add a learned position embedding per slot, and run L pre-norm encoder
layers (self-attention, then a GELU MLP). The class token's output, after a final
LayerNorm, is the image's feature vector; a linear head classifies it.

Without the inductive biases, ViT needs more data than a CNN to learn what a CNN is
given (the paper: worse than ResNets on ImageNet-1k alone, better after pre-training on
14M-300M images). On small data it still learns, slowly, with augmentation and weight
decay; attention maps show it discovering locality on its own in the early layers.

``ViTEncoder`` (the stack of independently initialised pre-norm layers and the final
norm) is shared with ``dlcamp.models.sequence.classifier``; ``convert_hf_vit_state`` /
``load_hf_vit_state`` map a ``transformers`` ViT state dict onto these modules.

Legend: B batch, C channels, H, W image size, P patch size, N patches (H/P * W/P),
T tokens (N + 1 with the class token), D width, nh heads, K classes.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from dlcamp.models import register_model
from dlcamp.models.classification._common import check_input_shape
from dlcamp.models.contracts import AttentionMapper
from dlcamp.nn import LearnedPositionalEmbedding, TransformerEncoder, TransformerEncoderLayer, keeping_attention

LAYER_NORM_EPS = 1e-6  # the original (JAX) ViT's and torchvision's; transformers' ViTConfig defaults to 1e-12


class ViTEncoder(TransformerEncoder):
    """``depth`` GELU encoder layers, each initialised on its own, then a final LayerNorm.

    (B, T, D) -> (B, T, D), batch first. Pre-norm (``norm_first``, ViT's choice) leaves the
    residual stream un-normalised, so the final norm is needed; a post-norm stack ends in
    a LayerNorm already and gets none.
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_dim: int,
        dropout: float = 0.0,
        norm_first: bool = True,
        layer_norm_eps: float = LAYER_NORM_EPS,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        if num_heads < 1 or dim % num_heads != 0:
            raise ValueError(
                f"dim={dim} must split evenly into num_heads={num_heads} heads; pick num_heads dividing {dim}"
            )
        layers = [
            TransformerEncoderLayer(
                dim,
                num_heads,
                mlp_dim,
                dropout,
                activation="gelu",
                layer_norm_eps=layer_norm_eps,
                batch_first=True,
                norm_first=norm_first,
            )
            for _ in range(depth)
        ]
        super().__init__(layers, norm=nn.LayerNorm(dim, eps=layer_norm_eps) if norm_first else None)
        for layer in self.layers:
            # The attention projections keep torch's Xavier init; the MLP gets Xavier too
            # (as the JAX ViT) rather than nn.Linear's default, which is scaled for ReLU.
            for linear in (layer.linear1, layer.linear2):
                nn.init.xavier_uniform_(linear.weight)
                nn.init.zeros_(linear.bias)

    @property
    def keep_attention(self) -> bool:
        """Switch: when True every layer stores its attention as ``self_attention_weights``."""
        return all(layer.keep_attention for layer in self.layers)

    @keep_attention.setter
    def keep_attention(self, keep: bool) -> None:
        for layer in self.layers:
            layer.keep_attention = keep

    @torch.no_grad()
    def attention_maps(self, tokens: Tensor, padding_mask: Tensor | None = None) -> list[Tensor]:
        """Run once with attention kept; one (B, nh, T, T) tensor per layer, rows summing to 1."""
        with keeping_attention(self):
            self(tokens, src_key_padding_mask=padding_mask)
        return [layer.self_attention_weights for layer in self.layers]


class VisionTransformer(nn.Module, AttentionMapper):
    """Patch embedding, class token, learned positions, a ``ViTEncoder``, a linear head.

    ``forward_tokens``: (B, C, H, W) -> (B, T, D), every token after the final norm;
    ``forward_features``: -> (B, D), the class token's; ``forward_head``: -> (B, K).
    """

    def __init__(
        self,
        *,
        image_size: int | Sequence[int],
        patch_size: int,
        in_channels: int = 3,
        num_classes: int = 1000,
        dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_dim: int = 3072,
        dropout: float = 0.0,
        layer_norm_eps: float = LAYER_NORM_EPS,
    ) -> None:
        super().__init__()
        height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if patch_size < 1 or height % patch_size or width % patch_size:
            raise ValueError(
                f"image size {height}x{width} must be a multiple of patch_size={patch_size}; "
                "crop or resize the images, or pick a patch size dividing both sides"
            )
        self.image_size = (height, width)
        self.patch_size = patch_size
        self.num_patches = (height // patch_size) * (width // patch_size)
        self.num_features = dim

        # A linear map of each flattened P x P x C patch, written as a convolution whose
        # kernel and stride are the patch: the patches do not overlap.
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        # The class token attends to every patch and is the only one the head reads; it
        # starts at zero and learns to be a useful query (BERT's [CLS]).
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = LearnedPositionalEmbedding(self.num_patches + 1, dim, dropout=dropout)
        self.encoder = ViTEncoder(
            dim=dim, depth=depth, num_heads=num_heads, mlp_dim=mlp_dim, dropout=dropout, layer_norm_eps=layer_norm_eps
        )
        self.head = nn.Linear(dim, num_classes)

        # As torchvision: the patch projection as a Linear with LeCun-normal weights; the
        # head at zero, so training starts from uniform predictions.
        fan_in = in_channels * patch_size * patch_size
        nn.init.trunc_normal_(self.patch_embed.weight, std=(1.0 / fan_in) ** 0.5)
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def embed(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> the encoder's input (B, T, D): class token, then patches, plus positions."""
        if tuple(x.shape[-2:]) != self.image_size:
            raise ValueError(
                f"this ViT was built for {self.image_size[0]}x{self.image_size[1]} images "
                f"(its position embeddings), got {x.shape[-2]}x{x.shape[-1]}"
            )
        patches = self.patch_embed(x)  # (B, D, H/P, W/P)
        patches = patches.flatten(2).transpose(1, 2)  # (B, N, D), patches in raster order
        cls = self.cls_token.expand(x.size(0), -1, -1)  # (B, 1, D)
        return self.pos_embed(torch.cat([cls, patches], dim=1))  # (B, T, D)

    def forward_tokens(self, x: Tensor) -> Tensor:
        return self.encoder(self.embed(x))  # (B, T, D), normalised

    def forward_features(self, x: Tensor) -> Tensor:
        return self.forward_tokens(x)[:, 0]  # (B, D), the class token

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)  # (B, K)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """One (B, nh, T, T) map per layer; row 0 is where the class token looks (token 0 is itself)."""
        return self.encoder.attention_maps(self.embed(x))


# -- builders ------------------------------------------------------------------------------


@register_model("vit_digits32")
def vit_digits32(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    input_shape: Sequence[int] = (1, 32, 32),
    patch_size: int = 4,
    dim: int = 64,
    depth: int = 6,
    num_heads: int = 4,
    mlp_dim: int = 128,
    dropout: float = 0.0,
) -> VisionTransformer:
    """A small ViT for 32x32 images: 4x4 patches (64 tokens + class token), width 64, 6 layers; 0.2M params."""
    check_input_shape("vit_digits32", input_shape, in_channels)
    return VisionTransformer(
        image_size=tuple(input_shape[1:]),
        patch_size=patch_size,
        in_channels=in_channels,
        num_classes=num_classes,
        dim=dim,
        depth=depth,
        num_heads=num_heads,
        mlp_dim=mlp_dim,
        dropout=dropout,
    )


@register_model("vit_b_16")
def vit_b_16(
    *, num_classes: int = 1000, in_channels: int = 3, image_size: int = 224, dropout: float = 0.0
) -> VisionTransformer:
    """ViT-B/16 (Dosovitskiy et al. 2021): 16x16 patches, width 768, 12 layers, 12 heads, MLP 3072; 86.6M params."""
    return VisionTransformer(
        image_size=image_size,
        patch_size=16,
        in_channels=in_channels,
        num_classes=num_classes,
        dim=768,
        depth=12,
        num_heads=12,
        mlp_dim=3072,
        dropout=dropout,
    )


# -- transformers (Hugging Face) weights -----------------------------------------------------

# A layer key is "layers.{i}.{part}.{weight|bias}" (transformers >= 5) or
# "encoder.layer.{i}.{part}.{weight|bias}" (4.x); part -> ours ("q"/"k"/"v" are packed).
_HF_LAYER_KEY = re.compile(r"^(?:layers|encoder\.layer)\.(\d+)\.(.+)\.(weight|bias)$")
_HF_LAYER_PARTS = {
    "attention.q_proj": "q",
    "attention.attention.query": "q",
    "attention.k_proj": "k",
    "attention.attention.key": "k",
    "attention.v_proj": "v",
    "attention.attention.value": "v",
    "attention.o_proj": "self_attn.out_proj",
    "attention.output.dense": "self_attn.out_proj",
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "mlp.fc1": "linear1",
    "intermediate.dense": "linear1",
    "mlp.fc2": "linear2",
    "output.dense": "linear2",
}
_HF_TOP = {
    "embeddings.patch_embeddings.projection.weight": "patch_embed.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.bias",
    "layernorm.weight": "encoder.norm.weight",
    "layernorm.bias": "encoder.norm.bias",
    "classifier.weight": "head.weight",  # ViTForImageClassification
    "classifier.bias": "head.bias",
}


def convert_hf_vit_state(hf_state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A ``transformers`` ViT state dict in ``VisionTransformer``'s names.

    HF keeps separate query/key/value Linears; ours packs them as torch does, rows
    [q; k; v] of ``in_proj_weight`` (3D, D). The class token stays (1, 1, D), the position
    table (1, T, D) becomes (T, D). A ``vit.`` prefix (ViTForImageClassification) is
    dropped. Every key must be used: an unknown one (a pooler, a mask token) raises.
    """
    ours: dict[str, Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, Tensor]] = {}
    unknown = []
    for key, value in hf_state.items():
        name = key.removeprefix("vit.")
        layer = _HF_LAYER_KEY.match(name)
        if name in _HF_TOP:
            ours[_HF_TOP[name]] = value
        elif name == "embeddings.cls_token":
            ours["cls_token"] = value  # (1, 1, D)
        elif name == "embeddings.position_embeddings":
            ours["pos_embed.weight"] = value.squeeze(0)  # (1, T, D) -> (T, D)
        elif layer is not None and layer.group(2) in _HF_LAYER_PARTS:
            index, part, kind = int(layer.group(1)), _HF_LAYER_PARTS[layer.group(2)], layer.group(3)
            if part in ("q", "k", "v"):
                qkv.setdefault((index, kind), {})[part] = value
            else:
                ours[f"encoder.layers.{index}.{part}.{kind}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"keys with no place in a VisionTransformer: {', '.join(unknown)} "
            "(build ViTModel with add_pooling_layer=False, or drop them)"
        )
    for (index, kind), parts in sorted(qkv.items()):
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(
                f"layer {index}: found {sorted(parts)} {kind}s of the query/key/value projections, need all three"
            )
        ours[f"encoder.layers.{index}.self_attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return ours


def load_hf_vit_state(model: VisionTransformer, hf_state: Mapping[str, Tensor]) -> list[str]:
    """Copy a ``transformers`` ViT's weights into ``model``; return the keys left as they were.

    Strict both ways: every HF tensor finds a place (``convert_hf_vit_state``) and every
    tensor of ``model`` is filled, except the head when ``hf_state`` has none (a bare
    ``ViTModel``), whose names are returned. Shapes must agree.
    """
    missing, unexpected = model.load_state_dict(convert_hf_vit_state(hf_state), strict=False)
    if unexpected or set(missing) - {"head.weight", "head.bias"}:
        raise ValueError(
            f"the HF state does not fit this VisionTransformer: missing {missing}, "
            f"unexpected {unexpected}; check depth, and that the configs agree"
        )
    return list(missing)
