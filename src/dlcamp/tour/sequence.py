"""The tour's sequence section: dates with and without attention, the Reber grammar, a character Transformer."""

from __future__ import annotations

from dlcamp.tour import Tour, tour_section

# The quick tour scores dates on 200 test and 100 validation examples: greedy and beam
# decoding of the default 1,000 + 1,000 took most of the section's time.
DATES_QUICK = ["trainer.limit_train_batches=40", "data.n_test=200", "data.n_val=100"]
# The sequence week: (recipe, overrides in the tour, overrides in the quick tour).
SEQUENCE_TOUR = [
    ("gru-attention-dates", ["trainer.max_epochs=1"], ["trainer.max_epochs=1", *DATES_QUICK]),
    ("gru-dates", ["trainer.max_epochs=1"], ["trainer.max_epochs=1", *DATES_QUICK]),
    (
        "lstm-reber",
        ["trainer.max_epochs=6", "data.min_length=10", "data.max_length=20"],
        ["trainer.max_epochs=1", "data.min_length=10", "data.max_length=20"],
    ),
    ("transformer-stdlib", ["trainer.max_steps=80"], ["trainer.max_steps=10"]),
]


@tour_section(
    "sequence",
    title="Sequence models: RNN, LSTM, GRU, attention, Transformers",
    order=40,
    budget_s=55,
    quick_budget_s=21,
)
def sequence_section(tour: Tour) -> str:
    """Sequence models: date normalisation with attention, the Reber grammar, a character LM's samples."""
    from dlcamp.report.html import img_tag, table

    def metrics(summary: dict) -> dict[str, str]:
        test = {k.removeprefix("test/"): round(v, 4) for k, v in summary["metrics"].items() if k.startswith("test/")}
        return {"data": summary["dataset"], "test metrics": ", ".join(f"{k} {v}" for k, v in test.items())}

    rows = tour.rows(SEQUENCE_TOUR, metrics)
    figures = [p for recipe, _, _ in SEQUENCE_TOUR for p in tour.figures(recipe) if p.stem != "curves"]
    html = (
        "<p>Sequence models on data generated here: dates written in many forms normalised to ISO by a "
        "GRU encoder–decoder with attention and by the same GRU without it, at the same budget (the attention "
        "map shows which source characters each output character read; without attention the whole date "
        "must pass through one state vector); the embedded Reber grammar, where an LSTM must carry one symbol "
        "across the string; and a character-level Transformer on the Python standard library's own source, "
        "its samples and its causal self-attention. The tour's budgets are short; BENCHMARKS.md has each "
        "recipe at its full budget, the Transformer translating dates included.</p>"
    )
    html += table(rows) + "".join(img_tag(p, f"{p.parent.parent.name}: {p.stem}") for p in figures)
    return html
