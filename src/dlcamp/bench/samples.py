"""``dlcamp bench digit-features``: train the shipped digits feature network again, bit for bit.

The sample metrics on digits (FID, KID, precision and recall of GAN and VAE samples) are
measured in the features of a small CNN whose weights ship with dlcamp
(``dlcamp.metrics.features``). This benchmark is how those weights were made: it trains
the recipe ``digit-features-digits32`` with seed 0, writes the weights to ``output``
(default: the shipped file itself), and reports the test accuracy on 32x32 and on native
8x8 digits (the network resizes inside), the file's SHA-256, and whether it is
bit-identical to the file that shipped. On the CPU the same seed gives the same bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from dlcamp.bench import register_benchmark
from dlcamp.bench.runs import run_root

SEED = 0


def digits_test_accuracy(model: torch.nn.Module, size: int) -> float:
    """Accuracy of a digits classifier on the 360 test digits at ``size`` x ``size``."""
    from dlcamp.data.digits import digits_arrays

    images, labels, split = digits_arrays(size)
    test = split["test"]
    x = torch.from_numpy(images[test]).view(-1, 1, size, size)  # (360, 1, size, size)
    with torch.no_grad():
        predicted = model.eval()(x).argmax(dim=1)
    return float((predicted == torch.from_numpy(labels[test])).double().mean())


@register_benchmark("digit-features")
def digit_features(*, output: str | None = None, out: str | None = None) -> dict[str, Any]:
    """Retrain the digits feature network (seed 0), write its weights, check them against the shipped file."""
    from safetensors.torch import load as load_safetensors

    from dlcamp.engine.run import resolve, train
    from dlcamp.io import write_bytes
    from dlcamp.metrics.features import RECIPE, WEIGHTS
    from dlcamp.models import get_model
    from dlcamp.recipes import get_recipe

    cfg = dict(resolve(get_recipe(RECIPE), []), seed=SEED)
    root = run_root(out, "digit-features")
    summary = train(cfg, root / f"seed{SEED}", progress="none")
    assert summary is not None  # benchmarks train in one process
    weights = (root / f"seed{SEED}" / "model.safetensors").read_bytes()
    shipped = WEIGHTS.read_bytes() if WEIGHTS.is_file() else None  # read before it may be overwritten
    identical = weights == shipped
    target = Path(output) if output else WEIGHTS
    write_bytes(target, weights)

    model = get_model("digit_features")
    model.load_state_dict(load_safetensors(weights), strict=True)
    acc8, acc32 = digits_test_accuracy(model, 8), digits_test_accuracy(model, 32)
    sha256 = hashlib.sha256(weights).hexdigest()
    # The claim is a reproducible file: a retrain that differs from the shipped one is flagged.
    ok = acc8 >= 0.97 and acc32 >= 0.97 and (identical or shipped is None)
    rows = [
        {
            "what": RECIPE,
            "seed": SEED,
            "test acc 32x32": acc32,
            "test acc 8x8": acc8,
            "train_seconds": summary["train_seconds"],
            "params": summary["params"],
            "bytes": len(weights),
        }
    ]
    verdict = "bit-identical to" if identical else ("differs from" if shipped is not None else "no file to compare:")
    notes = [
        f"sha256 {sha256}",
        f"{verdict} the shipped {WEIGHTS}",
        f"written to {target}",
    ]
    return {
        "title": "digits feature network (FID/KID features), retrained",
        "rows": rows,
        "ok": ok,
        "notes": notes,
        "sha256": sha256,
        "identical_to_shipped": identical,
        "test_acc_32": acc32,
        "test_acc_8": acc8,
        "output": str(target),
        "run_root": str(root),
    }
