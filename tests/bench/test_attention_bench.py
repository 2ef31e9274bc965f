"""The attention benchmark runs end to end on tiny inputs (no timing is checked, only its shape and agreement)."""

from __future__ import annotations

import json

import pytest

from dlcamp.bench import list_benchmarks
from dlcamp.bench.attention import PASSES, PATHS, attention

TINY = dict(seq_lens=[4, 9], embed_dim=16, num_heads=2, batch=2, repeats=2, warmup=1, device="cpu")


@pytest.mark.parametrize("causal", [False, True])
def test_attention_benchmark_reports_every_length_path_and_pass(causal):
    result = attention(causal=causal, **TINY)

    assert {"title", "rows", "machine", "torch", "notes"} <= set(result)
    assert [(row["seq_len"], row["path"], row["pass"]) for row in result["rows"]] == [
        (seq_len, path, pass_name) for seq_len in TINY["seq_lens"] for path in PATHS for pass_name in PASSES
    ]
    for row in result["rows"]:
        assert set(row) == {"seq_len", "path", "pass", "ours_ms", "torch_ms", "speedup", "max_abs_diff"}
        assert row["ours_ms"] > 0 and row["torch_ms"] > 0 and row["speedup"] > 0
        assert 0 <= row["max_abs_diff"] < 1e-4, row  # same weights, same maths, float32
    json.dumps(result)  # the CLI can write it as JSON


def test_attention_benchmark_is_registered():
    assert "attention" in list_benchmarks()


def test_attention_benchmark_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(ValueError, match="num_heads"):
        attention(**{**TINY, "embed_dim": 10, "num_heads": 4})
