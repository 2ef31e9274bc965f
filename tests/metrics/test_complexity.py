from __future__ import annotations

import torch.nn as nn

from dlcamp.metrics.complexity import profile


def test_conv_stack_params_macs_and_receptive_field():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3, padding=1), nn.Flatten(), nn.Linear(16 * 4 * 4, 10))
    r = profile(model, (3, 8, 8))
    conv1, _, pool, conv2, _, fc = r["layers"]
    assert conv1["params"] == 3 * 8 * 9 + 8 and conv1["macs"] == 3 * 9 * 8 * 8 * 8
    assert conv2["output"] == [16, 4, 4] and conv2["macs"] == 8 * 9 * 16 * 4 * 4
    assert fc["macs"] == 256 * 10
    # 3x3 -> rf 3; pool 2/2 -> rf 4, jump 2; 3x3 at jump 2 -> rf 8
    assert (conv1["rf"], pool["rf"], pool["jump"], conv2["rf"]) == (3, 4, 2, 8)
    assert r["total_params"] == sum(p.numel() for p in model.parameters())


def test_two_3x3_see_what_one_5x5_sees_with_fewer_parameters():
    five = profile(nn.Conv2d(16, 16, 5), (16, 9, 9))
    three = profile(nn.Sequential(nn.Conv2d(16, 16, 3), nn.Conv2d(16, 16, 3)), (16, 9, 9))
    assert five["layers"][-1]["rf"] == three["layers"][-1]["rf"] == 5
    assert three["total_params"] < five["total_params"]
