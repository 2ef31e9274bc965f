"""Text data: the vocabulary, the character corpus, the embedded Reber grammar, seq2seq tasks."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from dlcamp.data import get_dataset, list_datasets
from dlcamp.data.text import (
    DATE_FORMS,
    ReberData,
    Seq2SeqData,
    Vocab,
    addition,
    dates,
    is_embedded_reber,
    is_reber,
    reber,
    reber_string,
    render_date,
    reverse,
    text,
)
from dlcamp.errors import UsageError

SPLITS = ("train", "val", "test")


def tensors(dm, split: str) -> tuple[torch.Tensor, ...]:
    dm.setup()
    return dm.splits[split].base.tensors


# -- vocabulary -------------------------------------------------------------------------------


def test_vocab_puts_specials_first_then_sorted_characters():
    vocab = Vocab("hello")
    assert vocab.itos == ["<pad>", "<bos>", "<eos>", "<unk>", "e", "h", "l", "o"]
    assert len(vocab) == 8 and vocab.stoi["l"] == 6
    assert (Vocab.PAD, Vocab.BOS, Vocab.EOS, Vocab.UNK) == (0, 1, 2, 3)


def test_vocab_round_trips_and_maps_unknown_characters_to_unk():
    vocab = Vocab("abc ")
    assert vocab.decode(vocab.encode("a cab")) == "a cab"
    assert vocab.encode("axb") == [vocab.stoi["a"], Vocab.UNK, vocab.stoi["b"]]
    assert vocab.encode_tensor("axb é").tolist() == vocab.encode("axb é")


def test_vocab_decode_strips_at_eos_unless_told_not_to():
    vocab = Vocab("ab")
    ids = [Vocab.BOS, vocab.stoi["a"], vocab.stoi["b"], Vocab.EOS, vocab.stoi["a"], Vocab.PAD]
    assert vocab.decode(ids) == "ab"
    assert vocab.decode(torch.tensor(ids)) == "ab"
    assert vocab.decode(ids, strip=False) == "<bos>ab<eos>a<pad>"


# -- the character corpus -------------------------------------------------------------------


def write_corpus(root: Path, n_files: int = 40, chars_per_file: int = 400) -> dict[str, str]:
    """Files with distinct contents in nested folders; relative path -> content."""
    rng = random.Random(1)
    contents = {}
    for i in range(n_files):
        rel = f"pkg{i % 3}/module_{i:02d}.{['py', 'txt', 'md'][i % 3]}"
        body = f"# file {i:02d}\n" + "".join(rng.choices("abcdefgh ijkl\n", k=chars_per_file))
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(body)
        contents[rel] = body
    return contents


def test_corpus_splits_by_file_with_no_file_in_two_splits(tmp_path):
    contents = write_corpus(tmp_path)
    (tmp_path / "notes.rst").write_text("not a text suffix we read")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.py").write_text("hidden folders are skipped")
    dm = text(path=str(tmp_path), seq_len=16)
    assert dm.split_by == "file"
    files = [set(dm.split_files[name]) for name in SPLITS]
    assert all(files) and not (files[0] & files[1]) and not (files[0] & files[2]) and not (files[1] & files[2])
    assert files[0] | files[1] | files[2] == set(contents)
    assert len(files[0]) > len(files[1]) + len(files[2])  # ~90/5/5
    dm.setup()
    for name in SPLITS:  # a split's text is its own files joined by "\n", nothing else
        joined = "\n".join(contents[rel] for rel in dm.split_files[name])
        assert dm.split_chars[name] == len(joined)
        assert dm.vocab.decode(dm.splits[name].base.ids) == "".join(
            c if c in dm.vocab.stoi else "<unk>" for c in joined
        )


def test_corpus_split_is_deterministic_and_ignores_the_run_seed(tmp_path):
    write_corpus(tmp_path)
    first, second = text(path=str(tmp_path), seq_len=16, seed=0), text(path=str(tmp_path), seq_len=16, seed=7)
    assert first.split_files == second.split_files
    first.setup(), second.setup()
    assert torch.equal(first.splits["val"].base.ids, second.splits["val"].base.ids)


def test_corpus_windows_are_targets_shifted_by_one(tmp_path):
    write_corpus(tmp_path)
    dm = text(path=str(tmp_path), seq_len=16)
    dm.setup()
    train = dm.splits["train"]
    ids = train.base.ids
    assert len(train) == (len(ids) - 1) // 16
    x0, y0 = train[0]
    x1, _ = train[1]
    assert x0.dtype == torch.long and x0.shape == y0.shape == (16,)
    assert torch.equal(y0[:-1], x0[1:]) and y0[-1] == x1[0]  # next character; windows do not overlap
    assert torch.equal(x1, ids[16:32])
    batch_x, batch_y = next(iter(dm.train_dataloader()))
    assert batch_x.shape == batch_y.shape and batch_x.shape[1] == 16 and batch_x.dtype == torch.long
    assert dm.input_shape == (16,) and dm.num_classes == len(dm.vocab) and dm.class_names == dm.vocab.itos
    assert dm.model_facts() == {"vocab_size": len(dm.vocab), "max_len": 16}


def test_vocab_comes_from_the_training_split_only(tmp_path):
    write_corpus(tmp_path)
    dm = text(path=str(tmp_path), seq_len=16)
    held_out = tmp_path / dm.split_files["test"][0]
    held_out.write_text(held_out.read_text()[:-3] + "ZZZ")  # a character only the test split has; same size
    before, dm = dm.split_files, text(path=str(tmp_path), seq_len=16)
    assert dm.split_files == before
    assert "Z" not in dm.vocab.stoi
    dm.setup()
    assert (dm.splits["test"].base.ids == Vocab.UNK).sum() == 3


def test_a_single_file_is_split_by_position(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("".join(random.Random(0).choices("abc \n", k=10_000)))
    dm = text(path=str(path), seq_len=32)
    assert dm.split_by == "position"
    assert dm.split_chars == {"train": 9000, "val": 500, "test": 500}
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("ab?")
    assert dm.load_input(prompt).tolist() == [dm.vocab.stoi["a"], dm.vocab.stoi["b"], Vocab.UNK]


def test_max_chars_caps_the_text_read_in_sorted_order(tmp_path):
    contents = write_corpus(tmp_path, n_files=10, chars_per_file=1000)
    dm = text(path=str(tmp_path), seq_len=8, max_chars=2500)
    used = {rel for name in SPLITS for rel in dm.split_files[name]}
    assert used == set(sorted(contents)[:3])
    separators = 2 if dm.split_by == "position" else sum(max(len(dm.split_files[n]) - 1, 0) for n in SPLITS)
    assert sum(dm.split_chars.values()) == 2500 + separators


@pytest.mark.parametrize("case", ["missing", "empty_folder", "no_text_files", "too_short"])
def test_bad_corpus_paths_are_usage_errors_naming_the_path(tmp_path, case):
    target = tmp_path / "corpus"
    if case != "missing":
        target.mkdir()
    if case == "no_text_files":
        (target / "image.png").write_bytes(b"\x89PNG")
    if case == "too_short":
        (target / "a.txt").write_text("tiny")
    with pytest.raises(UsageError, match=re.escape(str(target))):
        text(path=str(target), seq_len=16)


def test_stdlib_is_the_default_corpus():
    dm = text(max_chars=60_000, seq_len=64)
    assert "standard library" in dm.source
    assert 60_000 <= sum(dm.split_chars.values()) < 61_000
    files = [rel for name in SPLITS for rel in dm.split_files[name]]
    assert files and all(rel.endswith(".py") for rel in files)
    assert not any({"test", "tests", "idlelib", "site-packages"} & set(rel.split("/")[:-1]) for rel in files)
    dm.setup()
    assert all(len(dm.splits[name]) > 0 for name in SPLITS)
    assert "d" in dm.vocab.stoi and "(" in dm.vocab.stoi


def test_text_datasets_are_registered():
    names = list_datasets()
    assert {"text", "reber", "dates", "reverse", "addition"} <= set(names)
    assert isinstance(get_dataset("reber", n_train=4, n_val=2, n_test=2), ReberData)


# -- the embedded Reber grammar -------------------------------------------------------------


def test_reber_acceptor_knows_the_grammar():
    assert is_reber("BTXSE") and is_reber("BPVVE") and is_reber("BTSSXXTVPSE") and is_reber("BPTTVPXVVE")
    for bad in ("", "TXSE", "BTXS", "BTXSEE", "BTVSE", "BPVPE", "BTXSEX"):
        assert not is_reber(bad), bad
    assert is_embedded_reber("BTBTXSETE") and is_embedded_reber("BPBPVVEPE")
    assert not is_embedded_reber("BTBTXSEPE") and not is_embedded_reber("BTBTXSTE")


def test_reber_acceptor_accepts_exactly_the_short_strings_of_the_grammar():
    # Worked out by hand from the grammar's diagram (Hochreiter & Schmidhuber 1997, section 5.1).
    expected = {"BTXSE", "BPVVE", "BTSXSE", "BPTVVE", "BPVPSE"}
    short = {"B" + "".join(middle) + "E" for k in range(1, 5) for middle in itertools.product("TPSXV", repeat=k)}
    assert {s for s in short if is_reber(s)} == expected


def test_reber_strings_have_exactly_the_asked_length():
    rng = random.Random(0)
    for length in (5, 6, 7, 13, 50, 200):
        strings = {reber_string(length, rng) for _ in range(20)}
        assert all(len(s) == length and is_reber(s) for s in strings)
    assert len({reber_string(30, rng) for _ in range(50)}) > 40  # random walks, not one fixed string


def test_reber_items_are_valid_embedded_strings_cut_before_the_answer():
    dm = reber(min_length=6, max_length=30, n_train=400, n_val=50, n_test=50)
    for name in SPLITS:
        x, y = tensors(dm, name)
        assert x.shape == (len(dm.strings[name]), 32) and y.shape == (len(dm.strings[name]),)
        for s, row, label in zip(dm.strings[name], x, y.tolist()):
            assert is_embedded_reber(s)
            assert 6 <= len(s) - 4 <= 30  # the inner string
            assert dm.vocab.decode(row) == s[:-2]  # B, the 2nd symbol, the inner string
            assert (row[len(s) - 2 :] == Vocab.PAD).all()
            assert label == "TP".index(s[1]) and dm.class_names[label] == s[-2]
    lengths = Counter(len(s) - 4 for s in dm.strings["train"])
    assert min(lengths) == 6 and max(lengths) == 30 and len(lengths) == 25  # spread over the range
    assert dm.model_facts() == {"vocab_size": len(dm.vocab), "max_len": 32} and dm.input_shape == (32,)


def test_reber_classes_are_balanced():
    dm = reber(n_train=300, n_val=51, n_test=50)
    for name, n in (("train", 300), ("val", 51), ("test", 50)):
        assert abs(int(tensors(dm, name)[1].sum()) - n / 2) <= 0.5


def test_reber_handles_long_distances():
    dm = reber(min_length=150, max_length=200, n_train=100, n_val=10, n_test=10)
    assert all(is_embedded_reber(s) and len(s) >= 154 for s in dm.strings["train"])


def test_reber_data_depends_on_data_seed_not_on_run_seed():
    a, b = reber(n_train=50, n_val=5, n_test=5, seed=0), reber(n_train=50, n_val=5, n_test=5, seed=3)
    c = reber(n_train=50, n_val=5, n_test=5, data_seed=1)
    assert a.strings == b.strings and a.strings != c.strings
    assert torch.equal(tensors(a, "train")[0], tensors(b, "train")[0])


@pytest.mark.parametrize("kwargs", [{"min_length": 4}, {"min_length": 10, "max_length": 9}, {"n_train": 0}])
def test_reber_rejects_bad_lengths(kwargs):
    with pytest.raises(UsageError):
        reber(**kwargs)


# -- seq2seq tasks ------------------------------------------------------------------------------

# The test's own reading of each form, with the standard library's strptime.
STRPTIME = {
    "day_month_year": "%d %B %Y",
    "month_day_year": "%B %d, %Y",
    "mon_day_year": "%b %d %Y",
    "day_mon_year_lower": "%d %b %Y",
    "day_mon_year_upper": "%d %b %Y",
    "weekday_day_month_year": "%A, %d %B %Y",
    "wkd_day_mon_year": "%a %d %b %Y",
    "ordinal_of_month_year": "%d of %B %Y",
    "month_ordinal_year": "%B %d, %Y",
    "day_mon_year_dashed": "%d-%b-%Y",
    "dd.mm.yyyy": "%d.%m.%Y",
    "yyyy/mm/dd": "%Y/%m/%d",
    "mm/dd/yyyy": "%m/%d/%Y",
    "yyyymmdd": "%Y%m%d",
}


def check_seq2seq_tensors(dm: Seq2SeqData) -> None:
    """src/tgt tensors hold exactly the examples: src padded, tgt = BOS + target + EOS padded."""
    for name in SPLITS:
        src, tgt = tensors(dm, name)
        assert src.shape == (len(dm.examples[name]), dm.input_shape[0])
        assert tgt.shape == (len(dm.examples[name]), dm.max_target_len)
        for (source, target), s_row, t_row in zip(dm.examples[name][:50], src, tgt):
            assert dm.vocab.decode(s_row, strip=False).replace("<pad>", "") == source
            assert t_row[0] == Vocab.BOS and t_row[len(target) + 1] == Vocab.EOS
            assert (t_row[len(target) + 2 :] == Vocab.PAD).all() and dm.vocab.decode(t_row) == target


def sources(dm: Seq2SeqData, name: str) -> list[str]:
    return [source for source, _ in dm.examples[name]]


def test_dates_cover_at_least_ten_forms():
    assert len(DATE_FORMS) >= 10 and set(DATE_FORMS) == set(STRPTIME)


def test_date_forms_write_the_example_date_as_documented():
    written = {form: render_date(dt.date(2026, 11, 21), form) for form in DATE_FORMS}
    assert written == {
        "day_month_year": "21 November 2026",
        "month_day_year": "November 21, 2026",
        "mon_day_year": "Nov 21 2026",
        "day_mon_year_lower": "21 nov 2026",
        "day_mon_year_upper": "21 NOV 2026",
        "weekday_day_month_year": "Saturday, 21 November 2026",
        "wkd_day_mon_year": "Sat 21 Nov 2026",
        "ordinal_of_month_year": "21st of November 2026",
        "month_ordinal_year": "November 21st, 2026",
        "day_mon_year_dashed": "21-Nov-2026",
        "dd.mm.yyyy": "21.11.2026",
        "yyyy/mm/dd": "2026/11/21",
        "mm/dd/yyyy": "11/21/2026",
        "yyyymmdd": "20261121",
    }
    ordinals = [render_date(dt.date(2023, 1, day), "month_ordinal_year") for day in (1, 2, 3, 4, 11, 12, 13, 22, 23)]
    assert [o.split()[1] for o in ordinals] == [
        "1st,",
        "2nd,",
        "3rd,",
        "4th,",
        "11th,",
        "12th,",
        "13th,",
        "22nd,",
        "23rd,",
    ]


@pytest.mark.parametrize("form", DATE_FORMS)
def test_every_date_form_parses_back_to_its_iso_target(form):
    dm = dates(forms=[form], n_train=200, n_val=20, n_test=20)
    for name in SPLITS:
        for source, target in dm.examples[name]:
            plain = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", source)
            parsed = dt.datetime.strptime(plain, STRPTIME[form]).date()
            assert parsed == dt.date.fromisoformat(target), (source, target)
            assert 1950 <= parsed.year <= 2049
            if "%A" in STRPTIME[form] or "%a" in STRPTIME[form]:  # strptime does not check the weekday
                assert source.startswith(parsed.strftime("%A" if "%A" in STRPTIME[form] else "%a"))


def test_dates_of_one_split_are_in_no_other():
    dm = dates(n_train=3000, n_val=300, n_test=300)
    days = {name: {target for _, target in dm.examples[name]} for name in SPLITS}
    assert not (days["train"] & days["val"]) and not (days["train"] & days["test"]) and not (days["val"] & days["test"])
    assert len(set(sources(dm, "train"))) == 3000
    check_seq2seq_tensors(dm)
    assert dm.model_facts() == {"vocab_size": len(dm.vocab), "max_len": max(dm.input_shape[0], 12)}


def test_dates_use_many_forms_and_weekdays_are_right():
    dm = dates(n_train=2000, n_val=10, n_test=10)
    weekday_sources = [
        (s, t)
        for s, t in dm.examples["train"]
        if s.split(",")[0] in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
    ]
    assert len(weekday_sources) > 50
    for source, target in weekday_sources:
        assert source.startswith(dt.date.fromisoformat(target).strftime("%A"))
    assert len({re.sub(r"\d", "9", s) for s in sources(dm, "train")}) > 20  # many written shapes


def test_reverse_targets_are_reversed_sources_and_splits_are_disjoint():
    dm = reverse(min_len=2, max_len=6, n_train=500, n_val=50, n_test=50)
    for name in SPLITS:
        assert all(target == source[::-1] and 2 <= len(source) <= 6 for source, target in dm.examples[name])
    train, val, test = (set(sources(dm, name)) for name in SPLITS)
    assert len(train) == 500 and not (train & val) and not (train & test) and not (val & test)
    check_seq2seq_tensors(dm)
    assert dm.input_shape == (6,) and dm.max_target_len == 8


def test_addition_targets_are_the_sums_and_splits_are_disjoint():
    dm = addition(max_digits=3, n_train=1000, n_val=100, n_test=100)
    for name in SPLITS:
        for source, target in dm.examples[name]:
            a, b = source.split("+")
            assert 1 <= len(a) <= 3 and 1 <= len(b) <= 3 and int(target) == int(a) + int(b)
    train, val, test = (set(sources(dm, name)) for name in SPLITS)
    assert not (train & val) and not (train & test) and not (val & test)
    assert {len(s.split("+")[0]) for s in train} == {1, 2, 3}
    check_seq2seq_tensors(dm)
    assert dm.input_shape == (7,) and dm.max_target_len == 6


@pytest.mark.parametrize("build", [dates, reverse, addition])
def test_seq2seq_data_depend_on_data_seed_not_on_run_seed(build):
    sizes = {"n_train": 100, "n_val": 10, "n_test": 10}
    a, b, c = build(**sizes, seed=0), build(**sizes, seed=5), build(**sizes, data_seed=1)
    assert a.examples == b.examples and a.examples != c.examples
    assert torch.equal(tensors(a, "train")[0], tensors(b, "train")[0])


def test_encode_source_pads_and_rejects_what_does_not_fit(tmp_path):
    dm = addition(max_digits=2, n_train=50, n_val=5, n_test=5)
    assert dm.encode_source("12+3").tolist() == dm.vocab.encode("12+3") + [Vocab.PAD]
    with pytest.raises(UsageError, match="at most 5"):
        dm.encode_source("123+45")
    with pytest.raises(UsageError, match="outside the vocabulary"):
        dm.encode_source("1-2")
    lines = tmp_path / "sums.txt"
    lines.write_text("1+2\n\n  10+20 \n")
    batch = dm.load_input(lines)
    assert batch.shape == (2, 5) and dm.vocab.decode(batch[1]) == "10+20"
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(UsageError):
        dm.load_input(tmp_path / "empty.txt")


def test_impossible_seq2seq_requests_are_usage_errors():
    with pytest.raises(UsageError, match="distinct"):
        reverse(min_len=1, max_len=1, n_train=30, n_val=1, n_test=1)  # only 26 one-letter strings
    with pytest.raises(UsageError, match="forms"):
        dates(forms=["julian"])
    with pytest.raises(UsageError):
        dates(n_train=50, n_val=5, n_test=5, forms=[])


# -- the package: one room per concept, the text contracts ------------------------------------


def test_encode_padded_right_pads_and_wraps_targets_in_bos_eos():
    from dlcamp.data.text.vocab import encode_padded

    vocab = Vocab("ab")
    a, b = vocab.stoi["a"], vocab.stoi["b"]
    assert encode_padded(vocab, ["ab", "b"], 4).tolist() == [[a, b, 0, 0], [b, 0, 0, 0]]
    assert encode_padded(vocab, ["ab", "b"], 5, bos_eos=True).tolist() == [[1, a, b, 2, 0], [1, b, 2, 0, 0]]
    with pytest.raises(ValueError, match="does not fit"):
        encode_padded(vocab, ["abab"], 5, bos_eos=True)


def test_check_sizes_names_the_size_that_is_not_positive():
    from dlcamp.data.text.base import check_sizes

    assert check_sizes(n_train=3, n_val=1, n_test=2) == {"train": 3, "val": 1, "test": 2}
    with pytest.raises(UsageError, match="data.n_val must be a positive integer"):
        check_sizes(n_train=3, n_val=0, n_test=2)


def test_text_data_modules_follow_the_text_contracts():
    from dlcamp.data import contracts
    from dlcamp.data.text.corpus import TextCorpusData
    from dlcamp.data.text.reber import ReberData as ReberRoom
    from dlcamp.data.text.seq2seq import Seq2SeqData as Seq2SeqRoom

    assert ReberRoom is ReberData and Seq2SeqRoom is Seq2SeqData  # the package re-exports its rooms
    assert issubclass(TextCorpusData, contracts.TextData) and issubclass(ReberData, contracts.TextData)
    assert issubclass(Seq2SeqData, contracts.Seq2SeqData)
    dm = reverse(n_train=8, n_val=4, n_test=4)
    assert isinstance(dm, contracts.Seq2SeqData) and dm.max_target_len == 12 + 2  # BOS + 12 letters + EOS
    assert dm.model_facts() == {"vocab_size": 4 + 26, "max_len": 14}
