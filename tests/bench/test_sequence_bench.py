"""The sequence benchmarks run end to end on tiny settings and fill their tables."""

from __future__ import annotations

import math

from dlcamp.bench import run_benchmark

TINY_REBER = ["data.n_train=32", "data.n_val=8", "data.n_test=16", "trainer.max_epochs=1", "model.hidden=8"]


def test_reber_table_has_one_row_per_distance_and_a_column_per_cell(tmp_path):
    result = run_benchmark(
        "reber", cells=["rnn", "gru"], distances=[[5, 6], [8, 9]], overrides=TINY_REBER, out=str(tmp_path)
    )
    assert [r["inner string length (distance)"] for r in result["rows"]] == ["5-6", "8-9"]
    for row in result["rows"]:
        assert 0 <= row["rnn test acc"] <= 1 and 0 <= row["gru test acc"] <= 1
        rnn_params, gru_params = map(int, row["params (rnn/lstm/gru)"].split("/"))
        assert gru_params > rnn_params  # three gates' worth of weights against one
    assert (tmp_path / "gru-8-9" / "summary.json").exists()


def test_charlm_rows_report_bits_per_character_and_expect_verdicts(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(4):
        (corpus / f"m{i}.txt").write_text("the cat sat on the mat. " * 80)
    result = run_benchmark(
        "charlm",
        recipes=["ngram-stdlib"],
        out=str(tmp_path / "runs"),
        overrides=[f"data.path={corpus}", "data.seq_len=32", "task.sample_length=10"],
    )
    (row,) = result["rows"]
    assert row["recipe"] == "ngram-stdlib" and row["params"] == 0
    assert 0 < row["test bpc"] < 1.0 and math.isfinite(row["val bpc"])  # a repeated sentence is predictable
    assert result["notes"][0].startswith("ngram-stdlib: expect test/bpc <=") and result["notes"][0].endswith("PASS")
