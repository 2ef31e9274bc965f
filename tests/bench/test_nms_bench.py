"""The NMS benchmark runs end to end on tiny sizes (no timing is checked, only its shape and agreement)."""

from __future__ import annotations

import json

from dlcamp.bench import list_benchmarks, run_benchmark
from dlcamp.bench.nms import nms_bench

ROW_KEYS = {"n", "kept", "ours_ms", "torchvision_ms", "speedup", "identical"}


def test_nms_benchmark_reports_one_identical_row_per_size():
    result = nms_bench(sizes=(50, 400), repeats=2, device="cpu")
    assert {"title", "rows", "machine", "torch", "notes"} <= set(result)
    assert [row["n"] for row in result["rows"]] == [50, 400]
    for row in result["rows"]:
        assert set(row) == ROW_KEYS
        assert row["identical"] is True, row
        assert 0 < row["kept"] <= row["n"]
        assert row["ours_ms"] > 0 and row["torchvision_ms"] > 0 and row["speedup"] > 0
    assert result["rows"][1]["kept"] < 400  # 400 boxes of side >= 10 in the image overlap
    json.dumps(result)  # the CLI can write it as JSON


def test_nms_benchmark_is_registered_and_reproducible():
    assert "nms" in list_benchmarks()
    first = run_benchmark("nms", sizes=[100], repeats=1, device="cpu")
    again = run_benchmark("nms", sizes=[100], repeats=1, device="cpu")
    assert first["rows"][0]["kept"] == again["rows"][0]["kept"]
