"""Sequence models: the n-gram baseline, character LMs, encoder-decoders, recurrent classifiers.

The curriculum's claims checked here: Witten–Bell probabilities are what the formula gives
by hand; every language model and decoder is causal (before and after training), and the
check does catch a model that is not; recurrent generation carrying its state equals
re-running the model; encoder-decoders ignore source padding and can learn to reverse.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlcamp.models import get_model
from dlcamp.models.sequence import ngram as ngram_module
from dlcamp.models.sequence.contracts import CountingModel, TokenAttentionMapper
from dlcamp.models.sequence.language import LanguageModel
from dlcamp.models.sequence.seq2seq import Seq2Seq
from dlcamp.nn import TransformerDecoderLayer, TransformerEncoderLayer

PAD, BOS, EOS = 0, 1, 2
V = 12  # PAD, BOS, EOS, UNK and 8 characters
CORES = ["rnn", "lstm", "gru", "transformer"]
SEQ2SEQ = {
    "gru_additive": ("seq2seq_gru", {"attention": "additive"}),
    "gru_dot": ("seq2seq_gru", {"attention": "dot"}),
    "gru_none": ("seq2seq_gru", {"attention": "none"}),
    "transformer_sinusoidal": ("seq2seq_transformer", {"positional": "sinusoidal"}),
    "transformer_learned": ("seq2seq_transformer", {"positional": "learned", "norm_first": False}),
}


def _chars(*shape: int, seed: int = 0) -> torch.Tensor:
    """Random character ids (never PAD/BOS/EOS/UNK)."""
    return torch.randint(4, V, shape, generator=torch.Generator().manual_seed(seed))


def _char_lm(core: str, **overrides) -> LanguageModel:
    torch.manual_seed(0)
    kwargs = dict(vocab_size=V, max_len=16, core=core, embed_dim=8, hidden=16, num_layers=2, nhead=2, dropout=0.1)
    return get_model("char_lm", **{**kwargs, **overrides})


def _seq2seq(key: str, **overrides):
    torch.manual_seed(0)
    name, kwargs = SEQ2SEQ[key]
    if name == "seq2seq_gru":
        kwargs = dict(vocab_size=V, embed_dim=8, hidden=16, dropout=0.1, **kwargs)
    else:
        kwargs = dict(
            vocab_size=V,
            max_len=16,
            d_model=16,
            nhead=2,
            num_encoder_layers=2,
            num_decoder_layers=2,
            dim_feedforward=32,
            dropout=0.1,
            **kwargs,
        )
    return get_model(name, **{**kwargs, **overrides})


def _padded_sources(seed: int = 0) -> torch.Tensor:
    """(4, 6) sources of lengths 6, 4, 2, 5, right-padded with PAD."""
    src = _chars(4, 6, seed=seed)
    for row, length in enumerate([6, 4, 2, 5]):
        src[row, length:] = PAD
    return src


def _train_steps(loss_fn, model: torch.nn.Module, steps: int = 5) -> None:
    """A few Adam steps: enough to move every weight off its initialisation."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
    model.eval()


def _assert_causal(outputs_of, tokens: torch.Tensor) -> None:
    """outputs_of(tokens)[:, :t+1] must not move when tokens[:, t+1:] change, for every t."""
    reference = outputs_of(tokens)
    for t in range(tokens.size(1) - 1):
        changed = tokens.clone()
        changed[:, t + 1 :] = 4 + (tokens[:, t + 1 :] - 4 + 1 + t) % (V - 4)  # a different character everywhere
        torch.testing.assert_close(outputs_of(changed)[:, : t + 1], reference[:, : t + 1], atol=1e-6, rtol=0)


def _future_leaks(outputs_of, tokens: torch.Tensor) -> bool:
    changed = tokens.clone()
    changed[:, -1] = 4 + (tokens[:, -1] - 4 + 1) % (V - 4)
    return not torch.allclose(outputs_of(changed)[:, :-1], outputs_of(tokens)[:, :-1], atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------------
# n-gram
# ----------------------------------------------------------------------------------


def _markov_text(n: int, seed: int) -> torch.Tensor:
    """A first-order source over the 8 characters: each one prefers a fixed successor."""
    g = torch.Generator().manual_seed(seed)
    text = torch.empty(n, dtype=torch.long)
    text[0] = 4
    for i in range(1, n):
        follow = (text[i - 1] - 4 + 3) % 8 + 4
        text[i] = follow if torch.rand((), generator=g) < 0.7 else torch.randint(4, V, (), generator=g)
    return text


def _windows(text: torch.Tensor, T: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Language-model batches from running text: x (B, T) and y = x shifted by one."""
    B = (text.numel() - 1) // T
    return text[: B * T].view(B, T), text[1 : B * T + 1].view(B, T)


def _nll(model, x: torch.Tensor, y: torch.Tensor) -> float:
    return F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()


def test_ngram_probabilities_sum_to_one_and_are_log_probabilities():
    model = get_model("ngram", vocab_size=V, order=4)
    model.observe(*_windows(_markov_text(500, seed=0)))
    x = _chars(3, 20, seed=1)
    logp = model(x)  # (B, T, V)
    assert logp.shape == (3, 20, V) and (logp.exp() > 0).all()
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(3, 20), atol=1e-5, rtol=0)
    torch.testing.assert_close(logp.log_softmax(-1), logp, atol=1e-5, rtol=0)
    assert isinstance(model, CountingModel) and not list(model.parameters())


def test_ngram_witten_bell_matches_the_hand_computation():
    # Text "a b a c a" with a=1, b=2, c=3 (vocabulary of 4): x = a b a c, y = b a c a.
    model = get_model("ngram", vocab_size=4, order=2)
    model.observe(torch.tensor([[1, 2, 1, 3]]), torch.tensor([[2, 1, 3, 1]]))
    # Unigram over targets: c(a)=2, c(b)=1, c(c)=1, c=4, N1+=3, interpolated with 1/4.
    unigram = torch.tensor([0.75, 2.75, 1.75, 1.75]) / 7
    # Context a: followed by b and c, c(a .)=2, N1+(a .)=2: p(w|a) = (c(a, w) + 2 p(w)) / 4.
    after_a = (torch.tensor([0.0, 0.0, 1.0, 1.0]) + 2 * unigram) / 4
    # Context c: followed by a once: p(w|c) = (c(c, w) + 1 p(w)) / 2.
    after_c = (torch.tensor([0.0, 1.0, 0.0, 0.0]) + unigram) / 2
    probs = model(torch.tensor([[1], [3], [0]])).exp()[:, 0]  # position 0: one token of context
    torch.testing.assert_close(probs[0], after_a)
    assert probs[0, 2].item() == pytest.approx(0.375)
    torch.testing.assert_close(probs[1], after_c)
    torch.testing.assert_close(probs[2], unigram)  # context PAD never seen: back off to the unigram


def test_ngram_window_start_backs_off_to_the_orders_available():
    # Order 3, but the first position of a window only has one token of context.
    model = get_model("ngram", vocab_size=V, order=3)
    bigram = get_model("ngram", vocab_size=V, order=2)
    x, y = _windows(_markov_text(400, seed=2), T=8)
    model.observe(x, y)
    bigram.observe(x, y)
    probe = _chars(5, 4, seed=3)
    torch.testing.assert_close(model(probe)[:, 0], bigram(probe)[:, 0])
    assert not torch.allclose(model(probe)[:, 1:], bigram(probe)[:, 1:])


def test_ngram_order_one_is_the_smoothed_unigram():
    model = get_model("ngram", vocab_size=V, order=1)
    x, y = _windows(_markov_text(300, seed=4))
    model.observe(x, y)
    counts = torch.bincount(y.flatten(), minlength=V).double()
    types = (counts > 0).sum()
    expected = ((counts + types / V) / (counts.sum() + types)).float()
    probs = model(_chars(2, 7, seed=5)).exp()  # (2, 7, V): the same at every position
    torch.testing.assert_close(probs, expected.expand(2, 7, V))


def test_ngram_more_data_lowers_nll():
    held_out = _windows(_markov_text(400, seed=10))
    training = _markov_text(8000, seed=11)
    small, large = (get_model("ngram", vocab_size=V, order=3) for _ in range(2))
    assert _nll(small, *held_out) == pytest.approx(math.log(V), abs=1e-5)  # no counts: uniform
    small.observe(*_windows(training[:300]))
    large.observe(*_windows(training))
    assert _nll(large, *held_out) < _nll(small, *held_out) < math.log(V)
    seen = _windows(training[:300])
    assert _nll(small, *seen) < _nll(small, *held_out)  # the text it counted is the easiest


def test_ngram_counting_in_batches_equals_counting_at_once(monkeypatch):
    monkeypatch.setattr(ngram_module, "_PENDING_LIMIT", 50)  # force merges between batches
    x, y = _windows(_markov_text(1000, seed=6))
    at_once, in_batches = (get_model("ngram", vocab_size=V, order=4) for _ in range(2))
    at_once.observe(x, y)
    for xb, yb in zip(x.split(7), y.split(7)):
        in_batches.observe(xb, yb)
    for key, value in at_once.state_dict().items():
        assert torch.equal(in_batches.state_dict()[key], value), key


def test_ngram_state_dict_loads_into_a_fresh_model():
    fitted = get_model("ngram", vocab_size=V, order=4)
    fitted.observe(*_windows(_markov_text(600, seed=7)))  # still pending: state_dict merges it
    fresh = get_model("ngram", vocab_size=V, order=4)
    fresh.load_state_dict(fitted.state_dict())
    probe = _chars(2, 12, seed=8)
    torch.testing.assert_close(fresh(probe), fitted(probe), atol=0, rtol=0)
    more = _windows(_markov_text(200, seed=9))  # and the loaded model goes on counting
    fitted.observe(*more)
    fresh.observe(*more)
    torch.testing.assert_close(fresh(probe), fitted(probe), atol=0, rtol=0)


def test_ngram_rejects_orders_whose_keys_overflow():
    get_model("ngram", vocab_size=256, order=8)
    with pytest.raises(ValueError, match="int64"):
        get_model("ngram", vocab_size=256, order=9)


# ----------------------------------------------------------------------------------
# Causality
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("core", CORES)
def test_char_lm_causal_mask_hides_the_future(core):
    model = _char_lm(core).eval()
    x = _chars(3, 10, seed=1)
    assert model(x).shape == (3, 10, V)
    _assert_causal(model, x)  # untrained
    data = _chars(8, 10, seed=2)
    _train_steps(lambda: F.cross_entropy(model(data[:, :-1]).flatten(0, 1), data[:, 1:].flatten()), model)
    _assert_causal(model, x)  # trained


@pytest.mark.parametrize("key", ["gru_additive", "gru_none", "transformer_sinusoidal", "transformer_learned"])
def test_seq2seq_decoder_is_causal(key):
    model = _seq2seq(key).eval()
    src = _padded_sources()
    tgt_in = torch.cat([torch.full((4, 1), BOS), _chars(4, 6, seed=3)], dim=1)
    _assert_causal(lambda tgt: model.decode(model.encode(src), tgt), tgt_in)
    tgt_out = _chars(4, 7, seed=4)
    _train_steps(lambda: F.cross_entropy(model(src, tgt_in).flatten(0, 1), tgt_out.flatten()), model)
    _assert_causal(lambda tgt: model.decode(model.encode(src), tgt), tgt_in)


def test_causality_check_catches_a_model_that_sees_the_future():
    model = _char_lm("transformer").eval()
    x = _chars(3, 10, seed=1)
    assert not _future_leaks(model, x)
    model.causal = False  # test-only switch: the same layers without the mask
    assert _future_leaks(model, x)
    with pytest.raises(AssertionError):
        _assert_causal(model, x)
    # The seq2seq encoder is bidirectional by design: the check sees it too.
    seq2seq = _seq2seq("transformer_sinusoidal").eval()
    assert _future_leaks(lambda src: seq2seq.encode(src)[0], _chars(2, 6, seed=4))
    gru = _seq2seq("gru_additive").eval()
    assert _future_leaks(lambda src: gru.encode(src)[1], _chars(2, 6, seed=4))


# ----------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------


def _generators(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("core", CORES + ["ngram"])
def test_generate_shapes_and_seeded_determinism(core):
    if core == "ngram":
        model = get_model("ngram", vocab_size=V, order=3)
        model.observe(*_windows(_markov_text(300, seed=0)))
    else:
        model = _char_lm(core).eval()
    prompt = _chars(2, 3, seed=5)
    out = model.generate(prompt, 20, temperature=0.8, generator=_generators(0), top_k=5)  # past max_len=16
    assert out.shape == (2, 23) and out.dtype == torch.long
    assert torch.equal(out[:, :3], prompt) and ((out >= 0) & (out < V)).all()
    assert torch.equal(out, model.generate(prompt, 20, temperature=0.8, generator=_generators(0), top_k=5))
    assert torch.equal(model.generate(prompt, 0), prompt)


@pytest.mark.parametrize("core", ["rnn", "lstm", "gru"])
def test_recurrent_generate_carrying_state_equals_rerunning_forward(core):
    model = _char_lm(core).eval()
    prompt = _chars(3, 4, seed=6)
    carried = model.generate(prompt, 12, top_k=1)
    rerun = LanguageModel.generate(model, prompt, 12, top_k=1)  # forward on the whole prefix each step
    assert torch.equal(carried, rerun)
    # Sampling too: the same seeded draws give the same tokens.
    carried = model.generate(prompt, 12, temperature=1.5, generator=_generators(1))
    assert torch.equal(carried, LanguageModel.generate(model, prompt, 12, temperature=1.5, generator=_generators(1)))


# ----------------------------------------------------------------------------------
# Encoder-decoders
# ----------------------------------------------------------------------------------


def _keeping_attention(model):
    """The Transformer keeps its attention weights only when asked (it costs the fused kernel)."""
    for m in model.modules():
        if isinstance(m, (TransformerEncoderLayer, TransformerDecoderLayer)):
            m.keep_attention = True
    return model


def _attention_switches(model) -> list[bool]:
    return [
        m.keep_attention for m in model.modules() if isinstance(m, (TransformerEncoderLayer, TransformerDecoderLayer))
    ]


@pytest.mark.parametrize("key", list(SEQ2SEQ))
def test_seq2seq_ignores_source_padding(key):
    model = _keeping_attention(_seq2seq(key).eval())
    src = _padded_sources()
    tgt_in = torch.cat([torch.full((4, 1), BOS), _chars(4, 4, seed=7)], dim=1)
    logits = model(src, tgt_in)
    attention = model.cross_attention()
    more_padding = torch.cat([src, torch.full((4, 3), PAD)], dim=1)
    # float32: a softmax over more (masked) keys may round differently, by an ulp or so of logits ~ 3
    torch.testing.assert_close(model(more_padding, tgt_in), logits, atol=3e-6, rtol=0)
    if attention is not None:
        torch.testing.assert_close(model.cross_attention()[..., :6], attention, atol=1e-6, rtol=0)
        assert (model.cross_attention()[..., 6:] == 0).all()


@pytest.mark.parametrize("key", list(SEQ2SEQ))
def test_seq2seq_decode_of_encode_equals_forward(key):
    model = _seq2seq(key).eval()
    src = _padded_sources()
    tgt_in = torch.cat([torch.full((4, 1), BOS), _chars(4, 5, seed=8)], dim=1)
    memory = model.encode(src)
    assert isinstance(memory, tuple) and all(m.size(0) == 4 for m in memory)
    torch.testing.assert_close(model.decode(memory, tgt_in), model(src, tgt_in), atol=0, rtol=0)
    # What beam search does: select batch rows of every memory tensor.
    rows = torch.tensor([2, 2, 0])
    picked = tuple(m.index_select(0, rows) for m in memory)
    torch.testing.assert_close(model.decode(picked, tgt_in[rows]), model(src[rows], tgt_in[rows]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("key", list(SEQ2SEQ))
def test_cross_attention_rows_sum_to_one_and_skip_padding(key):
    model = _keeping_attention(_seq2seq(key).eval())
    src = _padded_sources()
    model(src, torch.cat([torch.full((4, 1), BOS), _chars(4, 5, seed=9)], dim=1))
    attention = model.cross_attention()
    if key == "gru_none":
        assert attention is None
        return
    assert attention.shape == (4, 6, 6)
    torch.testing.assert_close(attention.sum(-1), torch.ones(4, 6))
    assert (attention.masked_select((src == PAD).unsqueeze(1)) == 0).all()


@pytest.mark.parametrize("key", list(SEQ2SEQ))
def test_seq2seq_attention_maps_name_what_each_map_attends_over(key):
    model = _seq2seq(key).eval()
    assert isinstance(model, Seq2Seq)  # the contract of decoding and the seq2seq task
    src = _padded_sources()
    tgt_in = torch.cat([torch.full((4, 1), BOS), _chars(4, 4, seed=10)], dim=1)  # T = 5
    maps = model.attention_maps(src, tgt_in)
    expected = {"gru_none": set(), "gru_additive": {"cross"}, "gru_dot": {"cross"}}.get(key, {"self", "cross"})
    assert set(maps) == expected
    if "cross" in maps:
        assert maps["cross"].shape == (4, 5, 6)
        torch.testing.assert_close(maps["cross"], model.cross_attention())
        assert (maps["cross"].masked_select((src == PAD).unsqueeze(1)) == 0).all()
    if "self" in maps:
        assert maps["self"].shape == (4, 5, 5)
        torch.testing.assert_close(maps["self"].sum(-1), torch.ones(4, 5))
        assert (maps["self"].triu(1) == 0).all()  # the decoder reads its past only
    assert not any(_attention_switches(model))  # the fused kernel again afterwards


@pytest.mark.parametrize("core", CORES)
def test_only_the_transformer_lm_maps_its_attention_and_only_the_ngram_counts(core):
    model = _char_lm(core).eval()
    assert isinstance(model, TokenAttentionMapper) == (core == "transformer")
    assert not isinstance(model, CountingModel)
    assert isinstance(get_model("ngram", vocab_size=V), CountingModel)
    if core != "transformer":
        return
    maps = model.attention_maps(_chars(3, 7, seed=11))
    assert len(maps) == 2 and all(m.shape == (3, 2, 7, 7) for m in maps)  # layers; (B, nh, T, T)
    for m in maps:
        torch.testing.assert_close(m.sum(-1), torch.ones(3, 2, 7))
        assert (m.triu(1) == 0).all()  # causal
    assert not any(_attention_switches(model))


def test_transformer_classifier_maps_attention_with_its_class_token_first():
    torch.manual_seed(0)
    model = get_model(
        "transformer_classifier",
        vocab_size=V,
        num_classes=3,
        max_len=12,
        d_model=16,
        nhead=2,
        num_layers=2,
        dim_feedforward=32,
    ).eval()
    assert isinstance(model, TokenAttentionMapper)
    assert not isinstance(get_model("rnn_classifier", vocab_size=V, num_classes=3), TokenAttentionMapper)
    x = _padded_sources()
    maps = model.attention_maps(x)
    assert len(maps) == 2 and maps[-1].shape == (4, 2, 7, 7)  # T = S + 1: the class token first
    assert (maps[-1][..., 1:].masked_select((x == PAD)[:, None, None, :]) == 0).all()  # nobody reads a PAD


def _reverse_task(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """8 fixed sources of length 3..5 and their reversals as BOS + chars + EOS + PAD."""
    g = torch.Generator().manual_seed(seed)
    src = torch.full((8, 5), PAD)
    tgt = torch.full((8, 7), PAD)
    for row in range(8):
        length = 3 + row % 3
        chars = torch.randint(4, V, (length,), generator=g)
        src[row, :length] = chars
        tgt[row, : length + 2] = torch.cat([torch.tensor([BOS]), chars.flip(0), torch.tensor([EOS])])
    return src, tgt


def _greedy(model, src: torch.Tensor, steps: int) -> torch.Tensor:
    memory = model.encode(src)
    prefix = torch.full((src.size(0), 1), BOS)
    for _ in range(steps):
        next_token = model.decode(memory, prefix)[:, -1].argmax(-1, keepdim=True)  # (B, 1)
        prefix = torch.cat([prefix, next_token], dim=1)
    return prefix[:, 1:]


@pytest.mark.parametrize("key", ["gru_additive", "gru_none", "transformer_sinusoidal"])
def test_seq2seq_learns_to_reverse_eight_sequences(key):
    model = _seq2seq(key, dropout=0.0)
    src, tgt = _reverse_task()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(src, tgt[:, :-1]).flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        predicted = _greedy(model, src, tgt.size(1) - 1)
    real = tgt[:, 1:] != PAD
    assert torch.equal(predicted[real], tgt[:, 1:][real])


# ----------------------------------------------------------------------------------
# Recurrent classifier
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_rnn_classifier_ignores_padding(cell):
    torch.manual_seed(0)
    model = get_model("rnn_classifier", vocab_size=V, num_classes=3, cell=cell, embed_dim=8, hidden=16, num_layers=2)
    x = _padded_sources()
    logits = model(x)
    assert logits.shape == (4, 3)
    torch.testing.assert_close(model(torch.cat([x, torch.full((4, 5), PAD)], 1)), logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(model(x[2:3, :2]), logits[2:3], atol=1e-6, rtol=0)  # alone and unpadded


@pytest.mark.parametrize("cell,reference", [("rnn", torch.nn.RNN), ("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU)])
def test_rnn_classifier_matches_torch_recurrent_layers(cell, reference):
    torch.manual_seed(0)
    model = get_model("rnn_classifier", vocab_size=V, num_classes=3, cell=cell, embed_dim=8, hidden=16, num_layers=2)
    ref = reference(8, 16, num_layers=2, batch_first=True)
    ref.load_state_dict(model.rnn.state_dict())
    x = _padded_sources()
    lengths = (x != PAD).sum(1)
    packed = torch.nn.utils.rnn.pack_padded_sequence(model.embed(x), lengths, batch_first=True, enforce_sorted=False)
    _, final = ref(packed)
    h_n = final[0] if isinstance(final, tuple) else final
    torch.testing.assert_close(model(x), model.head(h_n[-1]))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_classifier_biases_the_keep_gate(cell):
    """gate_bias sets b_ih of the LSTM forget gate / GRU update gate (rows H:2H) and zeroes its b_hh."""
    from dlcamp.models.sequence.recurrent_classifier import RecurrentClassifier

    H = 16
    model = RecurrentClassifier(V, 3, cell, embed_dim=8, hidden=H, num_layers=2, gate_bias=1.5)
    for layer in range(2):
        b_ih = getattr(model.rnn, f"bias_ih_l{layer}")
        b_hh = getattr(model.rnn, f"bias_hh_l{layer}")
        assert (b_ih[H : 2 * H] == 1.5).all() and (b_hh[H : 2 * H] == 0).all()
        assert not (b_ih[:H] == 1.5).all()  # the other gates keep their initialisation
    # With the keep gate open, an LSTM's cell or a GRU's state decays more slowly: the
    # initial forget / update gate activation is sigmoid(1.5) ~ 0.82 instead of ~0.5.
    x = torch.full((1, 1), 5, dtype=torch.long)
    gates = model.rnn.weight_ih_l0 @ model.embed(x)[0, 0] + model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0
    assert torch.sigmoid(gates[H : 2 * H]).mean() > 0.7
