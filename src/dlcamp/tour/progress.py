"""Live progress of a tour: which section, which recipe, which step.

On a terminal one line is redrawn in place (rich's ``Live``) while results scroll above it::

    tour 2/5  cnn 14 s / 15 s  ·  resnet20-digits32  ·  step 120/282

In a pipe or a log there are no control codes: one plain line per section and per recipe.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any


class TourProgress:
    """Where the tour is, told to a terminal (one live line) or a log (plain lines)."""

    def __init__(self, total_sections: int, *, stream: IO[str] | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.total = total_sections
        self.index = 0
        self.section = ""
        self.budget = 0.0
        self.recipe = ""
        self.activity = ""  # "step 120/282", "validating", "testing, drawing figures"
        self._section_start = time.perf_counter()
        self._live: Any = None

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> TourProgress:
        if self.live:
            from rich.console import Console
            from rich.live import Live

            # get_renderable: the elapsed time ticks on between steps (a long evaluation)
            self._live = Live(
                get_renderable=self.render,
                console=Console(file=self.stream),
                transient=True,
                refresh_per_second=4,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- what the tour tells it -----------------------------------------------------------

    def section_start(self, name: str, budget_s: float) -> None:
        self.index += 1
        self.section, self.budget, self.recipe, self.activity = name, budget_s, "", ""
        self._section_start = time.perf_counter()
        self.print(f"tour {self.index}/{self.total}: {name} (budget {budget_s:.0f} s)")

    def section_end(self, seconds: float) -> None:
        verdict = "within" if seconds <= self.budget else "OVER"
        self.print(
            f"tour {self.index}/{self.total}: {self.section} took {seconds:.0f} s, "
            f"{verdict} its {self.budget:.0f} s budget"
        )
        self.recipe, self.activity = "", ""

    def recipe_start(self, recipe: str) -> None:
        self.recipe, self.activity = recipe, "building"

    def recipe_end(self, recipe: str, summary: dict[str, Any]) -> None:
        tests = ", ".join(f"{k} {v:.4f}" for k, v in summary["metrics"].items() if k.startswith("test/"))
        self.print(f"  {recipe}: {tests} ({summary['train_seconds']:.1f} s)")
        self.recipe, self.activity = "", ""

    def step(self, step: int, total: float) -> None:
        self.activity = f"step {step}/{int(total)}" if total != float("inf") else f"step {step}"

    def phase(self, activity: str) -> None:
        self.activity = activity

    # -- output ---------------------------------------------------------------------------

    def print(self, line: str) -> None:
        """A permanent line (above the live line on a terminal)."""
        if self._live is not None:
            self._live.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=self.stream, flush=True)

    def render(self) -> Any:
        """The live line: section and its time against budget, recipe, step."""
        from rich.text import Text

        elapsed = time.perf_counter() - self._section_start
        over = self.budget and elapsed > self.budget
        line = Text(f"tour {self.index}/{self.total}  ", style="bold")
        line.append(f"{self.section} ", style="cyan")
        line.append(f"{elapsed:.0f} s / {self.budget:.0f} s", style="red" if over else "dim")
        for part in (self.recipe, self.activity):
            if part:
                line.append(f"  ·  {part}")
        return line

    def callback(self) -> Any:
        """A Lightning callback that reports a run's steps and validation rounds here."""
        import lightning as L  # here, not at the top: listing the sections should not load Lightning

        progress = self

        class StepProgress(L.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                progress.step(trainer.global_step, trainer.estimated_stepping_batches)

            def on_validation_start(self, trainer, pl_module) -> None:
                if not trainer.sanity_checking:
                    progress.phase("validating")

            def on_train_end(self, trainer, pl_module) -> None:
                progress.phase("testing, drawing figures")

        return StepProgress()
