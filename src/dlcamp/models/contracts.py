"""What tasks and the command line may ask of a model, as abstract classes.

A task checks its model against one of these once, when it is built, and says in one line
what is missing; it never probes a model with ``hasattr``. A model opts in by inheriting
the class (and ``nn.Module``); the abstract methods say exactly what it must provide.
"""

from __future__ import annotations

import abc

import torch
import torch.nn as nn


class Grouped(abc.ABC):
    """A model whose parts train separately: several optimizers, or phases that freeze some parts.

    ``param_groups()`` names the parts (``{"body": ..., "rpn": ..., "head": ...}``); each
    parameter of the model belongs to exactly one of them. A recipe's ``optim:`` mapping
    names these groups, and a phase says which of them train.
    """

    @abc.abstractmethod
    def param_groups(self) -> dict[str, nn.Module]:
        """Group name -> the module holding that group's parameters."""


class AuxiliaryClassifier(abc.ABC):
    """A classifier with auxiliary heads during training (GoogLeNet's two side classifiers).

    The training loss is ``loss(logits) + aux_loss_weight * sum(loss(aux) for each aux head)``.
    """

    aux_loss_weight: float  # the weight of each auxiliary head's loss

    @abc.abstractmethod
    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """The main logits [B, K] first, then each auxiliary head's logits [B, K] (None for a head built off)."""


class AttentionMapper(abc.ABC):
    """A patch model that can show where its class token looked (ViT)."""

    patch_size: int

    @abc.abstractmethod
    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per layer, the attention weights [B, nh, T, T] over the tokens of ``x``."""
