"""Resolve a recipe, build its parts, train, and write the run directory.

Run directory (see DESIGN.md): config.yaml, summary.json, metrics.csv, tb/,
checkpoints/last.ckpt, model.safetensors, figures/*.png, report.html.

Everything that can be wrong with what the user asked for (names, keys, values, data
files) is checked by ``resolve`` and ``build`` before the run directory is created, so a
usage error never leaves a directory behind.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import platform
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch

from dlcamp.engine.config import (
    SECTIONS,
    EarlyStopConfig,
    ExpectConfig,
    ScheduleConfig,
    TrainerConfig,
    apply_overrides,
    check_section,
    dataclass_from_dict,
    unknown_key,
)
from dlcamp.errors import UsageError
from dlcamp.io import write_json, write_yaml
from dlcamp.optim.groups import Phase, is_multi

CKPT = Path("checkpoints") / "last.ckpt"
ENGINE_FILLED = ("model", "datamodule")  # task-builder args the engine passes (it sets optim etc. afterwards)
# Model-builder args the engine fills from the data module when the recipe leaves them out
# (``DataModule.model_facts`` adds the text ones).
MODEL_FILLED = ("num_classes", "input_shape", "in_channels", "vocab_size", "max_len")


def quiet_lightning() -> None:
    """Lightning's banners and tips are noise in a run's output; warnings we handle are too."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for msg in (
        ".*does not have many workers.*",
        ".*resuming from a checkpoint that ended before the epoch.*",
        ".*Checkpoint directory .* exists and is not empty.*",
        ".*Experiment logs directory .* exists.*",
        ".*LeafSpec.*",
        ".*is deprecated.*",
        ".*number of training batches.*smaller than the logging interval.*",
        ".*TensorBoard.*",
        ".*tensorboardX.*",
        ".*sync_dist=True.*",
        ".*The '.*_dataloader' does not.*",
    ):
        warnings.filterwarnings("ignore", message=msg)


def global_rank() -> int:
    """This process's rank under a launcher (torchrun or Lightning's), 0 when alone."""
    for key in ("RANK", "GLOBAL_RANK", "LOCAL_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    return 0


# -- resolve ----------------------------------------------------------------------------


def _section(cfg: dict[str, Any], key: str) -> tuple[str, dict[str, Any]]:
    sec = cfg.get(key)
    if not isinstance(sec, dict) or not isinstance(sec.get("name"), str):
        raise UsageError(f"recipe section {key!r} must be a mapping with a 'name' (e.g. {key}: {{name: ...}})")
    args = {k: v for k, v in sec.items() if k != "name"}
    return sec["name"], args


def resolve(cfg: dict[str, Any], overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Apply ``key=value`` overrides, check every key and value of the recipe, and return it
    normalised (trainer defaults filled)."""
    from dlcamp.data import DATASETS
    from dlcamp.data import _load_builtin as load_data
    from dlcamp.models import MODELS
    from dlcamp.models import _load_builtin as load_models
    from dlcamp.tasks import TASKS
    from dlcamp.tasks import _load_builtin as load_tasks

    load_data(), load_models(), load_tasks()
    cfg = apply_overrides(cfg, list(overrides))
    for key in cfg:
        if key not in SECTIONS:
            raise unknown_key(key, list(SECTIONS))
    out: dict[str, Any] = {"name": str(cfg.get("name", "recipe")), "description": str(cfg.get("description", ""))}
    seed = cfg.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    out["seed"] = seed

    name, args = _section(cfg, "model")
    out["model"] = {"name": name, **check_section(MODELS.builder(name), args, "model", optional=MODEL_FILLED)}
    name, args = _section(cfg, "data")
    out["data"] = {"name": name, **check_section(DATASETS.builder(name), args, "data")}
    name, args = _section(cfg, "task")
    out["task"] = {"name": name, **check_section(TASKS.builder(name), args, "task", reserved=ENGINE_FILLED)}

    optim = cfg.get("optim")
    if isinstance(optim, dict) and is_multi(optim):
        out["optim"] = {group: _optim_spec(spec, f"optim.{group}") for group, spec in optim.items()}
    else:
        out["optim"] = _optim_spec(optim, "optim")
    if cfg.get("phases") is not None:
        if not isinstance(cfg["phases"], list) or not cfg["phases"]:
            raise UsageError("recipe section 'phases' must be a non-empty list of {name, train, share, ...}")
        phases = [dataclass_from_dict(Phase, ph, f"phases[{i}]") for i, ph in enumerate(cfg["phases"])]
        for ph in phases:
            if ph.share <= 0 or not ph.train:
                raise UsageError(f"phase {ph.name!r} needs a positive share and at least one group to train")
        out["phases"] = [dataclasses.asdict(ph) for ph in phases]

    trainer = cfg.get("trainer") or {}
    if not isinstance(trainer, dict):
        raise UsageError("recipe section 'trainer' must be a mapping")
    tc = dataclass_from_dict(TrainerConfig, trainer, "trainer")
    _check_trainer(tc)
    out["trainer"] = dataclasses.asdict(tc)
    if cfg.get("expect") is not None:
        out["expect"] = dataclasses.asdict(dataclass_from_dict(ExpectConfig, cfg["expect"], "expect"))
    if cfg.get("published") is not None:
        out["published"] = cfg["published"]
    return out


def _optim_spec(spec: Any, where: str) -> dict[str, Any]:
    """One optimizer spec checked against its class (``name``, its arguments, ``schedule``, ``no_decay``)."""
    from dlcamp.optim import get_optimizer_class

    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise UsageError(
            f"{where} must be a mapping with a 'name' (e.g. {where}: {{name: adam, lr: 1.0e-3}}), "
            "or a mapping of such specs, one per parameter group"
        )
    args = {k: v for k, v in spec.items() if k != "name"}
    schedule = args.pop("schedule", None)
    no_decay = args.pop("no_decay", None)
    out = {
        "name": spec["name"],
        **check_section(get_optimizer_class(spec["name"]).__init__, args, where, reserved=("params",)),
    }
    if no_decay is not None:
        if not isinstance(no_decay, bool):
            raise UsageError(f"{where}.no_decay must be true or false, got {no_decay!r}")
        out["no_decay"] = no_decay
    if schedule is not None:
        out["schedule"] = dataclasses.asdict(dataclass_from_dict(ScheduleConfig, schedule, f"{where}.schedule"))
    return out


def _check_trainer(tc: TrainerConfig) -> None:
    for field in ("max_epochs", "devices", "num_nodes", "log_every_n_steps", "val_every_n_epochs"):
        if getattr(tc, field) < 1:
            raise UsageError(f"trainer.{field} must be >= 1, got {getattr(tc, field)}")
    if tc.checkpoint_every_n_steps < 0:
        raise UsageError(f"trainer.checkpoint_every_n_steps must be >= 0, got {tc.checkpoint_every_n_steps}")
    if isinstance(tc.early_stopping, EarlyStopConfig) and tc.early_stopping.patience < 1:
        raise UsageError("trainer.early_stopping.patience must be >= 1")


# -- build ------------------------------------------------------------------------------


@dataclasses.dataclass
class Built:
    cfg: dict[str, Any]  # resolved, with the values the engine filled in (num_classes, ...)
    datamodule: Any
    model: torch.nn.Module
    task: Any


def _call(what: str, fn, **kwargs):
    """Call a builder; its ValueErrors/TypeErrors are the user's mistakes (a bad value)."""
    try:
        return fn(**kwargs)
    except UsageError:
        raise
    except (ValueError, TypeError) as e:
        raise UsageError(f"{what}: {e}") from None


def build(cfg: dict[str, Any]) -> Built:
    """Build data module, model and task from a resolved recipe (seeded first)."""
    import lightning as L

    from dlcamp.data import DATASETS
    from dlcamp.models import MODELS
    from dlcamp.registry import signature_params
    from dlcamp.tasks import TASKS

    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in cfg.items()}
    L.seed_everything(cfg["seed"], workers=True, verbose=False)

    data_args = {k: v for k, v in cfg["data"].items() if k != "name"}
    data_builder = DATASETS.builder(cfg["data"]["name"])
    if "seed" in signature_params(data_builder) and "seed" not in data_args:
        data_args["seed"] = cfg["seed"]
    dm = _call(f"data {cfg['data']['name']!r}", data_builder, **data_args)

    model_args = {k: v for k, v in cfg["model"].items() if k != "name"}
    model_builder = MODELS.builder(cfg["model"]["name"])
    takes = signature_params(model_builder)
    filled = {
        "num_classes": dm.num_classes,
        "input_shape": list(dm.input_shape),
        "in_channels": dm.input_shape[0] if dm.input_shape else None,
    }
    # Facts beyond the image ones (a text data module's vocab_size, max_len, ...).
    filled.update(dm.model_facts())
    for key, value in filled.items():
        if key in takes and key not in model_args and value:
            model_args[key] = value
            cfg["model"][key] = value
    missing = [
        k for k in MODEL_FILLED if k in takes and k not in model_args and takes[k].default is inspect.Parameter.empty
    ]
    if missing:
        raise UsageError(
            f"model {cfg['model']['name']!r} needs {', '.join(missing)}, which data "
            f"{cfg['data']['name']!r} does not provide; choose data that does or set model.{missing[0]}"
        )
    model = _call(f"model {cfg['model']['name']!r}", model_builder, **model_args)
    if cfg["trainer"].get("compile"):
        model.compile()

    task_args = {k: v for k, v in cfg["task"].items() if k != "name"}
    task = _call(
        f"task {cfg['task']['name']!r}", TASKS.builder(cfg["task"]["name"]), model=model, datamodule=dm, **task_args
    )
    phases = [Phase(**ph) for ph in cfg["phases"]] if cfg.get("phases") else None
    _call(
        "optim",
        task.configure_engine,
        optim=cfg["optim"],
        channels_last=bool(cfg["trainer"].get("channels_last")),
        phases=phases,
        gradient_clip_val=cfg["trainer"].get("gradient_clip_val") or 0.0,
    )
    tc = cfg["trainer"]
    if task.phases and (tc["devices"] > 1 or tc["num_nodes"] > 1):
        raise UsageError(
            "a phased schedule runs in one process: its phases leave parameter groups unused, "
            "which DDP refuses; train it with --devices 1"
        )
    return Built(cfg, dm, model, task)


# -- train ------------------------------------------------------------------------------


def _keep_csv_history(logger: Any, run_dir: Path) -> None:
    """On resume, keep metrics.csv's rows up to the checkpoint's step.

    Lightning's CSV writer deletes an existing metrics.csv when it starts; the rows after
    the checkpoint are dropped because the resumed run logs those steps again.
    """
    import csv

    path = run_dir / "metrics.csv"
    if not path.exists():
        return
    step = int(torch.load(run_dir / CKPT, map_location="cpu", weights_only=True)["global_step"])
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = [r for r in reader if int(float(r.get("step") or 0)) < step]
    writer = logger.experiment  # created now: this is where the old file is removed
    with open(path, "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=header)
        out.writeheader()
        out.writerows(rows)
    writer.metrics_keys = header


def make_trainer(cfg: dict[str, Any], run_dir: Path, *, progress: str = "auto", resume: bool = False):
    """A Lightning Trainer configured from the recipe's ``trainer`` section."""
    import sys

    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, RichProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from dlcamp.engine.callbacks import AtomicCheckpointIO, CrashAfterStep, PlainProgress, RunState

    tc = cfg["trainer"]
    ckpt_dir = run_dir / CKPT.parent
    callbacks: list[Any] = [
        RunState(),
        LearningRateMonitor(logging_interval="step"),
        ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="last",
            save_top_k=1,
            monitor=None,
            enable_version_counter=False,
            save_on_train_epoch_end=True,
        ),
    ]
    if tc["checkpoint_every_n_steps"]:
        callbacks.append(
            ModelCheckpoint(
                dirpath=ckpt_dir,
                filename="last",
                save_top_k=1,
                monitor=None,
                enable_version_counter=False,
                every_n_train_steps=tc["checkpoint_every_n_steps"],
            )
        )
    if tc.get("early_stopping"):
        es = tc["early_stopping"]
        callbacks.append(
            EarlyStopping(
                monitor=es["monitor"],
                mode=es["mode"],
                patience=es["patience"],
                min_delta=es["min_delta"],
                check_on_train_epoch_end=False,
            )
        )
    tty = sys.stdout.isatty() if progress == "auto" else progress == "rich"
    if progress != "none":
        callbacks.append(RichProgressBar(leave=True) if tty else PlainProgress())
    if os.environ.get("DLCAMP_CRASH_AFTER_STEP"):
        callbacks.append(CrashAfterStep(int(os.environ["DLCAMP_CRASH_AFTER_STEP"])))

    csv_logger = CSVLogger(save_dir=run_dir, name="", version="")
    if resume and global_rank() == 0:
        _keep_csv_history(csv_logger, run_dir)
    distributed = tc["devices"] > 1 or tc["num_nodes"] > 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1
    return L.Trainer(
        accelerator=tc["accelerator"],
        devices=tc["devices"],
        num_nodes=tc["num_nodes"],
        strategy="ddp" if distributed else "auto",
        precision=tc["precision"],
        max_epochs=tc["max_epochs"],
        max_steps=tc["max_steps"],
        deterministic=tc["deterministic"],
        # several optimizers: the task clips in its own step_optimizer (Lightning refuses both)
        gradient_clip_val=None if is_multi(cfg["optim"]) else (tc["gradient_clip_val"] or None),
        log_every_n_steps=tc["log_every_n_steps"],
        check_val_every_n_epoch=tc["val_every_n_epochs"],
        limit_train_batches=tc["limit_train_batches"],
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        logger=[csv_logger, TensorBoardLogger(save_dir=run_dir, name="tb", version="", default_hp_metric=False)],
        enable_progress_bar=tty and progress != "none",
        enable_model_summary=False,
        use_distributed_sampler=False,  # the data module shards the training set itself
        num_sanity_val_steps=0,
        default_root_dir=run_dir,
    )


def prepare_run_dir(run_dir: Path, cfg: dict[str, Any], *, resume: bool) -> None:
    """Refuse to overwrite a run; on a fresh run write config.yaml (rank 0 only).

    Processes of rank > 0 (started by torchrun or by Lightning's DDP launcher, which
    re-runs the same command) find the directory rank 0 made and write nothing here.
    """
    if global_rank() != 0:
        return
    if resume:
        if not (run_dir / CKPT).exists():
            raise UsageError(f"cannot resume: {run_dir / CKPT} does not exist (train without --resume first)")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UsageError(f"run directory {str(run_dir)!r} already exists; pass --resume to continue it or -o NEW_DIR")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_yaml(run_dir / "config.yaml", cfg)


def train(
    cfg: dict[str, Any], run_dir: Path, *, resume: bool = False, progress: str = "auto", callbacks: Sequence[Any] = ()
) -> dict[str, Any] | None:
    """Train a resolved recipe into ``run_dir``; return the summary (None on ranks > 0).

    ``callbacks`` are Lightning callbacks added to the engine's own (the tour's progress line).
    """
    quiet_lightning()
    built = build(cfg)
    prepare_run_dir(run_dir, built.cfg, resume=resume)
    trainer = make_trainer(built.cfg, run_dir, progress=progress, resume=resume)
    trainer.callbacks.extend(callbacks)
    trainer.fit(built.task, datamodule=built.datamodule, ckpt_path=str(run_dir / CKPT) if resume else None)
    if trainer.global_rank != 0:
        return None
    from dlcamp.engine.callbacks import RunState

    state = next(cb for cb in trainer.callbacks if isinstance(cb, RunState))
    return finalize(run_dir, built, trainer, train_seconds=state.train_seconds())


def versions() -> dict[str, str]:
    import lightning
    import torchvision

    import dlcamp

    return {
        "dlcamp": dlcamp.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
    }


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """The weights alone as safetensors (no pickle), written atomically."""
    from safetensors.torch import save

    from dlcamp.io import write_bytes

    tensors, seen = {}, set()
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        # safetensors refuses tensors that share memory (tied input/output embeddings):
        # the second name gets its own copy; loading puts the same values back in both.
        ptr = value.untyped_storage().data_ptr()
        tensors[key] = value.clone() if ptr in seen and value.numel() else value
        seen.add(ptr)
    write_bytes(path, save(tensors))


def load_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)), strict=True)


def finalize(run_dir: Path, built: Built, trainer: Any, *, train_seconds: float) -> dict[str, Any]:
    """Final metrics, weights, figures, summary and report (rank 0, after training)."""
    from dlcamp.report import figures as F
    from dlcamp.report.html import write_run_report

    task, dm = built.task, built.datamodule
    task = task.cpu() if trainer.strategy.root_device.type != "cpu" else task
    metrics: dict[str, float] = {}
    for split in ("val", "test"):
        metrics.update(task.evaluate(dm.split_loader(split), split))
    for logger in trainer.loggers:  # at the step the training curves use: batches (several optimizers step per batch)
        logger.log_metrics(metrics, step=task.batches_done())
        logger.save()
    save_weights(task.model, run_dir / "model.safetensors")

    fig_dir = run_dir / "figures"
    series = F.read_metrics_csv(run_dir / "metrics.csv")
    figures = [F.save(F.plot_curves(series, title=built.cfg["name"]), fig_dir / "curves.png")]
    figures += task.figures(dm, fig_dir)
    summary = {
        "recipe": built.cfg["name"],
        "model": built.cfg["model"]["name"],
        "dataset": built.cfg["data"]["name"],
        "metrics": metrics,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "train_seconds": round(train_seconds, 3),
        "params": count_params(task.model),
        "seed": built.cfg["seed"],
        "versions": versions(),
    }
    write_json(run_dir / "summary.json", summary)
    write_run_report(run_dir, summary, figures)
    return summary


# -- reopen a finished run ----------------------------------------------------------------


def load_run(run_dir: Path) -> Built:
    """Rebuild a run's data, model and task from config.yaml and model.safetensors."""
    from dlcamp.engine.config import load_yaml

    if not (run_dir / "config.yaml").exists():
        raise UsageError(f"{str(run_dir)!r} is not a run directory (no config.yaml)")
    if not (run_dir / "model.safetensors").exists():
        raise UsageError(f"{str(run_dir)!r} has no model.safetensors (the run did not finish; `dlcamp train --resume`)")
    quiet_lightning()
    built = build(resolve(load_yaml(run_dir / "config.yaml")))
    load_weights(built.task.model, run_dir / "model.safetensors")
    built.task.eval()
    return built


def evaluate_run(run_dir: Path, split: str = "test") -> dict[str, float]:
    built = load_run(run_dir)
    return built.task.evaluate(built.datamodule.split_loader(split), split)
