"""``dlcamp tour``: one quick recipe per family on embedded data, one report.

Each family's section is a module of this package (``mlp.py``, ``cnn.py``, ...) or of an
installed plug-in (entry-point group ``dlcamp.plugins``). The module registers its section
with ``@tour_section``, giving its place in the curriculum and its time budgets, and the
runner finds it: adding a family adds a module and edits nothing here::

    from dlcamp.tour import Tour, tour_section

    @tour_section("toy", title="Toy models", order=35, budget_s=30, quick_budget_s=8)
    def toy_section(tour: Tour) -> str:
        \"\"\"Toy models on toy data.\"\"\"
        summary = tour.train("toy-digits", ["trainer.max_epochs=2"] if tour.quick else [])
        return "<p>What the toy teaches.</p>" + run_section(summary, tour.figures("toy-digits"))

The report opens with a table of contents linking every section, each with the seconds it
took against its budget; ``tour.json`` holds the same timings for programs.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from dlcamp.registry import Registry, first_line
from dlcamp.tour.progress import TourProgress

MARKER = ".dlcamp-tour"  # marks a directory the tour may replace


@dataclass(frozen=True)
class Section:
    """A family's part of the tour: what it shows, where it stands, how long it may take."""

    name: str  # what `--only` takes, and the report's anchor (report.html#cnn)
    title: str  # the heading in the report
    order: int  # place in the curriculum: sections run and appear by it (mlp 10, cnn 20, ...)
    budget_s: float  # seconds it may take in the full tour on a quiet 2-core machine
    quick_budget_s: float  # the same in `--quick`
    render: Callable[[Tour], str]  # trains what it needs, returns the section's HTML

    def budget(self, quick: bool) -> float:
        return self.quick_budget_s if quick else self.budget_s

    def __call__(self, tour: Tour) -> str:
        return self.render(tour)


SECTIONS: Registry = Registry("section")  # `dlcamp list sections`


def tour_section(
    name: str, *, title: str, order: int, budget_s: float, quick_budget_s: float
) -> Callable[[Callable[[Tour], str]], Callable[[Tour], str]]:
    """Decorator: register ``fn(tour) -> html`` as the tour section ``name``.

    The section's one-line description (``dlcamp list sections``) is the first line of
    ``fn``'s docstring. Budgets are what the section may take on a quiet 2-core machine;
    the report sets each section's time against them (nothing is cut short).
    """
    if budget_s <= 0 or quick_budget_s <= 0:
        raise ValueError(
            f"tour section {name!r}: budgets must be positive seconds, "
            f"got budget_s={budget_s}, quick_budget_s={quick_budget_s}"
        )

    def decorator(fn: Callable[[Tour], str]) -> Callable[[Tour], str]:
        section = Section(name, title, order, budget_s, quick_budget_s, fn)
        SECTIONS.register(name, description=first_line(fn.__doc__))(section)
        return fn

    return decorator


def load_sections() -> list[Section]:
    """Every section, this package's modules and installed plug-ins alike, in curriculum order."""
    from dlcamp.registry import import_package

    import_package(__name__)
    return sorted((SECTIONS.builder(n) for n in SECTIONS.names()), key=lambda s: (s.order, s.name))


def list_sections() -> dict[str, str]:
    """Section name -> one-line description, in curriculum order."""
    sections = load_sections()
    descriptions = SECTIONS.describe()
    return {s.name: descriptions[s.name] for s in sections}


def select_sections(only: Sequence[str] | None = None) -> list[Section]:
    """The sections named in ``only`` (every one when None), in curriculum order; unknown names refused."""
    sections = load_sections()
    if not only:
        return sections
    wanted = {SECTIONS.builder(name).name for name in only}  # UnknownNameError suggests close names
    return [s for s in sections if s.name in wanted]


@dataclass
class Tour:
    """What a section is given: the tour's folder, whether it is quick, and a way to train a recipe."""

    out: Path
    quick: bool
    progress: TourProgress

    def train(self, recipe: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
        """Train a registered recipe into ``out/RECIPE`` with ``overrides``; its summary."""
        from dlcamp.engine.run import resolve, train
        from dlcamp.recipes import get_recipe

        cfg = resolve(get_recipe(recipe), list(overrides))
        self.progress.recipe_start(recipe)
        summary = train(cfg, self.out / recipe, progress="none", callbacks=[self.progress.callback()])
        assert summary is not None  # the tour trains in one process
        self.progress.recipe_end(recipe, summary)
        return summary

    def rows(
        self, recipes: Sequence[tuple[str, Sequence[str], Sequence[str]]], metrics: Callable[[dict], dict]
    ) -> list[dict]:
        """Train each (recipe, overrides, quick overrides); one table row each.

        A row: the recipe, its model, what was trained here, the section's ``metrics(summary)``
        columns, and what the full recipe measured (its ``expect`` block).
        """
        from dlcamp.engine.run import resolve
        from dlcamp.recipes import get_recipe

        rows = []
        for recipe, overrides, quick_overrides in recipes:
            summary = self.train(recipe, quick_overrides if self.quick else overrides)
            measured = (resolve(get_recipe(recipe)).get("expect") or {}).get("measured") or "—"
            rows.append(
                {
                    "recipe": recipe,
                    "model": summary["model"],
                    "trained here": f"{summary['steps']} steps, {summary['train_seconds']:.0f} s",
                    **metrics(summary),
                    "full recipe measured": measured,
                }
            )
        return rows

    def figures(self, recipe: str) -> list[Path]:
        """The PNG figures a recipe trained here wrote, by name."""
        return sorted((self.out / recipe / "figures").glob("*.png"))


def run_tour(out: Path, *, quick: bool = False, only: Sequence[str] | None = None, live: bool | None = None) -> Path:
    """Run every section (or those in ``only``) into ``out``; write ``out/report.html`` and ``out/tour.json``.

    ``live``: redraw one progress line in place (default: when standard output is a terminal).
    """
    from dlcamp.errors import UsageError
    from dlcamp.io import write_json, write_text
    from dlcamp.report.html import Part, page

    sections = select_sections(only)  # names checked before anything is removed
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise UsageError(f"{str(out)!r} exists and is not a tour directory; choose another -o")
        shutil.rmtree(out)  # a tour is always a fresh run of everything
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).touch()

    parts, timings = [], []
    t0 = time.perf_counter()
    with TourProgress(len(sections), live=live) as progress:
        tour = Tour(out, quick, progress)
        for section in sections:
            budget = section.budget(quick)
            progress.section_start(section.name, budget)
            start = time.perf_counter()
            inner = section(tour)
            seconds = time.perf_counter() - start
            progress.section_end(seconds)
            timings.append(
                {
                    "name": section.name,
                    "title": section.title,
                    "order": section.order,
                    "seconds": round(seconds, 1),
                    "budget_s": budget,
                    "within_budget": seconds <= budget,
                }
            )
            note = f"{seconds:.0f} s of a {budget:.0f} s budget" + ("" if seconds <= budget else ": over budget")
            parts.append(Part(section.title, inner, anchor=section.name, note=note))
    seconds = time.perf_counter() - t0
    budget = sum(t["budget_s"] for t in timings)
    write_json(
        out / "tour.json", {"quick": quick, "seconds": round(seconds, 1), "budget_s": budget, "sections": timings}
    )
    path = out / "report.html"
    write_text(
        path,
        page(
            "dlcamp tour",
            parts,
            subtitle=f"{'quick ' if quick else ''}tour, {seconds:.0f} s on "
            f"this machine against a budget of {budget:.0f} s",
        ),
    )
    return path
