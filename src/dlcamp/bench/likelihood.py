"""``dlcamp bench likelihood``: the likelihood models side by side, test NLL in nats.

Each recipe (baseline, NADE, PixelCNN, PixelRNN, VAE on dynamically binarized 8×8 digits)
is trained once with its own budget, and scored on the same fixed draw of the 360 test
digits (the draw of epoch 0 for seed 0: see ``dlcamp.data.digits``). Three references
frame the table, computed in closed form in the same run on the same images:

- *coin flips*: every pixel 1/2, D ln 2 nats (the worst a sensible model can do);
- *independent Bernoulli, closed-form MLE*: each pixel's mean intensity on the training
  images (the maximum-likelihood fit of the baseline under dynamic binarization, with
  add-one smoothing); the trained ``bernoulli`` recipe should land on it;
- *oracle floor*: a model told each test image's grey levels, so that its only
  uncertainty is the binarizing draw itself (sum of the pixels' Bernoulli entropies).
  The data's true distribution is a mixture of those per-image products, whose entropy
  is at least the mean entropy of its components: no model's expected NLL is below it.

For the VAE the rows also show its bounds on the same test images: the negative ELBO and
the IWAE estimate with k = 1, 5, 50 and 500 samples (tightening towards -log p(x)).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from dlcamp.bench import register_benchmark
from dlcamp.bench.runs import run_root

RECIPES = ["bernoulli-digits", "nade-digits", "pixelcnn-digits", "pixelrnn-digits", "vae-digits"]
BUDGET_SECONDS = 600  # the bound for each model on 2 CPU cores
IWAE_KS = (1, 5, 50, 500)


def _references(built) -> list[dict[str, Any]]:
    """Closed-form rows on the same test images as the trained models."""
    dm = built.datamodule
    dm.setup("test")

    def raw(split: str) -> torch.Tensor:  # grey levels, before the binarizing draw
        base = dm.splits[split].base
        return torch.stack([base[i][0] for i in range(len(base))]).double()

    intensities, test_grey = raw("train"), raw("test")
    test_x = torch.cat([x for x, _ in dm.split_loader("test")]).double()  # the draw every model is scored on
    d = test_x[0].numel()
    n = len(intensities)
    p = ((intensities.double().mean(0) * n + 1) / (n + 2)).clamp(1e-6, 1 - 1e-6)
    mle = -(test_x * p.log() + (1 - test_x) * (1 - p).log()).flatten(1).sum(1).mean().item()
    rows = [
        {"model": "reference: coin flips (every pixel 1/2)", "test NLL (nats)": d * math.log(2)},
        {"model": "reference: independent Bernoulli, closed-form MLE", "test NLL (nats)": mle},
    ]
    q = test_grey.clamp(1e-12, 1 - 1e-12)
    entropy = -(q * q.log() + (1 - q) * (1 - q).log()).flatten(1).sum(1).mean().item()
    rows.append({"model": "reference: oracle floor (knows each test image's grey levels)", "test NLL (nats)": entropy})
    for r in rows:
        r["bits/dim"] = r["test NLL (nats)"] / (d * math.log(2))
    return rows


@register_benchmark("likelihood")
def likelihood(
    *, recipes: list[str] | None = None, overrides: list[str] | None = None, out: str | None = None
) -> dict[str, Any]:
    """Baseline, NADE, PixelCNN, PixelRNN and VAE (IWAE k=500) on binarized digits: test NLL in nats, one table."""
    from dlcamp.engine.run import build, load_run, resolve, train
    from dlcamp.recipes import get_recipe

    names = recipes or RECIPES
    cfgs = {name: resolve(get_recipe(name), overrides or []) for name in names}  # all checked before training
    root = run_root(out, "likelihood")
    rows = _references(build(cfgs[names[0]]))
    notes, ok = [], True
    for name, cfg in cfgs.items():
        summary = train(cfg, root / name, progress="none")
        assert summary is not None
        m = summary["metrics"]
        row = {
            "model": f"{cfg['model']['name']} ({name})",
            "test NLL (nats)": m["test/nll_nats"],
            "bits/dim": m["test/bpd"],
            "train s": summary["train_seconds"],
            "epochs": summary["epochs"],
            "params": summary["params"],
        }
        rows.append(row)
        within = summary["train_seconds"] <= BUDGET_SECONDS
        ok &= within
        exp = cfg.get("expect")
        if exp:
            from dlcamp.bench.recipes import OPS

            met = OPS[exp["op"]](m[exp["metric"]], exp["value"])
            ok &= met
            notes.append(
                f"{name}: expect {exp['metric']} {exp['op']} {exp['value']}: {m[exp['metric']]:.3f} "
                f"in {summary['train_seconds']:.0f} s -> {'PASS' if met and within else 'FAIL'}"
            )
        if "test/elbo_nats" in m:  # the VAE's bounds on the same images
            built = load_run(root / name)
            model = built.task.model
            x, y = zip(*built.datamodule.split_loader("test"))
            x_all, y_all = torch.cat(x), torch.cat(y)
            cond = y_all if model.conditional else None
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                rows.append(
                    {
                        "model": "  its negative ELBO (recon + KL)",
                        "test NLL (nats)": m["test/elbo_nats"],
                        "bits/dim": m["test/elbo_nats"] / (model.num_dims * math.log(2)),
                    }
                )
                for k in IWAE_KS:
                    nll = -model.iwae(x_all, k, cond).mean().item()
                    rows.append(
                        {
                            "model": f"  its IWAE bound, k={k}",
                            "test NLL (nats)": nll,
                            "bits/dim": nll / (model.num_dims * math.log(2)),
                        }
                    )
    return {
        "title": "likelihood models on dynamically binarized digits (8x8, 360 test images)",
        "rows": rows,
        "ok": bool(ok),
        "notes": notes,
        "run_root": str(root),
    }
