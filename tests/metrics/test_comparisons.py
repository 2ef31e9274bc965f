from __future__ import annotations

import json

import pytest

from dlcamp.errors import UsageError
from dlcamp.metrics.comparisons import CONFIGURATIONS, compare
from dlcamp.models import list_models

C, HW = 64, 32 * 32


def rows(*names: str) -> dict[str, dict]:
    return {row["name"]: row for row in compare(names)["rows"]}


def test_two_3x3_convs_see_5x5_with_18_instead_of_25_weights_per_channel_pair():
    r = rows("conv5x5", "conv3x3x2")
    assert r["conv5x5"]["params"] == 25 * C * C + C
    assert r["conv3x3x2"]["params"] == 18 * C * C + 2 * C
    assert r["conv5x5"]["macs"] == 25 * C * C * HW  # "same" padding: every output pixel pays the full kernel
    assert r["conv3x3x2"]["macs"] == 18 * C * C * HW
    assert r["conv5x5"]["receptive_field"] == r["conv3x3x2"]["receptive_field"] == 5
    assert r["conv5x5"]["output"] == r["conv3x3x2"]["output"] == [C, 32, 32]


def test_three_3x3_convs_see_7x7_with_27_instead_of_49_weights_per_channel_pair():
    r = rows("conv7x7", "conv3x3x3")
    assert r["conv7x7"]["params"] == 49 * C * C + C and r["conv3x3x3"]["params"] == 27 * C * C + 3 * C
    assert r["conv7x7"]["macs"] == 49 * C * C * HW and r["conv3x3x3"]["macs"] == 27 * C * C * HW
    assert r["conv7x7"]["receptive_field"] == r["conv3x3x3"]["receptive_field"] == 7


def test_bottleneck_costs_a_seventeenth_of_two_3x3_convs_at_256_channels():
    r = rows("plain3x3x2", "bottleneck")
    plain_weights = 2 * 9 * 256 * 256
    bottleneck_weights = 256 * 64 + 9 * 64 * 64 + 64 * 256
    assert r["plain3x3x2"]["params"] == plain_weights + 2 * 256
    assert r["bottleneck"]["params"] == bottleneck_weights + 64 + 64 + 256
    assert r["plain3x3x2"]["macs"] == plain_weights * 16 * 16
    assert r["bottleneck"]["macs"] == bottleneck_weights * 16 * 16
    assert plain_weights / bottleneck_weights == pytest.approx(16.94, abs=0.01)
    assert (r["plain3x3x2"]["receptive_field"], r["bottleneck"]["receptive_field"]) == (5, 3)
    assert r["bottleneck"]["output"] == r["plain3x3x2"]["output"] == [256, 16, 16]


def test_inception_1x1_reductions_cut_the_cost_and_the_output_width():
    r = rows("inception_naive", "inception_1x1")
    # inception 3a on 192 channels: 64 1x1, 128 3x3, 32 5x5, pool
    naive_weights = 192 * 64 + 9 * 192 * 128 + 25 * 192 * 32
    # + 96 reduce before the 3x3, 16 before the 5x5, 32 projection after the pool
    reduced_weights = 192 * 64 + (192 * 96 + 9 * 96 * 128) + (192 * 16 + 25 * 16 * 32) + 192 * 32
    assert r["inception_naive"]["params"] == naive_weights + 64 + 128 + 32
    assert r["inception_1x1"]["params"] == reduced_weights + 64 + 96 + 128 + 16 + 32 + 32
    assert r["inception_naive"]["macs"] == naive_weights * 28 * 28
    assert r["inception_1x1"]["macs"] == reduced_weights * 28 * 28
    assert r["inception_1x1"]["macs"] / r["inception_naive"]["macs"] < 0.5
    assert r["inception_naive"]["output"] == [64 + 128 + 32 + 192, 28, 28]  # the pool passes all 192 on
    assert r["inception_1x1"]["output"] == [256, 28, 28]
    assert r["inception_naive"]["receptive_field"] == r["inception_1x1"]["receptive_field"] == 5


def test_conclusion_is_computed_from_the_numbers():
    assert compare(["conv5x5", "conv3x3x2"])["conclusions"] == [
        "conv3x3x2 sees 5x5 like conv5x5 with 0.72x the parameters and 0.72x the MACs"
    ]
    (line,) = compare(["plain3x3x2", "bottleneck"])["conclusions"]
    assert line == "bottleneck sees 3x3 where plain3x3x2 sees 5x5 with 0.059x the parameters and 0.059x the MACs"
    (line,) = compare(["inception_naive", "inception_1x1"])["conclusions"]
    assert line.endswith("(output 256x28x28 against 416x28x28)")


def test_compare_result_is_json_with_one_row_per_name():
    result = json.loads(json.dumps(compare(["conv7x7", "conv3x3x3", "conv5x5"])))
    assert result["reference"] == "conv7x7"
    assert [row["name"] for row in result["rows"]] == ["conv7x7", "conv3x3x3", "conv5x5"]
    for row in result["rows"]:
        assert set(row) == {
            "name",
            "description",
            "input",
            "output",
            "params",
            "macs",
            "receptive_field",
            "jump",
            "params_ratio",
            "macs_ratio",
        }
    assert result["rows"][0]["params_ratio"] == result["rows"][0]["macs_ratio"] == 1.0
    assert len(result["conclusions"]) == 2


def test_compare_profiles_registered_models_at_the_given_input():
    result = compare(["resnet20", "resnet32"], input_shape=(3, 16, 16))
    assert [row["input"] for row in result["rows"]] == [[3, 16, 16], [3, 16, 16]]
    assert result["rows"][1]["params"] > result["rows"][0]["params"]


def test_unknown_name_is_a_usage_error_listing_the_choices():
    with pytest.raises(UsageError) as info:
        compare(["conv5x5", "nonsense"])
    message = str(info.value)
    assert "nonsense" in message and "\n" not in message
    assert all(name in message for name in CONFIGURATIONS) and "resnet50" in message


def test_configuration_names_are_not_model_names():
    assert not set(CONFIGURATIONS) & set(list_models())
