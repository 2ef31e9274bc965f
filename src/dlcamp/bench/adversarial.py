"""``dlcamp bench gan-digits`` and ``dlcamp bench gan-toys``: GANs measured on embedded data.

``gan-digits`` trains ``gan-digits``, ``dcgan-digits32``, ``cgan-digits``, ``cdcgan-digits32`` and the
likelihood family's ``vae-digits`` with each seed, and scores 360 samples of each against
the 360 test digits in the features of dlcamp's digits classifier (``dlcamp.metrics.
features``; an FID in these features is not an Inception FID): FID, KID, precision and
recall (k = 3). The floor is 360 real training digits scored the same way. The VAE's
samples are its decoder means E[x | z], z ~ N(0, I) (grey pixel probabilities; its binary
draws are another picture). Sharpness is the mean gradient magnitude of the images
(``dlcamp.metrics.samples.sharpness``), beside the real test digits' at the same size
(resizing smooths: 32x32 digits are far less sharp per pixel than 8x8 ones). Instability is read from
the validation FID every epoch (180 samples against the 180 validation digits): its value
at each quarter of training, mean and spread over seeds. The conditional GANs' samples are
also classified: 100 per class, the classifier's accuracy on each class asked for.

``gan-toys`` trains ``gan-ring8`` and ``gan-grid25`` with every loss and seed and counts
the modes covered and the fraction of high-quality samples (2,500 samples; a mode is
covered with at least 10% of its fair share of samples within 3σ of it). WGAN-GP runs as
its paper sets it, five critic steps per generator step and Adam's betas (0.5, 0.9), at the
toys' learning rate (1e-3): it takes as many discriminator steps as the others and a fifth
of the generator steps.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Sequence

import torch

from dlcamp.bench import register_benchmark
from dlcamp.bench.runs import run_root, train_or_reuse

SEEDS = (0, 1, 2)
TOYS = ("ring8", "grid25")
GAN_RECIPES = ("gan-digits", "dcgan-digits32", "cgan-digits", "cdcgan-digits32")
CONDITIONAL = ("cgan", "cdcgan")  # models drawn class by class
VAE_RECIPE = "vae-digits"
N_SAMPLES = 360  # the test split's size
PER_CLASS = 100
# the published setting of WGAN-GP (Gulrajani et al. 2017, Algorithm 1)
# (five critic steps per generator step, Adam betas 0.5 and 0.9; the toys' learning rate)
LOSS_SETTINGS = {
    "wgan_gp": ["task.n_critic=5", "optim.generator.betas=[0.5, 0.9]", "optim.discriminator.betas=[0.5, 0.9]"]
}


def _spread(values: Sequence[float], digits: int = 3) -> str:
    """'mean ± std' over seeds (std 0 with one seed)."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _scores(images: torch.Tensor, real_feats: torch.Tensor, real_images: torch.Tensor) -> dict[str, float]:
    from dlcamp.metrics import samples as S
    from dlcamp.metrics.features import load_digit_features

    feats = load_digit_features().features(images)
    kid, _ = S.kid(feats, real_feats, subset_size=len(real_feats) // 2, generator=torch.Generator().manual_seed(0))
    precision, recall = S.precision_recall(real_feats, feats)
    return {
        "fid": S.fid(feats, real_feats),
        "kid": kid,
        "precision": precision,
        "recall": recall,
        "sharpness": S.sharpness(images),
    }


def _digits(split: str, size: int = 8) -> torch.Tensor:
    from dlcamp.data.digits import digits_arrays

    images, _, idx = digits_arrays(size)
    return torch.from_numpy(images[idx[split]]).view(-1, 1, size, size)


def _fid_trace(run_dir: Path) -> list[float]:
    from dlcamp.report.figures.common import read_metrics_csv

    return [v for _, v in read_metrics_csv(run_dir / "metrics.csv").get("val/fid", [])]


@torch.no_grad()
def _samples_of(run_dir: Path, n: int, seed: int, condition: torch.Tensor | None = None) -> torch.Tensor:
    """n samples of a finished run (GAN: the sampler; VAE: decoder means), with a fixed seed."""
    from dlcamp.engine.run import load_run
    from dlcamp.models.adversarial.base import AdversarialModel

    model = load_run(run_dir).task.model.eval()
    g = torch.Generator().manual_seed(seed)
    if isinstance(model, AdversarialModel):
        return model.sample(n, condition, generator=g)
    return model.decode_mean(torch.randn(n, model.latent_dim, generator=g))


@register_benchmark("gan-digits")
def gan_digits(
    *,
    seeds: Sequence[int] | None = None,
    recipes: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    out: str | None = None,
    reuse: bool = True,
) -> dict[str, Any]:
    """GAN, DCGAN and cGAN against the VAE and real digits: FID/KID/precision/recall in digit features."""
    seeds, recipes = list(seeds or SEEDS), list(recipes or GAN_RECIPES)
    from dlcamp.engine.run import resolve
    from dlcamp.metrics import samples as S
    from dlcamp.metrics.features import load_digit_features
    from dlcamp.recipes import get_recipe

    root = run_root(out, "gan-digits")
    net = load_digit_features()
    test = _digits("test")
    real_feats = net.features(test)
    train = _digits("train")[torch.randperm(1257, generator=torch.Generator().manual_seed(0))[:N_SAMPLES]]
    rows = [{"model": "real digits (360 train vs test): the floor", **_fmt([_scores(train, real_feats, test)])}]
    rows[0]["sharpness of real digits this size"] = f"{S.sharpness(test):.3f} (test digits)"
    traces, per_class = {}, {}
    for recipe in [*recipes, VAE_RECIPE]:
        scores, seconds = [], []
        for seed in seeds:
            cfg = dict(resolve(get_recipe(recipe), list(overrides)), seed=seed)
            run_dir = root / recipe / f"seed{seed}"
            summary = train_or_reuse(cfg, run_dir, reuse)
            seconds.append(summary["train_seconds"])
            images = _samples_of(run_dir, N_SAMPLES, seed)
            scores.append(_scores(images, real_feats, test))
            scores[-1]["sharpness of real digits this size"] = S.sharpness(_digits("test", images.shape[-1]))
            if recipe != VAE_RECIPE:
                traces.setdefault(recipe, []).append(_fid_trace(run_dir))
            if cfg["model"]["name"] in CONDITIONAL:  # the classifier's accuracy on each class asked for
                asked = torch.arange(10).repeat_interleave(PER_CLASS)
                got = net(_samples_of(run_dir, len(asked), seed, asked)).argmax(1)
                per_class.setdefault(recipe, []).append(
                    [(got[asked == k] == k).float().mean().item() for k in range(10)]
                )
        rows.append({"model": recipe, **_fmt(scores), "train s": f"{statistics.fmean(seconds):.0f}"})
    stability = []
    for recipe, runs in traces.items():
        quarters = {}
        for q in (1, 2, 3, 4):
            quarters[f"val FID at {25 * q}%"] = _spread([t[max(0, round(q * len(t) / 4) - 1)] for t in runs], 1)
        stability.append({"model": recipe, **quarters, "seeds": len(runs)})
    conditional = [
        {
            "model": recipe,
            **{str(k): _spread([acc[k] for acc in accs], 3) for k in range(10)},
            "mean": _spread([statistics.fmean(acc) for acc in accs], 3),
        }
        for recipe, accs in per_class.items()
    ]
    return {
        "title": f"GANs vs the VAE on 8x8 digits, {len(seeds)} seeds (FID etc. in dlcamp digits-classifier features, not Inception)",
        "rows": rows,
        "tables": [
            {"title": "instability: validation FID over training, mean ± std over seeds", "rows": stability},
            {"title": "conditional GAN: the classifier's accuracy on 100 samples of each class", "rows": conditional},
        ],
        "notes": [
            "FID/KID/precision/recall: 360 samples against the 360 test digits; KID x 1000 not applied (raw MMD^2)",
            "VAE samples: decoder means E(x | z); its model was trained on dynamically binarized digits",
            "cGAN goal: mean per-class accuracy >= 0.95",
        ],
    }


def _fmt(scores: list[dict[str, float]]) -> dict[str, str]:
    return {k: _spread([s[k] for s in scores], 4 if k == "kid" else 3) for k in scores[0]}


@register_benchmark("gan-toys")
def gan_toys(
    *,
    seeds: Sequence[int] | None = None,
    losses: Sequence[str] | None = None,
    toys: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    out: str | None = None,
    reuse: bool = True,
) -> dict[str, Any]:
    """Mode collapse on 8 Gaussians (ring) and 25 (grid): modes covered and high-quality fraction per loss."""
    from dlcamp.models.adversarial.losses import LOSSES

    seeds, losses, toys = list(seeds or SEEDS), list(losses or LOSSES), list(toys or TOYS)
    from dlcamp.engine.run import resolve
    from dlcamp.recipes import get_recipe

    root = run_root(out, "gan-toys")
    rows = []
    for toy in toys:
        for loss in losses:
            modes, quality, seconds = [], [], []
            for seed in seeds:
                cfg = dict(
                    resolve(get_recipe(f"gan-{toy}"), [f"task.loss={loss}", *LOSS_SETTINGS.get(loss, []), *overrides]),
                    seed=seed,
                )
                summary = train_or_reuse(cfg, root / toy / loss / f"seed{seed}", reuse)
                modes.append(summary["metrics"]["test/modes"])
                quality.append(summary["metrics"]["test/high_quality"])
                seconds.append(summary["train_seconds"])
            rows.append(
                {
                    "data": toy,
                    "loss": loss,
                    "modes covered": _spread(modes, 1),
                    "per seed": ", ".join(f"{m:.0f}" for m in modes),
                    "high quality": _spread(quality, 3),
                    "train s": f"{statistics.fmean(seconds):.0f}",
                }
            )
    return {"title": f"GAN losses on 2-D mixtures, {len(seeds)} seeds", "rows": rows}
