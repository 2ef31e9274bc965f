"""Generative models. The likelihood week: explicit densities with ``log_prob`` in nats and
``sample`` (see ``base``): the independent-Bernoulli baseline, NADE, PixelCNN, PixelRNN,
and the VAE (with its conditional variant)."""

from dlcamp.models.generative import bernoulli, nade, pixelcnn, pixelrnn, vae  # noqa: F401  (register)
from dlcamp.models.generative.base import BinaryAutoregressive, DensityModel, LatentVariableModel

__all__ = ["BinaryAutoregressive", "DensityModel", "LatentVariableModel"]
