"""The tour's adversarial section: a conditional GAN on digits, and mode collapse on a ring of Gaussians."""

from __future__ import annotations

from dlcamp.tour import Tour, tour_section

RING = "gan-ring8"
CGAN = "cgan-digits"
RING_FULL = ["trainer.max_epochs=8"]
RING_QUICK = ["trainer.max_epochs=3", "data.sizes=[4000,500,500]"]
CGAN_FULL = ["trainer.max_epochs=30"]


@tour_section(
    "adversarial", title="Adversarial models: GAN and conditional GAN", order=35, budget_s=25, quick_budget_s=5
)
def adversarial_section(tour: Tour) -> str:
    """GANs: a generator and a discriminator, two optimizers; mode hopping on 8 Gaussians; digits on demand."""
    from dlcamp.report.html import img_tag, table

    def metrics(summary: dict) -> dict[str, object]:
        m = summary["metrics"]
        if "test/modes" in m:
            return {"score": f"{m['test/modes']:.0f} of 8 modes, {m['test/high_quality']:.1%} within 3σ"}
        return {
            "score": f"FID {m['test/fid']:.2f} in digit-classifier features; class accuracy {m['test/class_accuracy']:.2f}"
        }

    recipes = [(RING, RING_FULL, RING_QUICK)] + ([] if tour.quick else [(CGAN, CGAN_FULL, CGAN_FULL)])
    rows = tour.rows(recipes, metrics)
    html = (
        "<p>A GAN has no likelihood: a generator G turns noise z into samples, and a discriminator D, "
        "trained beside it with an optimizer of its own, learns to tell them from real data; G learns from "
        "D's gradients to fool it (non-saturating loss). On eight Gaussians on a ring the classic failure is "
        "plain to see: the generator covers one or two modes at a time and hops between them as D catches up "
        "(mode collapse). The conditional GAN gives both players the class, so <code>dlcamp sample RUN "
        "--condition 3</code> draws threes. FID here is measured in the features of dlcamp's own digits "
        "classifier (not Inception; lower is better; 360 real training digits score 0.37 against the test "
        "digits). BENCHMARKS.md compares five losses on the ring and the grid, and GAN, DCGAN and cGAN with "
        "the VAE over three seeds.</p>"
    )
    html += table(rows)
    for recipe, _, _ in recipes:
        names = ("progress", "samples", "training") if recipe == RING else ("samples", "interpolation", "training")
        html += f"<h3>{recipe}</h3>" + "".join(
            img_tag(tour.out / recipe / "figures" / f"{n}.png", f"{recipe}: {n}") for n in names
        )
    return html
