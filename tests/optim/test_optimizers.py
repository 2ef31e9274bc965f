"""Our optimizers against torch.optim: same parameters, same gradients, same numbers.

Each optimizer runs 50 steps beside its torch.optim namesake in float64 over a grid of its
options (every flag on and off, with and without weight decay), through both our
multi-tensor (foreach) and per-parameter (loop) paths. After every step every parameter
must agree to RTOL relative / ATOL absolute; at the end the state (keys and values) must
agree too. Parameters: several shapes, a scalar among them, one whose gradient is None
every third step, and one that never gets a gradient; two parameter groups with different
learning rates.
"""

from __future__ import annotations

import copy
import inspect
import io
import itertools
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from dlcamp.errors import UnknownNameError, UsageError
from dlcamp.optim import OPTIMIZERS, get_optimizer_class, list_optimizers
from dlcamp.optim._common import foreach_slices

RTOL = 1e-10
ATOL = 1e-12  # parameters are O(1); float64 rounding after 50 steps is ~1e-15
STEPS = 50

from dlcamp.bench.optim import REFERENCES  # noqa: E402  (the one name -> torch.optim class map)

SHAPES = [(5, 3), (7,), (), (2, 3, 4), (4,), (3,)]
SOMETIMES_NONE = 3  # this parameter's gradient is None on every third step
NEVER_GRAD = 5  # this one never gets a gradient (a frozen layer)


# --- the problem both optimizers are driven through -----------------------------------


def make_params(seed: int = 0) -> list[nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(shape, dtype=torch.float64, generator=generator)) for shape in SHAPES]


def make_gradients(params: list[Tensor], step: int) -> list[Tensor | None]:
    """The gradient of a fixed smooth function of the parameters, plus seeded noise."""
    generator = torch.Generator().manual_seed(1000 + step)
    grads: list[Tensor | None] = []
    for i, p in enumerate(params):
        noise = torch.randn(p.shape, dtype=torch.float64, generator=generator)
        if i == NEVER_GRAD or (i == SOMETIMES_NONE and step % 3 == 1):
            grads.append(None)
        else:
            grads.append(torch.sin(3 * p.detach()) + 0.5 * p.detach() + 0.3 * noise)
    return grads


def set_gradients(params: list[Tensor], grads: list[Tensor | None]) -> None:
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.clone()


def param_groups(params: list[Tensor], lr: float) -> list[dict[str, Any]]:
    # A second group with its own learning rate: hyperparameters are read per group.
    return [{"params": params[:3]}, {"params": params[3:], "lr": lr / 2}]


def flatten(params: list[Tensor]) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def grid(**options: list[Any]) -> list[dict[str, Any]]:
    """Every combination of the options' values."""
    return [dict(zip(options, values)) for values in itertools.product(*options.values())]


def case_id(kwargs: dict[str, Any]) -> str:
    return "-".join(f"{k}={v}" for k, v in kwargs.items())


# Every flag on and off, weight decay off and on; lr given in each case.
GRIDS: dict[str, list[dict[str, Any]]] = {
    "sgd": [
        kw
        for kw in grid(
            lr=[0.05],
            momentum=[0.0, 0.9],
            dampening=[0.0, 0.5],
            nesterov=[False, True],
            weight_decay=[0.0, 0.1],
            maximize=[False, True],
        )
        if not kw["nesterov"] or (kw["momentum"] > 0 and kw["dampening"] == 0)
    ],
    "adagrad": grid(
        lr=[0.1],
        lr_decay=[0.0, 0.05],
        initial_accumulator_value=[0.0, 0.1],
        weight_decay=[0.0, 0.1],
        maximize=[False, True],
    ),
    "adadelta": grid(lr=[1.0], rho=[0.9, 0.5], weight_decay=[0.0, 0.1], maximize=[False, True]),
    "rmsprop": grid(
        lr=[0.01],
        centered=[False, True],
        momentum=[0.0, 0.9],
        weight_decay=[0.0, 0.1],
        maximize=[False, True],
    ),
    "adam": grid(
        lr=[0.01],
        betas=[(0.9, 0.999), (0.8, 0.9)],
        amsgrad=[False, True],
        weight_decay=[0.0, 0.1],
        maximize=[False, True],
    ),
    "adamw": grid(
        lr=[0.01],
        betas=[(0.9, 0.999), (0.8, 0.9)],
        amsgrad=[False, True],
        weight_decay=[0.0, 0.1],
        maximize=[False, True],
    ),
}

# One setting per optimizer with its options on, for the slicing and checkpoint tests.
RICH_SETTINGS: dict[str, dict[str, Any]] = {
    "sgd": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1),
    "adagrad": dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.1),
    "adadelta": dict(lr=0.5, rho=0.8, weight_decay=0.1),
    "rmsprop": dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1),
    "adam": dict(lr=0.01, amsgrad=True, weight_decay=0.1),
    "adamw": dict(lr=0.01, amsgrad=True, weight_decay=0.1),
}

CONFORMANCE_CASES = [
    pytest.param(name, kwargs, foreach, id=f"{name}-{'foreach' if foreach else 'loop'}-{case_id(kwargs)}")
    for name, cases in GRIDS.items()
    for kwargs in cases
    for foreach in (True, False)
]


def assert_same_state(ours, reference, our_params: list[Tensor], ref_params: list[Tensor]) -> None:
    for i, (q, p) in enumerate(zip(our_params, ref_params)):
        our_state, ref_state = ours.state[q], reference.state[p]
        assert set(our_state) == set(ref_state), f"param {i}: state keys differ"
        for key, ref_value in ref_state.items():
            if key == "step":  # ours counts in float64, torch in float32
                assert float(our_state[key]) == float(ref_value), f"param {i}: step differs"
            else:
                torch.testing.assert_close(
                    our_state[key], ref_value, rtol=RTOL, atol=ATOL, msg=lambda m: f"param {i}, {key}: {m}"
                )


# --- conformance --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kwargs", "foreach"), CONFORMANCE_CASES)
def test_optimizer_matches_torch_optim(name: str, kwargs: dict[str, Any], foreach: bool) -> None:
    assert_matches_torch_optim(name, kwargs, foreach)


def assert_matches_torch_optim(name: str, kwargs: dict[str, Any], foreach: bool) -> None:
    ref_params = make_params()
    our_params = [nn.Parameter(p.detach().clone()) for p in ref_params]
    reference = REFERENCES[name](param_groups(ref_params, kwargs["lr"]), **kwargs)
    ours = get_optimizer_class(name)(param_groups(our_params, kwargs["lr"]), foreach=foreach, **kwargs)

    for step in range(STEPS):
        grads = make_gradients(ref_params, step)
        set_gradients(ref_params, grads)
        set_gradients(our_params, grads)
        reference.step()
        ours.step()
        # All parameters flattened into one vector: one comparison per step keeps the grid fast.
        torch.testing.assert_close(
            flatten(our_params), flatten(ref_params), rtol=RTOL, atol=ATOL, msg=lambda m: f"step {step}: {m}"
        )
        for q, g in zip(our_params, grads):
            if g is not None:  # the optimizer reads the gradient, never writes it
                assert torch.equal(q.grad, g)
    assert_same_state(ours, reference, our_params, ref_params)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_foreach_in_cache_sized_slices_matches_torch_optim(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU the foreach ops run on slices of the parameter list; make the slices tiny."""
    monkeypatch.setattr("dlcamp.optim._common.CPU_SLICE_NUMEL", 8)
    assert len(foreach_slices(make_params())) > 2
    assert_matches_torch_optim(name, RICH_SETTINGS[name], foreach=True)


# --- checkpoints ------------------------------------------------------------------------


def run_steps(optimizer: torch.optim.Optimizer, params: list[Tensor], steps: range) -> None:
    for step in steps:
        set_gradients(params, make_gradients(params, step))
        optimizer.step()


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "loop"])
@pytest.mark.parametrize("name", list(RICH_SETTINGS))
def test_resumed_run_equals_uninterrupted_run(name: str, foreach: bool) -> None:
    settings = RICH_SETTINGS[name]
    cls = get_optimizer_class(name)
    params = make_params()
    optimizer = cls(param_groups(params, settings["lr"]), foreach=foreach, **settings)
    run_steps(optimizer, params, range(20))

    checkpoint = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in params], "optimizer": optimizer.state_dict()}, checkpoint)
    run_steps(optimizer, params, range(20, 50))

    checkpoint.seek(0)
    saved = torch.load(checkpoint)
    resumed_params = [nn.Parameter(t) for t in saved["params"]]
    # Built with default hyperparameters: the checkpoint must bring back its own.
    resumed = cls(param_groups(resumed_params, 1.0), foreach=foreach)
    resumed.load_state_dict(saved["optimizer"])
    run_steps(resumed, resumed_params, range(20, 50))

    for resumed_p, p in zip(resumed_params, params):
        torch.testing.assert_close(resumed_p, p, rtol=0, atol=0)
    assert resumed.param_groups[1]["lr"] == settings["lr"] / 2


@pytest.mark.parametrize("direction", ["torch-to-ours", "ours-to-torch"])
@pytest.mark.parametrize("name", list(RICH_SETTINGS))
def test_checkpoints_are_interchangeable_with_torch_optim(name: str, direction: str) -> None:
    """Same state-dict format: a run saved by one library resumes in the other."""
    settings = RICH_SETTINGS[name]
    ours_cls, torch_cls = get_optimizer_class(name), REFERENCES[name]
    first_cls, second_cls = (torch_cls, ours_cls) if direction == "torch-to-ours" else (ours_cls, torch_cls)

    params = make_params()
    first = first_cls(param_groups(params, settings["lr"]), **settings)
    run_steps(first, params, range(20))
    state_dict = copy.deepcopy(first.state_dict())  # state_dict() shares the live tensors

    resumed_params = [nn.Parameter(p.detach().clone()) for p in params]
    second = second_cls(param_groups(resumed_params, settings["lr"]), **settings)
    second.load_state_dict(state_dict)

    run_steps(first, params, range(20, 50))
    run_steps(second, resumed_params, range(20, 50))
    for resumed_p, p in zip(resumed_params, params):
        torch.testing.assert_close(resumed_p, p, rtol=RTOL, atol=ATOL)


# --- the constructor --------------------------------------------------------------------

OURS_ONLY_LEAVES_OUT = {"capturable", "differentiable", "fused"}  # torch.optim's compile/fused options


@pytest.mark.parametrize("name", list(REFERENCES))
def test_signature_and_defaults_match_torch_optim(name: str) -> None:
    ours = inspect.signature(get_optimizer_class(name)).parameters
    reference = inspect.signature(REFERENCES[name]).parameters
    assert set(reference) - set(ours) <= OURS_ONLY_LEAVES_OUT
    assert set(ours) <= set(reference)
    for key, parameter in ours.items():
        if key != "params":
            assert parameter.default == reference[key].default, key


INVALID_ARGUMENTS = [
    ("sgd", dict(lr=-0.1), "learning rate"),
    ("sgd", dict(momentum=-0.9), "momentum"),
    ("sgd", dict(weight_decay=-1e-4), "weight_decay"),
    ("sgd", dict(nesterov=True), "Nesterov"),
    ("sgd", dict(nesterov=True, momentum=0.9, dampening=0.1), "Nesterov"),
    ("adagrad", dict(lr=-0.1), "learning rate"),
    ("adagrad", dict(lr_decay=-0.1), "lr_decay"),
    ("adagrad", dict(weight_decay=-0.1), "weight_decay"),
    ("adagrad", dict(initial_accumulator_value=-0.1), "initial_accumulator_value"),
    ("adagrad", dict(eps=-1e-10), "epsilon"),
    ("adadelta", dict(lr=-1.0), "learning rate"),
    ("adadelta", dict(rho=1.5), "rho"),
    ("adadelta", dict(rho=-0.1), "rho"),
    ("adadelta", dict(eps=-1e-6), "epsilon"),
    ("adadelta", dict(weight_decay=-0.1), "weight_decay"),
    ("rmsprop", dict(lr=-0.01), "learning rate"),
    ("rmsprop", dict(alpha=-0.99), "alpha"),
    ("rmsprop", dict(eps=-1e-8), "epsilon"),
    ("rmsprop", dict(weight_decay=-0.1), "weight_decay"),
    ("rmsprop", dict(momentum=-0.9), "momentum"),
    ("adam", dict(lr=-1e-3), "learning rate"),
    ("adam", dict(eps=-1e-8), "epsilon"),
    ("adam", dict(betas=(1.0, 0.999)), "beta parameter at index 0"),
    ("adam", dict(betas=(-0.1, 0.999)), "beta parameter at index 0"),
    ("adam", dict(betas=(0.9, 1.0)), "beta parameter at index 1"),
    ("adam", dict(weight_decay=-0.1), "weight_decay"),
    ("adamw", dict(lr=-1e-3), "learning rate"),
    ("adamw", dict(betas=(0.9, 1.5)), "beta parameter at index 1"),
    ("adamw", dict(weight_decay=-0.1), "weight_decay"),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "match"), INVALID_ARGUMENTS, ids=[f"{n}-{case_id(kw)}" for n, kw, _ in INVALID_ARGUMENTS]
)
def test_rejects_the_arguments_torch_optim_rejects(name: str, kwargs: dict[str, Any], match: str) -> None:
    params = [nn.Parameter(torch.zeros(3))]
    with pytest.raises(ValueError):
        REFERENCES[name](params, **kwargs)
    with pytest.raises(ValueError, match=match) as caught:
        get_optimizer_class(name)(params, **kwargs)
    assert isinstance(caught.value, UsageError)  # the CLI reports it in one line


@pytest.mark.parametrize("name", list(REFERENCES))
def test_sparse_gradients_raise_a_clear_error(name: str) -> None:
    param = nn.Parameter(torch.zeros(4, 2))
    param.grad = torch.sparse_coo_tensor(torch.tensor([[1]]), torch.ones(1, 2), (4, 2), check_invariants=True)
    with pytest.raises(RuntimeError, match="sparse gradients"):
        get_optimizer_class(name)([param]).step()


@pytest.mark.parametrize("name", list(REFERENCES))
def test_complex_parameters_raise_a_clear_error(name: str) -> None:
    param = nn.Parameter(torch.zeros(3, dtype=torch.complex64))
    param.grad = torch.ones_like(param)
    with pytest.raises(RuntimeError, match="complex parameters"):
        get_optimizer_class(name)([param]).step()


@pytest.mark.parametrize("name", list(REFERENCES))
def test_step_evaluates_the_closure_and_returns_its_loss(name: str) -> None:
    param = nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = get_optimizer_class(name)([param], lr=0.1)

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = (param**2).sum()
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    assert loss.item() == 3.0
    assert (param < 1).all()  # it stepped downhill using the closure's gradient


# --- the registry -----------------------------------------------------------------------


def test_registry_lists_all_six_optimizers() -> None:
    assert set(list_optimizers()) == {"sgd", "adagrad", "adadelta", "rmsprop", "adam", "adamw"}
    assert all(description for description in list_optimizers().values())
    for name, reference in REFERENCES.items():
        cls = get_optimizer_class(name)
        assert issubclass(cls, torch.optim.Optimizer)
        assert cls.__name__ == reference.__name__
    assert OPTIMIZERS.builder("adamw").__name__ == "AdamW"


def test_unknown_optimizer_name_suggests_close_ones() -> None:
    with pytest.raises(UnknownNameError, match="adam"):
        get_optimizer_class("adan")
