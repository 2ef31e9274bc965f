"""The sequence tasks end to end, as a user runs them: train, eval, predict; and their errors."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest


def _corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    for i in range(6):
        (root / f"mod{i}.py").write_text("".join(f"def f{i}_{j}(x):\n    return x + {j}\n" for j in range(60)))
    return root


SEQ2SEQ_TINY = [
    "--set",
    "data.n_train=256",
    "--set",
    "data.n_val=32",
    "--set",
    "data.n_test=32",
    "--set",
    "trainer.max_epochs=1",
]


def test_seq2seq_run_reports_exact_match_by_greedy_and_beam_and_predicts_files(cli, tmp_path, usage_error):
    run = tmp_path / "dates"
    proc = cli(
        "train",
        "transformer-dates",
        "-o",
        str(run),
        *SEQ2SEQ_TINY,
        "--set",
        "model.d_model=16",
        "--set",
        "model.dim_feedforward=32",
        "--set",
        "task.beam_size=2",
    )
    assert proc.returncode == 0, proc.stderr
    m = json.loads((run / "summary.json").read_text())["metrics"]
    for key in ("loss", "token_acc", "exact_match", "exact_match_beam"):
        assert 0 <= m[f"test/{key}"] < math.inf, key
    assert (
        m["test/token_acc"] <= 1 and m["test/exact_match"] <= m["test/token_acc"] + 1e-9 or m["test/exact_match"] == 0
    )
    assert {"examples.png", "cross_attention.png", "self_attention.png"} <= {
        p.name for p in (run / "figures").glob("*.png")
    }
    assert "val/exact_match" in (run / "metrics.csv").read_text().splitlines()[0]

    proc = cli("eval", str(run))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["test/exact_match"] == pytest.approx(m["test/exact_match"])

    inputs = tmp_path / "dates.txt"
    inputs.write_text("21 November 2026\n\n1999/01/02\n")
    out = tmp_path / "out.csv"
    proc = cli("predict", str(run), str(inputs), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["file", "source", "output"]
    assert [r[1] for r in rows[1:]] == ["21 November 2026", "1999/01/02"]  # one row per non-empty line

    bad = tmp_path / "bad.txt"
    bad.write_text("21 November 2026 ☃\n")
    usage_error(cli("predict", str(run), str(bad), "-o", str(tmp_path / "bad.csv")), "vocabulary")
    assert not (tmp_path / "bad.csv").exists()


def test_gru_seq2seq_without_attention_has_no_attention_map(cli, tmp_path):
    run = tmp_path / "gru"
    proc = cli(
        "train", "gru-dates", "-o", str(run), *SEQ2SEQ_TINY, "--set", "model.hidden=16", "--set", "task.beam_size=1"
    )
    assert proc.returncode == 0, proc.stderr
    m = json.loads((run / "summary.json").read_text())["metrics"]
    assert "test/exact_match_beam" not in m  # beam_size 1: greedy only
    names = {p.name for p in (run / "figures").glob("*.png")}
    assert "examples.png" in names and not any("attention" in n for n in names)


def test_ngram_is_fitted_by_counting_and_predicts_continuations(cli, tmp_path):
    run = tmp_path / "ngram"
    proc = cli(
        "train",
        "ngram-stdlib",
        "-o",
        str(run),
        "--set",
        f"data.path={_corpus(tmp_path)}",
        "--set",
        "data.seq_len=32",
        "--set",
        "task.sample_length=40",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["params"] == 0  # counts are buffers, not parameters
    m = summary["metrics"]
    # The corpus is 60 near-identical lines per file: a 5-gram predicts most characters.
    assert m["test/bpc"] < 1.5
    assert m["test/bpc"] == pytest.approx(m["test/loss"] / math.log(2))
    assert (run / "figures" / "samples.png").exists()

    prompt = tmp_path / "prompt.txt"
    prompt.write_text("def f")
    out = tmp_path / "cont.csv"
    proc = cli("predict", str(run), str(prompt), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["file", "temperature", "continuation"] and len(rows[1][2]) == 40


@pytest.mark.parametrize("core", ["lstm", "transformer"])
def test_neural_char_lm_trains_and_beats_uniform(cli, tmp_path, core):
    run = tmp_path / core
    recipe = f"{core}-stdlib"
    proc = cli(
        "train",
        recipe,
        "-o",
        str(run),
        "--set",
        f"data.path={_corpus(tmp_path)}",
        "--set",
        "data.seq_len=32",
        "--set",
        "model.hidden=32",
        "--set",
        "trainer.max_steps=60",
        "--set",
        "task.sample_length=20",
        "--set",
        "data.batch_size=16",
    )
    assert proc.returncode == 0, proc.stderr
    m = json.loads((run / "summary.json").read_text())["metrics"]
    vocab = len(set((tmp_path / "corpus" / "mod0.py").read_text())) + 4
    assert m["test/bpc"] < math.log2(vocab) - 1  # clearly better than a uniform guess after 60 steps
    names = {p.name for p in (run / "figures").glob("*.png")}
    assert "samples.png" in names
    assert ("self_attention.png" in names) == (core == "transformer")


def test_reber_classification_reports_accuracy_by_length(cli, tmp_path):
    run = tmp_path / "reber"
    proc = cli(
        "train",
        "lstm-reber",
        "-o",
        str(run),
        "--set",
        "data.n_train=64",
        "--set",
        "data.n_val=16",
        "--set",
        "data.n_test=32",
        "--set",
        "data.min_length=5",
        "--set",
        "data.max_length=9",
        "--set",
        "trainer.max_epochs=1",
    )
    assert proc.returncode == 0, proc.stderr
    m = json.loads((run / "summary.json").read_text())["metrics"]
    assert 0 <= m["test/acc"] <= 1
    assert {"confusion_matrix.png", "accuracy_by_length.png"} <= {p.name for p in (run / "figures").glob("*.png")}
    lines = tmp_path / "strings.txt"
    lines.write_text("BTBTXSE\nBPBPVVE\n")
    out = tmp_path / "pred.csv"
    proc = cli("predict", str(run), str(lines), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert [r[1] for r in rows[1:]] == ["BTBTXSE", "BPBPVVE"] and all(r[2] in ("T", "P") for r in rows[1:])


def test_task_and_data_mismatch_is_a_usage_error(cli, tmp_path, usage_error):
    usage_error(
        cli("train", "lstm-stdlib", "-o", str(tmp_path / "a"), "--set", "data={name: digits}"),
        "char_lm",
        "vocab_size",
        "digits",
    )
    usage_error(cli("train", "transformer-dates", "-o", str(tmp_path / "b"), "--set", "task.beam_size=0"), "beam_size")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def _text_data(kind: str = "text"):
    """A data module fake that declares the text contracts (and nothing else)."""
    from dlcamp.data.contracts import Seq2SeqData, TextData
    from dlcamp.data.text import Vocab

    class Chars(TextData):
        vocab = Vocab("abc")
        num_classes = 2

    class Pairs(Seq2SeqData):
        vocab = Vocab("abc")
        max_target_len = 6

    return {"text": Chars, "pairs": Pairs}[kind]()


def test_builders_check_the_data_and_model_contracts_once_with_one_line():
    from dlcamp.errors import UsageError
    from dlcamp.models import get_model
    from dlcamp.tasks.sequence import language_model, seq2seq, sequence_classification

    class Digits:  # image data: no vocab
        num_classes = 10

    lm = get_model("char_lm", vocab_size=7, max_len=8, hidden=8, num_layers=1)
    with pytest.raises(UsageError, match="language_model needs text data .* not Digits"):
        language_model(model=lm, datamodule=Digits())
    with pytest.raises(UsageError, match="language_model needs a language model .* got MLP"):
        language_model(model=get_model("mlp", width=8), datamodule=_text_data())
    with pytest.raises(UsageError, match="seq2seq needs source/target data .* not Chars"):
        seq2seq(model=get_model("seq2seq_gru", vocab_size=7, hidden=8), datamodule=_text_data())
    with pytest.raises(UsageError, match="seq2seq needs an encoder-decoder model .* got RecurrentLM"):
        seq2seq(model=lm, datamodule=_text_data("pairs"))
    with pytest.raises(UsageError, match="sequence_classification needs text data"):
        sequence_classification(model=get_model("rnn_classifier", vocab_size=7, num_classes=10), datamodule=Digits())
    task = seq2seq(model=get_model("seq2seq_gru", vocab_size=7, hidden=8), datamodule=_text_data("pairs"), beam_size=2)
    assert task.max_new == 5 and task.beam_size == 2


def test_builders_forward_the_task_options_and_the_engine_sets_optim():
    import inspect

    from dlcamp.models import get_model
    from dlcamp.models.sequence.contracts import CountingModel
    from dlcamp.tasks.sequence import language_model, seq2seq

    assert list(inspect.signature(language_model).parameters) == [
        "model",
        "datamodule",
        "sample_temperatures",
        "sample_length",
        "prompt",
    ]
    assert list(inspect.signature(seq2seq).parameters) == [
        "model",
        "datamodule",
        "label_smoothing",
        "beam_size",
        "length_penalty",
    ]
    with pytest.raises(ValueError, match="task.sample_temperatures must be > 0"):
        language_model(model=get_model("ngram", vocab_size=7), datamodule=_text_data(), sample_temperatures=[0])
    task = language_model(model=get_model("ngram", vocab_size=7), datamodule=_text_data(), sample_length=5)
    assert task.count_based and isinstance(task.model, CountingModel) and task.sample_length == 5
    task.configure_engine(optim={"name": "adam", "lr": 1e-3})
    assert task.configure_optimizers() is None  # counting: no optimizer
