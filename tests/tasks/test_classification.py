"""The classification task can fit one batch: its loss falls below a stated value."""

from __future__ import annotations

import pytest
import torch

from dlcamp.models import get_model
from dlcamp.tasks.classification import classification


class _Data:
    num_classes = 10


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"label_smoothing": 0.1},
        {"mixup_alpha": 0.2},
        {"cutmix_alpha": 1.0},
        {"input_noise": 0.05},
        {"weight_noise": 0.01},
    ],
)
def test_overfits_one_batch(options):
    torch.manual_seed(0)
    x, y = torch.rand(32, 1, 8, 8), torch.arange(32) % 10
    model = get_model("mlp", width=64, depth=2)
    task = classification(model=model, datamodule=_Data(), **options)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        xb, target = task.mixer(x, y) if task.mixer is not None else (x, y)
        if task.input_noise is not None:
            xb = task.input_noise(xb)
        loss = task.loss(model(xb), target)
        loss.backward()
        opt.step()
    # clean loss on the batch, without the regularizer: the model has memorised it
    model.eval()
    clean = torch.nn.functional.cross_entropy(model(x), y).item()
    assert clean < 0.15, (options, clean)


def test_options_are_the_task_class_own_and_checked_there():
    import inspect

    from dlcamp.tasks.classification import ClassificationTask

    # The builder forwards the class's options (the engine sets optim and channels_last later).
    assert list(inspect.signature(classification).parameters) == [
        "model",
        "datamodule",
        "label_smoothing",
        "mixup_alpha",
        "cutmix_alpha",
        "input_noise",
        "weight_noise",
    ]
    with pytest.raises(ValueError, match="task.label_smoothing must be < 1"):
        classification(model=get_model("mlp", width=8), datamodule=_Data(), label_smoothing=1.0)
    with pytest.raises(ValueError, match="task.mixup_alpha must be >= 0"):
        ClassificationTask(get_model("mlp", width=8), num_classes=10, mixup_alpha=-1.0)


def test_googlenet_and_vit_declare_their_contracts():
    from dlcamp.models.contracts import AttentionMapper, AuxiliaryClassifier

    googlenet = get_model("googlenet_small", in_channels=1, input_shape=(1, 32, 32), num_classes=10)
    vit = get_model("vit_digits32", depth=1, dim=16, mlp_dim=16, num_heads=2)
    assert isinstance(googlenet, AuxiliaryClassifier) and not isinstance(googlenet, AttentionMapper)
    assert isinstance(vit, AttentionMapper) and not isinstance(get_model("mlp", width=8), AuxiliaryClassifier)


def test_non_finite_loss_is_caught_before_the_step():
    from dlcamp.tasks.base import NonFiniteLoss

    task = classification(model=get_model("mlp", width=8), datamodule=_Data())
    with pytest.raises(NonFiniteLoss, match="at step 0"):
        task.check_finite(torch.tensor(float("nan")))


def test_lr_schedule_warms_up_then_decays():
    from dlcamp.tasks.base import lr_multiplier

    f = lr_multiplier({"name": "cosine", "warmup_steps": 10, "min_lr_ratio": 0.1}, total_steps=110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(110) == pytest.approx(0.1)
    assert f(60) == pytest.approx(0.55)
    g = lr_multiplier({"name": "step", "step_size": 5, "gamma": 0.5}, total_steps=100)
    assert [g(s) for s in (0, 4, 5, 10)] == [1.0, 1.0, 0.5, 0.25]
    m = lr_multiplier({"name": "multistep", "milestones": [0.5, 0.75], "gamma": 0.1}, total_steps=64000)
    assert [m(s) for s in (0, 31999, 32000, 48000, 63999)] == pytest.approx([1.0, 1.0, 0.1, 0.01, 0.01])


def test_auxiliary_classifiers_are_trained_through_the_task():
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = get_model("googlenet_small", in_channels=1, input_shape=(1, 32, 32), num_classes=10, aux_logits=True)
    task = classification(model=model, datamodule=_Data())
    task.configure_engine(optim={"name": "adam", "lr": 1e-3})  # what the engine does after the builder
    aux = {k: v.detach().clone() for k, v in model.named_parameters() if k.startswith("aux")}
    main = {k: v.detach().clone() for k, v in model.named_parameters() if k.startswith("fc")}
    assert aux and main
    loader = DataLoader(TensorDataset(torch.rand(8, 1, 32, 32), torch.arange(8) % 10), batch_size=8)
    L.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    ).fit(task, loader)
    params = dict(model.named_parameters())
    assert all(not torch.equal(params[k], v) for k, v in aux.items()), "aux heads got no gradient"
    assert all(not torch.equal(params[k], v) for k, v in main.items())


def test_vit_run_shows_where_the_class_token_looks(cli, tmp_path):
    from PIL import Image

    run = tmp_path / "vit"
    proc = cli(
        "train",
        "vit-digits32",
        "-o",
        str(run),
        "--set",
        "trainer.max_epochs=1",
        "--set",
        "model.depth=1",
        "--set",
        "model.dim=16",
        "--set",
        "model.mlp_dim=16",
        "--set",
        "model.num_heads=2",
    )
    assert proc.returncode == 0, proc.stderr
    figure = run / "figures" / "class_token_attention.png"
    assert figure.exists() and Image.open(figure).size[0] > 200
    assert "class token attention" in (run / "report.html").read_text()
