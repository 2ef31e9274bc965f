"""dlcamp.nn.recurrent against torch.nn: same weights, same outputs, states and grads."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dlcamp.nn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

I, H, T, B = 3, 4, 5, 3  # tiny sizes: input, hidden, time, batch
ATOL = 1e-6

KINDS = {
    "rnn_tanh": (lambda **kw: RNN(nonlinearity="tanh", **kw), lambda **kw: nn.RNN(nonlinearity="tanh", **kw)),
    "rnn_relu": (lambda **kw: RNN(nonlinearity="relu", **kw), lambda **kw: nn.RNN(nonlinearity="relu", **kw)),
    "lstm": (LSTM, nn.LSTM),
    "gru": (GRU, nn.GRU),
}


def _pair(kind: str, **kwargs):
    """A torch layer and ours, in float64, with ours loaded from torch's state dict."""
    ours_cls, ref_cls = KINDS[kind]
    ref = ref_cls(input_size=I, hidden_size=H, **kwargs).double()
    ours = ours_cls(input_size=I, hidden_size=H, **kwargs).double()
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ours, ref


def _initial_state(kind: str, num_layers: int, bidirectional: bool, batch: int = B):
    shape = (num_layers * (2 if bidirectional else 1), batch, H)
    if kind == "lstm":
        return (torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64))
    return torch.randn(shape, dtype=torch.float64)


def _assert_close(ours, ref):
    if isinstance(ref, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(ref)
        for o, r in zip(ours, ref):
            _assert_close(o, r)
    else:
        assert ours.shape == ref.shape
        torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("kind", list(KINDS))
def test_layer_matches_torch(kind, num_layers, bidirectional, batch_first, with_state):
    torch.manual_seed(0)
    ours, ref = _pair(kind, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=torch.float64)
    hx = _initial_state(kind, num_layers, bidirectional) if with_state else None
    out, state = ours(x, hx)
    ref_out, ref_state = ref(x, hx)
    _assert_close(out, ref_out)
    _assert_close(state, ref_state)


@pytest.mark.parametrize("enforce_sorted", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", list(KINDS))
def test_packed_sequence_matches_torch(kind, bidirectional, with_state, enforce_sorted):
    torch.manual_seed(1)
    ours, ref = _pair(kind, num_layers=2, bidirectional=bidirectional, batch_first=True)
    lengths = torch.tensor([5, 4, 2, 1]) if enforce_sorted else torch.tensor([2, 5, 1, 4])
    x = torch.randn(len(lengths), T, I, dtype=torch.float64)  # (B, T, I)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=enforce_sorted)
    hx = _initial_state(kind, 2, bidirectional, batch=len(lengths)) if with_state else None
    out, state = ours(packed, hx)
    ref_out, ref_state = ref(packed, hx)
    assert type(out) is type(ref_out)
    torch.testing.assert_close(out.data, ref_out.data, atol=ATOL, rtol=0)
    assert torch.equal(out.batch_sizes, ref_out.batch_sizes)
    if enforce_sorted:
        assert out.sorted_indices is None and ref_out.sorted_indices is None
    else:
        assert torch.equal(out.sorted_indices, ref_out.sorted_indices)
        assert torch.equal(out.unsorted_indices, ref_out.unsorted_indices)
    _assert_close(state, ref_state)
    padded, out_lengths = pad_packed_sequence(out, batch_first=True)
    assert torch.equal(out_lengths, lengths)


@pytest.mark.parametrize("kind", list(KINDS))
def test_gradients_match_torch(kind):
    torch.manual_seed(2)
    ours, ref = _pair(kind, num_layers=2, bidirectional=True)
    x = torch.randn(T, B, I, dtype=torch.float64)
    hx = _initial_state(kind, 2, True)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    weight = torch.randn(T, B, 2 * H, dtype=torch.float64)  # random cotangent

    def loss(module, inp):
        out, state = module(inp, hx)
        h_n = state[0] if isinstance(state, tuple) else state
        return (out * weight).sum() + h_n.square().sum()

    loss(ours, x_ours).backward()
    loss(ref, x_ref).backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=ATOL, rtol=0)
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, ref_params[name].grad, atol=ATOL, rtol=0, msg=name)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", list(KINDS))
def test_state_dict_round_trip_strict(kind, bias):
    ours_cls, ref_cls = KINDS[kind]
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=True, bias=bias)
    ours, ref = ours_cls(**kwargs), ref_cls(**kwargs)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for (name, p), (_ref_name, ref_p) in zip(ours.state_dict().items(), ref.state_dict().items()):
        assert p.shape == ref_p.shape, name
    ref.load_state_dict(ours.state_dict(), strict=True)  # ours -> torch
    for name, p in ours.state_dict().items():
        assert torch.equal(p, ref.state_dict()[name])
    fresh = ref_cls(**kwargs)
    ours.load_state_dict(fresh.state_dict(), strict=True)  # torch -> ours
    x = torch.randn(T, B, I)
    _assert_close(ours(x), fresh(x))


CELLS = {
    "rnn_tanh": (
        lambda *a, **k: RNNCell(*a, nonlinearity="tanh", **k),
        lambda *a, **k: nn.RNNCell(*a, nonlinearity="tanh", **k),
    ),
    "rnn_relu": (
        lambda *a, **k: RNNCell(*a, nonlinearity="relu", **k),
        lambda *a, **k: nn.RNNCell(*a, nonlinearity="relu", **k),
    ),
    "lstm": (LSTMCell, nn.LSTMCell),
    "gru": (GRUCell, nn.GRUCell),
}


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_matches_torch(kind, with_state, batched):
    torch.manual_seed(3)
    ours_cls, ref_cls = CELLS[kind]
    ref = ref_cls(I, H).double()
    ours = ours_cls(I, H).double()
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.load_state_dict(ours.state_dict(), strict=True)
    lead = (B,) if batched else ()
    x = torch.randn(*lead, I, dtype=torch.float64)
    hx = None
    if with_state:
        hx = torch.randn(*lead, H, dtype=torch.float64)
        if kind == "lstm":
            hx = (hx, torch.randn(*lead, H, dtype=torch.float64))
    _assert_close(ours(x, hx), ref(x, hx))


@pytest.mark.parametrize("kind", list(KINDS))
def test_unbatched_input_matches_torch(kind):
    torch.manual_seed(4)
    ours, ref = _pair(kind, num_layers=2, bidirectional=True)
    x = torch.randn(T, I, dtype=torch.float64)  # (T, I)
    out, state = ours(x)
    ref_out, ref_state = ref(x)
    _assert_close(out, ref_out)
    _assert_close(state, ref_state)


def test_dropout_only_in_training():
    torch.manual_seed(5)
    ours, ref = _pair("lstm", num_layers=2, dropout=0.5)
    x = torch.randn(T, B, I, dtype=torch.float64)
    ours.eval()
    ref.eval()
    _assert_close(ours(x), ref(x))
    ours.train()
    assert not torch.allclose(ours(x)[0], ref(x)[0])


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        RNN(I, H, nonlinearity="sigmoid")
    with pytest.raises(ValueError):
        RNNCell(I, H, nonlinearity="gelu")
    with pytest.raises(ValueError):
        GRU(I, H)(torch.randn(T, B, I), torch.zeros(2, B, H))


# ---------------------------------------------------------------- LSTM projections

P = 2  # proj_size, < H
# torch's CPU LSTM falls back from oneDNN to its plain kernel for projections, and says so.
_quiet_onednn = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")


def _proj_pair(**kwargs):
    """torch.nn.LSTM(proj_size=P) and ours, float64, ours loaded from torch's weights."""
    ref = nn.LSTM(input_size=I, hidden_size=H, proj_size=P, **kwargs).double()
    ours = LSTM(input_size=I, hidden_size=H, proj_size=P, **kwargs).double()
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ours, ref


def _proj_state(num_layers: int, bidirectional: bool, batch: int = B):
    """(h0 (L*D, B, P), c0 (L*D, B, H)): the hidden state is projected, the cell is not."""
    n = num_layers * (2 if bidirectional else 1)
    return (torch.randn(n, batch, P, dtype=torch.float64), torch.randn(n, batch, H, dtype=torch.float64))


@_quiet_onednn
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm_with_projections_matches_torch(num_layers, bidirectional, batch_first, with_state):
    torch.manual_seed(6)
    ours, ref = _proj_pair(num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=torch.float64)
    hx = _proj_state(num_layers, bidirectional) if with_state else None
    out, (h_n, c_n) = ours(x, hx)
    ref_out, ref_state = ref(x, hx)
    D = 2 if bidirectional else 1
    assert out.shape[-1] == D * P
    assert h_n.shape == (num_layers * D, B, P) and c_n.shape == (num_layers * D, B, H)
    _assert_close(out, ref_out)
    _assert_close((h_n, c_n), ref_state)


@_quiet_onednn
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_with_projections_on_packed_sequences_matches_torch(bidirectional, with_state):
    torch.manual_seed(7)
    ours, ref = _proj_pair(num_layers=2, bidirectional=bidirectional, batch_first=True)
    lengths = torch.tensor([2, 5, 1, 4])
    x = torch.randn(len(lengths), T, I, dtype=torch.float64)  # (B, T, I)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    hx = _proj_state(2, bidirectional, batch=len(lengths)) if with_state else None
    out, state = ours(packed, hx)
    ref_out, ref_state = ref(packed, hx)
    torch.testing.assert_close(out.data, ref_out.data, atol=ATOL, rtol=0)
    assert torch.equal(out.batch_sizes, ref_out.batch_sizes)
    _assert_close(state, ref_state)


@_quiet_onednn
def test_lstm_with_projections_gradients_match_torch():
    torch.manual_seed(8)
    ours, ref = _proj_pair(num_layers=2, bidirectional=True)
    x = torch.randn(T, B, I, dtype=torch.float64)
    hx = _proj_state(2, True)
    cotangent = torch.randn(T, B, 2 * P, dtype=torch.float64)
    for module in (ours, ref):
        out, (h_n, c_n) = module(x, hx)
        ((out * cotangent).sum() + h_n.square().sum() + c_n.sum()).backward()
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, ref_params[name].grad, atol=ATOL, rtol=0, msg=name)


@_quiet_onednn
def test_lstm_with_projections_state_dict_round_trip_strict():
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=True, proj_size=P)
    ours, ref = LSTM(**kwargs), nn.LSTM(**kwargs)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in ref.state_dict().items()]
    assert ours.weight_hr_l1_reverse.shape == (P, H)
    assert ours.weight_hh_l0.shape == (4 * H, P) and ours.weight_ih_l1.shape == (4 * H, 2 * P)
    ref.load_state_dict(ours.state_dict(), strict=True)  # ours -> torch
    fresh = nn.LSTM(**kwargs)
    ours.load_state_dict(fresh.state_dict(), strict=True)  # torch -> ours
    x = torch.randn(T, B, I)
    _assert_close(ours(x), fresh(x))
    assert repr(ours) == repr(fresh)


def test_lstm_projection_size_is_checked_like_torch():
    for bad in (-1, H, H + 1):
        with pytest.raises(ValueError):
            nn.LSTM(I, H, proj_size=bad)
        with pytest.raises(ValueError):
            LSTM(I, H, proj_size=bad)
    with pytest.raises(ValueError):  # h0 must be P wide, not H
        LSTM(I, H, proj_size=P)(torch.randn(T, B, I), (torch.zeros(1, B, H), torch.zeros(1, B, H)))
