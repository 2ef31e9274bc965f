"""The ``dlcamp`` command: list, train, eval, predict, sample, params, tour, bench, data.

A usage error (unknown name, bad value, missing file) prints one line saying what is wrong
and what would be right, and exits with status 2, with no traceback. A failure during
training keeps the last good checkpoint, says what happened and exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from dlcamp.errors import TrainingFailed, UsageError

LISTABLE = ("models", "datasets", "recipes", "optimizers", "tasks", "benchmarks", "sections")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + error; we print one line
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dlcamp", description="The deep-learning curriculum made runnable.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("list", help="what exists, one line each")
    s.add_argument("what", nargs="?", default="all", choices=("all",) + LISTABLE)

    s = sub.add_parser("train", help="train a recipe into a run directory")
    s.add_argument("recipe", help="a registered recipe name or a YAML path")
    s.add_argument("-o", "--output", type=Path, help="run directory (default runs/RECIPE-TIMESTAMP)")
    s.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field, e.g. --set optim.lr=0.01 (repeatable)",
    )
    s.add_argument("--resume", action="store_true", help="continue the run in -o from its last checkpoint")
    s.add_argument("--devices", type=int, help="processes/GPUs (>1 runs DDP); same as --set trainer.devices=N")
    s.add_argument("--progress", choices=("auto", "rich", "plain", "none"), default="auto")

    s = sub.add_parser("eval", help="re-evaluate a finished run")
    s.add_argument("run_dir", type=Path)
    s.add_argument("--split", default="test", choices=("train", "val", "test"))

    s = sub.add_parser("predict", help="predict on input files with a finished run")
    s.add_argument("run_dir", type=Path)
    s.add_argument("inputs", nargs="+", type=Path)
    s.add_argument("-o", "--output", type=Path, help="output file (default: CSV on standard output)")

    s = sub.add_parser("sample", help="draw samples from a finished generative run into an image grid")
    s.add_argument("run_dir", type=Path)
    s.add_argument("-n", type=int, default=64, help="how many samples (default 64)")
    s.add_argument("-o", "--output", type=Path, default=Path("samples.png"), help="PNG grid (default samples.png)")
    s.add_argument("--seed", type=int, default=0, help="random seed of the draw (default 0)")
    s.add_argument(
        "--condition",
        metavar="CLASS[,CLASS...]",
        help="class(es) for a conditional model, cycled over the n samples (default: every class in turn)",
    )

    s = sub.add_parser("params", help="per-layer output shape, parameters and multiply-adds of a model")
    s.add_argument("model", nargs="?", help="a registered model (or use --compare)")
    s.add_argument(
        "--compare",
        nargs="+",
        metavar="NAME",
        help="side by side: toy configurations (conv5x5, conv3x3x2, bottleneck, ...) or models",
    )
    s.add_argument("--input", help="input shape CxHxW (default: the model's own)")
    s.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a builder argument, e.g. --set depth=3",
    )
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")

    s = sub.add_parser("tour", help="train one quick recipe per family on embedded data and write one report")
    s.add_argument("--quick", action="store_true", help="shorter budgets (for a smoke run)")
    s.add_argument("-o", "--output", type=Path, default=Path("runs/tour"))
    s.add_argument(
        "--only",
        "--sections",
        dest="only",
        action="append",
        metavar="SECTION[,SECTION]",
        help="only these sections, e.g. --only mlp,cnn (default: all; `dlcamp list sections`)",
    )

    s = sub.add_parser("data", help="dataset tools: `data export NAME -o DIR` writes a generated dataset to disk")
    s.add_argument("action", choices=("export",), help="export: write a generated dataset in its standard format")
    s.add_argument("dataset", help="a generated dataset, e.g. shapes (written as COCO)")
    s.add_argument("-o", "--output", type=Path, required=True, help="folder that receives one sub-folder per split")
    s.add_argument("--split", default="all", choices=("train", "val", "test", "all"), help="which split (default all)")
    s.add_argument("-n", type=int, help="at most this many items per split (default: the split's size)")
    s.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a knob of the dataset builder, e.g. --set image_size=64 (repeatable)",
    )

    s = sub.add_parser("bench", help="a benchmark, measured against its reference in the same run")
    s.add_argument("name", help="a benchmark name (`dlcamp list benchmarks`) or recipe:NAME")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--json", type=Path, help="also write the results as JSON here")
    return p


def _kv(items: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` pairs for builder and benchmark arguments (values parsed as in recipes)."""
    from dlcamp.engine.config import parse_value

    out = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--set takes key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_value(v)
    return out


def cmd_list(args) -> int:
    from dlcamp.bench import list_benchmarks
    from dlcamp.data import list_datasets
    from dlcamp.models import list_models
    from dlcamp.optim import list_optimizers
    from dlcamp.recipes import list_recipes
    from dlcamp.tasks import list_tasks
    from dlcamp.tour import list_sections

    tables = {
        "models": list_models,
        "datasets": list_datasets,
        "recipes": list_recipes,
        "optimizers": list_optimizers,
        "tasks": list_tasks,
        "benchmarks": list_benchmarks,
        "sections": list_sections,
    }
    for what in LISTABLE if args.what == "all" else (args.what,):
        if args.what == "all":
            print(f"{what}:")
        entries = tables[what]()
        width = max((len(k) for k in entries), default=0)
        for name, desc in entries.items():
            print(f"{'  ' if args.what == 'all' else ''}{name:<{width}}  {desc}")
    return 0


def cmd_train(args) -> int:
    from dlcamp.engine.config import load_yaml
    from dlcamp.engine.run import resolve, train
    from dlcamp.recipes import get_recipe

    overrides = list(args.overrides) + ([f"trainer.devices={args.devices}"] if args.devices else [])
    if args.resume:
        if args.output is None:
            raise UsageError("--resume needs -o RUN_DIR (the run to continue)")
        if not (args.output / "config.yaml").exists():
            raise UsageError(f"cannot resume: {args.output / 'config.yaml'} does not exist")
        saved = load_yaml(args.output / "config.yaml")
        if saved.get("name") not in (args.recipe, Path(args.recipe).stem):
            raise UsageError(f"{str(args.output)!r} was trained with recipe {saved.get('name')!r}, not {args.recipe!r}")
        cfg = resolve(saved, overrides)
    else:
        cfg = resolve(get_recipe(args.recipe), overrides)
    run_dir = args.output or Path(
        os.environ.get("DLCAMP_RUN_DIR") or f"runs/{cfg['name']}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    os.environ["DLCAMP_RUN_DIR"] = str(run_dir)  # DDP processes re-run this command: same directory
    summary = train(cfg, run_dir, resume=args.resume, progress=args.progress)
    if summary is not None:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in summary["metrics"].items())
        print(f"{cfg['name']}: {shown} ({summary['train_seconds']:.1f} s training) -> {run_dir}")
    return 0


def cmd_eval(args) -> int:
    from dlcamp.engine.run import evaluate_run

    metrics = evaluate_run(args.run_dir, args.split)
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_predict(args) -> int:
    from dlcamp.engine.run import load_run

    for path in args.inputs:
        if not path.is_file():
            raise UsageError(f"input file {str(path)!r} does not exist")
    built = load_run(args.run_dir)
    built.task.predict_files(args.inputs, built.datamodule, args.output)
    return 0


MAX_SAMPLES = 1024


def cmd_sample(args) -> int:
    import torch

    from dlcamp.engine.run import load_run
    from dlcamp.report import figures as F
    from dlcamp.tasks.base import ImageSampler

    if not 1 <= args.n <= MAX_SAMPLES:
        raise UsageError(f"-n must be between 1 and {MAX_SAMPLES}, got {args.n}")
    if args.output.suffix.lower() != ".png":
        raise UsageError(f"-o must name a .png file, got {str(args.output)!r}")
    built = load_run(args.run_dir)
    task = built.task
    if not isinstance(task, ImageSampler):
        raise UsageError(
            f"{str(args.run_dir)!r} is a {built.cfg['task']['name']!r} run; "
            "`dlcamp sample` needs a generative model (task: likelihood or adversarial)"
        )
    condition = None
    if args.condition is not None:
        if not task.conditional:
            raise UsageError(
                f"--condition: the model of {str(args.run_dir)!r} ({built.cfg['model']['name']}) is not conditional"
            )
        names = task.class_names
        try:
            classes = [int(c) if c.strip().isdigit() else names.index(c.strip()) for c in args.condition.split(",")]
        except ValueError:
            raise UsageError(
                f"--condition takes class indices or names ({', '.join(names)}), got {args.condition!r}"
            ) from None
        if any(not 0 <= c < len(names) for c in classes):
            raise UsageError(f"--condition classes must be in 0..{len(names) - 1}, got {args.condition!r}")
        condition = torch.tensor(classes)[torch.arange(args.n) % len(classes)]
    torch.manual_seed(args.seed)
    images, titles = task.sample_images(args.n, condition)
    F.save(
        F.plot_image_grid(images, titles, suptitle=f"{args.n} samples, {built.cfg['model']['name']}, seed {args.seed}"),
        args.output,
    )
    print(f"{args.n} samples -> {args.output}")
    return 0


def cmd_params(args) -> int:
    from dlcamp.metrics.complexity import print_table, profile_model

    shape = None
    if args.input:
        try:
            shape = tuple(int(d) for d in args.input.lower().split("x"))
        except ValueError:
            raise UsageError(f"--input must look like CxHxW (e.g. 3x224x224), got {args.input!r}") from None
    if args.compare:
        from dlcamp.metrics.comparisons import compare, print_comparison

        if args.model is not None:
            raise UsageError(f"give a MODEL or --compare NAME NAME ..., not both (got {args.model!r} and --compare)")
        if args.overrides:
            raise UsageError("--set applies to a single MODEL, not to --compare")
        result = compare(args.compare, shape)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print_comparison(result)
        return 0
    if args.model is None:
        raise UsageError("params needs a MODEL or --compare NAME NAME ... (e.g. --compare conv5x5 conv3x3x2)")
    report = profile_model(args.model, _kv(args.overrides), shape)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


def cmd_tour(args) -> int:
    from dlcamp.tour import run_tour

    only = [name.strip() for item in args.only or [] for name in item.split(",") if name.strip()]
    if args.only and not only:
        raise UsageError("--only takes section names, e.g. --only mlp,cnn (`dlcamp list sections`)")
    path = run_tour(args.output, quick=args.quick, only=only or None)
    print(f"tour report -> {path}")
    return 0


def cmd_bench(args) -> int:
    from dlcamp.bench import run_benchmark
    from dlcamp.bench.report import print_result
    from dlcamp.io import write_json

    kwargs = _kv(args.overrides)
    if args.name.startswith("recipe:"):
        result = run_benchmark("recipe", recipe=args.name.split(":", 1)[1], **kwargs)
    else:
        result = run_benchmark(args.name, **kwargs)
    print_result(result)
    if args.json:
        write_json(args.json, result)
    return 0 if result.get("ok", True) else 1


def cmd_data(args) -> int:
    from dlcamp.data import get_dataset
    from dlcamp.data.contracts import Exportable

    if args.n is not None and args.n < 1:
        raise UsageError(f"-n must be a positive integer, got {args.n}")
    data = get_dataset(args.dataset, **_kv(args.overrides))  # checks the name, the knobs and their values
    if not isinstance(data, Exportable):
        exportable = ", ".join(exportable_datasets()) or "none is registered"
        raise UsageError(f"`dlcamp data export` writes generated datasets only ({exportable}), got {args.dataset!r}")
    splits = ("train", "val", "test") if args.split == "all" else (args.split,)
    for split in splits:  # refuse before writing anything, not after the first split
        folder = args.output / split
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise UsageError(f"{folder} already exists and is not empty; choose another -o or remove it")
    for split in splits:
        n = data.sizes[split] if args.n is None else min(args.n, data.sizes[split])
        folder = data.export(args.output, split, n)
        print(f"{split}: {n} items -> {folder}")
    return 0


def exportable_datasets() -> list[str]:
    """Registered datasets whose data module is ``Exportable`` (the class its builder returns says so)."""
    import inspect
    import typing

    from dlcamp.data import DATASETS, list_datasets
    from dlcamp.data.contracts import Exportable

    names = []
    for name in list_datasets():
        try:
            returns = typing.get_type_hints(DATASETS.builder(name)).get("return")
        except NameError:  # an annotation that does not resolve: the builder does not say
            continue
        if inspect.isclass(returns) and issubclass(returns, Exportable):
            names.append(name)
    return names


COMMANDS = {
    "list": cmd_list,
    "train": cmd_train,
    "eval": cmd_eval,
    "predict": cmd_predict,
    "sample": cmd_sample,
    "params": cmd_params,
    "tour": cmd_tour,
    "bench": cmd_bench,
    "data": cmd_data,
}


def one_line(error: Exception) -> str:
    """The user's line of an error: an error raised in a DataLoader worker comes back as "Caught X in
    DataLoader worker process N." and the worker's traceback, whose last line holds the message."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    lines = text.splitlines()
    if lines[0].startswith("Caught ") and "Original Traceback" in text:
        last = lines[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return lines[0]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as e:
        print(f"dlcamp: error: {one_line(e)}", file=sys.stderr)
        return 2
    except TrainingFailed as e:
        print(f"dlcamp: training failed: {str(e).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "dlcamp: interrupted; the last checkpoint is kept (`dlcamp train RECIPE -o RUN_DIR --resume`)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
