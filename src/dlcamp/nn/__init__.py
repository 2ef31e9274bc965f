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
