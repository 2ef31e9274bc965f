"""Optimizer specs to optimizers: the shorthand and the named mapping, no_decay, phase arithmetic."""

from __future__ import annotations

import torch
import torch.nn as nn

from dlcamp.models import get_model
from dlcamp.optim.groups import (
    Phase,
    build_optimizer,
    decays,
    is_multi,
    param_groups_for,
    phase_bounds,
    phase_index,
    specs,
)


def test_one_spec_is_the_shorthand_and_a_mapping_names_groups():
    assert not is_multi({"name": "adam", "lr": 1e-3})
    assert is_multi({"generator": {"name": "adam"}, "discriminator": {"name": "sgd", "lr": 0.1}})
    assert list(specs({"name": "adam"})) == ["all"]
    assert list(specs({"g": {"name": "adam"}, "d": {"name": "adam"}})) == ["g", "d"]


def test_no_decay_keeps_biases_norms_embeddings_and_tokens_out_of_weight_decay():
    vit = get_model("vit_digits32", num_classes=10, input_shape=[1, 32, 32], dim=16, depth=1, num_heads=2, mlp_dim=32)
    groups = param_groups_for([vit], no_decay=True, weight_decay=0.05)
    decay = {id(p) for p in groups[0]["params"]}
    names = {name: id(p) in decay for name, p in vit.named_parameters()}
    assert names["cls_token"] is False and names["pos_embed.weight"] is False
    assert all(not d for n, d in names.items() if n.endswith(".bias") or "norm" in n)
    linear_weights = [n for n, m in vit.named_modules() if isinstance(m, nn.Linear)]
    assert linear_weights and all(names[f"{n}.weight"] for n in linear_weights)
    assert groups[1]["weight_decay"] == 0.0 and groups[1]["name"] == "no_decay"
    # every parameter in exactly one group
    assert sum(len(g["params"]) for g in groups) == len(list(vit.parameters()))


def test_no_decay_leaves_those_parameters_unchanged_by_decay_alone():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Embedding(5, 4))
    opt = build_optimizer({"name": "adamw", "lr": 0.1, "weight_decay": 0.5, "no_decay": True}, [model])
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: only weight decay could move a parameter
    opt.step()
    moved = [not torch.equal(a, p) for a, p in zip(before, model.parameters())]
    assert moved == [True, False, False, False, False]  # only the Linear's weight decays
    assert decays(model[0], "0.weight", model[0].weight) and not decays(model[2], "2.weight", model[2].weight)


def test_phase_bounds_split_the_steps_by_share():
    phases = [Phase("a", ["x"], share=1), Phase("b", ["y"], share=3)]
    bounds = phase_bounds(phases, 40)
    assert bounds == [0, 10, 40]
    assert [phase_index(bounds, s) for s in (0, 9, 10, 39, 45)] == [0, 0, 1, 1, 1]
