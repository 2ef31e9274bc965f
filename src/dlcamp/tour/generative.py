"""The tour's likelihood section: NADE, PixelCNN, PixelRNN and the VAE on binarized digits, NLL in nats."""

from __future__ import annotations

from dlcamp.tour import Tour, tour_section

# The likelihood week: (recipe, epochs in the tour, epochs in the quick tour). The tour's
# budgets are short; BENCHMARKS.md has each recipe at its full budget.
GENERATIVE_TOUR = [
    ("bernoulli-digits", 30, 3),
    ("nade-digits", 25, 2),
    ("pixelcnn-digits", 20, 2),
    ("pixelrnn-digits", 6, 1),
    ("vae-digits", 100, 5),
    ("cvae-digits", 60, 5),
]
# Figures beyond the samples, per recipe.
EXTRA_FIGURES = [
    ("nade-digits", ("completions",)),
    ("vae-digits", ("sample_means", "reconstructions", "latent_traversal")),
    ("cvae-digits", ("latent_map", "latent_traversal")),
]


@tour_section(
    "generative", title="Likelihood models: NADE, PixelCNN, PixelRNN, VAE", order=30, budget_s=60, quick_budget_s=20
)
def generative_section(tour: Tour) -> str:
    """Likelihood models on binarized digits: NLL in nats side by side, samples of each, the VAE's latent space."""
    from dlcamp.engine.run import resolve
    from dlcamp.recipes import get_recipe
    from dlcamp.report.html import img_tag, table

    rows, samples = [], []
    for recipe, epochs, quick_epochs in GENERATIVE_TOUR:
        n = quick_epochs if tour.quick else epochs
        summary = tour.train(recipe, [f"trainer.max_epochs={n}"])
        cfg = resolve(get_recipe(recipe))
        m = summary["metrics"]
        rows.append(
            {
                "model": summary["model"],
                "recipe": recipe,
                "trained here": f"{n} epochs, {summary['train_seconds']:.0f} s",
                "test NLL (nats)": round(m["test/nll_nats"], 2),
                "bits/dim": round(m["test/bpd"], 4),
                "ELBO terms (recon + KL)": (
                    f"{m['test/recon_nats']:.2f} + {m['test/kl_nats']:.2f}" if "test/kl_nats" in m else "—"
                ),
                "params": f"{summary['params']:,}",
                "full recipe measured": (cfg.get("expect") or {}).get("measured") or "—",
            }
        )
        samples.append(img_tag(tour.out / recipe / "figures" / "samples.png", f"samples: {recipe}"))
    html = (
        "<p>Explicit densities over 8×8 binary digits (dynamic binarization; every model scored on the "
        "same fixed draw of the 360 test digits). The chain rule makes NADE, PixelCNN and PixelRNN exact; "
        "the VAE's NLL is its importance-weighted bound with 500 samples. Lower is better; 64 ln 2 = 44.36 "
        "nats is a coin flip per pixel.</p>"
    )
    html += table(rows)
    html += "<h3>Samples</h3>" + "".join(samples)
    for recipe, names in EXTRA_FIGURES:
        html += f"<h3>{recipe}</h3>" + "".join(
            img_tag(tour.out / recipe / "figures" / f"{n}.png", f"{recipe}: {n}") for n in names
        )
    return html
