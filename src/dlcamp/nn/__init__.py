"""Blocks written here: layers, regularizers and losses that the curriculum teaches.

MLP/optimizer week: batch norm, dropout, cross-entropy with label smoothing and soft
targets, Mixup/CutMix, and input/weight noise. Each module's docstring names its paper.
"""

from dlcamp.nn.batchnorm import BatchNorm1d, BatchNorm2d
from dlcamp.nn.dropout import Dropout
from dlcamp.nn.losses import LabelSmoothingCrossEntropy, cross_entropy
from dlcamp.nn.mixing import CutMix, Mixup, MixupOrCutMix
from dlcamp.nn.noise import GaussianNoise, weight_noise

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "CutMix",
    "Dropout",
    "GaussianNoise",
    "LabelSmoothingCrossEntropy",
    "Mixup",
    "MixupOrCutMix",
    "cross_entropy",
    "weight_noise",
]

# Recurrent week: RNN / LSTM / GRU cells and layers (issue 6).
from dlcamp.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell  # noqa: E402

__all__ += ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell"]
from dlcamp.nn.attention import MultiheadAttention, scaled_dot_product_attention  # noqa: E402

__all__ += ["MultiheadAttention", "scaled_dot_product_attention"]

# Likelihood week: masked convolutions for PixelCNN / PixelRNN (issue 4).
from dlcamp.nn.masked import MaskedConv2d, raster_mask  # noqa: E402

__all__ += ["MaskedConv2d", "raster_mask"]

# Transformer week: positional encodings, encoder and decoder layers (issue 6).
from dlcamp.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding  # noqa: E402
from dlcamp.nn.transformer import (  # noqa: E402
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    keeping_attention,
)

__all__ += [
    "LearnedPositionalEmbedding",
    "SinusoidalPositionalEncoding",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "keeping_attention",
]

# Segmentation week: transposed convolution and FCN's bilinear upsampling.
from dlcamp.nn.conv_transpose import ConvTranspose2d, bilinear_upsampling  # noqa: E402

__all__ += ["ConvTranspose2d", "bilinear_upsampling"]
