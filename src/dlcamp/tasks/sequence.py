"""Sequence tasks: character language modelling, sequence-to-sequence, sequence classification.

``language_model``: next-token cross-entropy over every position of a window; logged in
nats (``loss``) and bits per character (``bpc`` = loss / ln 2, the unit of the char-LM
literature); ``ppl`` = e^loss. A ``CountingModel`` (the n-gram baseline) is "trained" by
counting: its training step calls ``model.observe`` and no optimizer runs. Figures:
samples at each of ``sample_temperatures`` (dividing the logits by T < 1 sharpens the
distribution towards the likeliest characters, T > 1 flattens it) and, for a
``TokenAttentionMapper`` (the Transformer), the self-attention map of a validation window.

``seq2seq``: teacher-forced cross-entropy on the target (PAD ignored); final metrics
``token_acc`` (teacher-forced), ``exact_match`` (greedy decoding, the whole output right
including its end) and ``exact_match_beam`` (beam search, ``beam_size`` > 1). Figures:
decoded examples (mistakes first) and the attention maps (``Seq2Seq.attention_maps``) of a
validation example.

``sequence_classification``: the classification task on token sequences (cross-entropy,
``acc``); figures: the confusion matrix and accuracy by sequence length (the
long-range-dependency question: does accuracy fall as the sequence grows?), and for a
``TokenAttentionMapper`` the self-attention map of a test sequence.

Each task needs text data (``dlcamp.data.contracts.TextData``; seq2seq:
``Seq2SeqData``) and checks its model's contract when it is built.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp.data.contracts import Seq2SeqData, TextData
from dlcamp.errors import UsageError
from dlcamp.models.sequence.contracts import CountingModel, TokenAttentionMapper
from dlcamp.models.sequence.language import LanguageModel
from dlcamp.models.sequence.seq2seq import Seq2Seq
from dlcamp.registry import forwards
from dlcamp.tasks import register_task
from dlcamp.tasks.base import Task, evaluating
from dlcamp.tasks.classification import ClassificationTask
from dlcamp.tasks.decoding import BOS, PAD, beam_search, greedy_decode

LN2 = math.log(2)
SAMPLE_SEED = 0


def _token_loss(
    logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy over (B, T, V) logits and (B, T) targets, PAD positions ignored."""
    return F.cross_entropy(
        logits.flatten(0, 1).float(),
        target.flatten(),
        ignore_index=PAD,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )


# -- language model -----------------------------------------------------------------------


class LanguageModelTask(Task):
    """Next-token prediction for a ``LanguageModel``; a ``CountingModel`` is fitted by counting."""

    def __init__(
        self,
        model: LanguageModel,
        *,
        vocab: Any,
        sample_temperatures: Sequence[float] = (0.5, 1.0),
        sample_length: int = 300,
        prompt: str = "",
    ) -> None:
        if any(t <= 0 for t in sample_temperatures):
            raise ValueError(f"task.sample_temperatures must be > 0, got {list(sample_temperatures)}")
        if sample_length < 1:
            raise ValueError(f"task.sample_length must be >= 1, got {sample_length}")
        super().__init__(model)
        self.vocab = vocab
        self.count_based = isinstance(model, CountingModel)
        self.sample_temperatures = [float(t) for t in sample_temperatures]
        self.sample_length, self.prompt = int(sample_length), prompt

    def on_fit_start(self) -> None:
        if self.count_based and self.trainer.world_size > 1:
            raise UsageError("a count-based model (ngram) is fitted in one process; set trainer.devices=1")

    def configure_optimizers(self):
        if self.count_based:
            return None  # counting needs no optimizer
        return super().configure_optimizers()

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.count_based:
            # Count the training text once: Witten-Bell is not scale-invariant, so counting
            # it again each epoch would change the smoothing, not add information.
            if self.current_epoch == 0:
                self.model.observe(x, y)
            return None
        loss = _token_loss(self.model(x), y)
        self.check_finite(loss)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(x))
        self.log("train/bpc", loss / LN2, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

    def on_train_epoch_end(self) -> None:
        if self.count_based:
            self.model.finalize()

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = _token_loss(self.model(x), y)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(x), sync_dist=True)
        self.log("val/bpc", loss / LN2, on_epoch=True, prog_bar=True, batch_size=len(x), sync_dist=True)

    @torch.no_grad()
    def evaluate(self, loader, prefix: str) -> dict[str, float]:
        total, count = 0.0, 0
        with evaluating(self):
            for x, y in loader:
                x, y = x.to(self.device), y.to(self.device)
                total += _token_loss(self.model(x), y, reduction="sum").item()
                count += int((y != PAD).sum())
        nats = total / max(1, count)
        return {f"{prefix}/loss": nats, f"{prefix}/bpc": nats / LN2, f"{prefix}/ppl": math.exp(min(nats, 50.0))}

    @torch.no_grad()
    def sample_text(self, n: int, temperature: float, prompt: str = "", seed: int = SAMPLE_SEED) -> str:
        """``n`` characters drawn after ``prompt`` (a newline when empty) at ``temperature``."""
        ids = self.vocab.encode(prompt or "\n")
        x = torch.tensor([ids], dtype=torch.long, device=self.device)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        with evaluating(self):
            out = self.model.generate(x, n, temperature=temperature, generator=generator)
        return prompt + self.vocab.decode(out[0, len(ids) :].tolist())

    def figures(self, datamodule: Any, out_dir: Path) -> list[Path]:
        from dlcamp.report import figures as F

        lines = []
        for t in self.sample_temperatures:
            lines += [f"--- temperature {t} ---"] + self.sample_text(self.sample_length, t, self.prompt).split("\n")
        paths = [
            F.save(
                F.plot_text(lines, title=f"samples ({self.sample_length} characters each, seed {SAMPLE_SEED})"),
                out_dir / "samples.png",
            )
        ]
        if isinstance(self.model, TokenAttentionMapper):
            x, _ = datamodule.splits["val"][0]
            tokens = [self.vocab.itos[i] for i in x[:48].tolist()]
            with torch.no_grad(), evaluating(self.model):
                last = self.model.attention_maps(x[None, :48].to(self.device))[-1]  # (1, nh, T, T)
            paths.append(_plot_attention(last[0].mean(0), tokens, tokens, "self", out_dir))
        return paths

    def predict_files(self, inputs, datamodule: Any, output: Path | None) -> None:
        """Continue each file's text (the prompt) by ``sample_length`` characters at the first temperature."""
        from dlcamp.io import emit_csv

        rows = [["file", "temperature", "continuation"]]
        t = self.sample_temperatures[0] if self.sample_temperatures else 1.0
        for path in inputs:
            prompt = Path(path).read_text(encoding="utf-8", errors="replace")
            rows.append([str(path), str(t), self.sample_text(self.sample_length, t, prompt)[len(prompt) :]])
        emit_csv(rows, output)


def _plot_attention(weights: torch.Tensor, keys: list[str], rows: list[str], kind: str, out_dir: Path) -> Path:
    """Plot one map (L, S) of ``kind`` ("self", "cross") over ``keys``; a map wider than the
    labels (a class token first) shows its last rows and columns."""
    from dlcamp.report import figures as F

    w = weights.cpu()
    w = w[-len(rows) :, -len(keys) :] if w.shape != (len(rows), len(keys)) else w
    return F.save(
        F.plot_attention(
            w, keys[: w.shape[1]], rows[: w.shape[0]], title=f"{kind}-attention, last layer, heads averaged"
        ),
        out_dir / f"{kind}_attention.png",
    )


@register_task("language_model")
@forwards(LanguageModelTask, drop=("vocab",))
def language_model(*, model: nn.Module, datamodule: Any, **options: Any) -> LanguageModelTask:
    """Next-character prediction: loss in nats, bits per character, samples at several temperatures."""
    if not isinstance(datamodule, TextData):
        raise UsageError(f"task language_model needs text data (with a vocab), not {type(datamodule).__name__}")
    if not isinstance(model, LanguageModel):
        raise UsageError(f"task language_model needs a language model (char_lm, ngram), got {type(model).__name__}")
    if isinstance(model, CountingModel):
        # Counting runs no optimizer and returns no loss, on purpose: Lightning need not say so.
        warnings.filterwarnings("ignore", message=r".*configure_optimizers.*returned `None`")
        warnings.filterwarnings("ignore", message=r".*training_step.*returned `None`")
    return LanguageModelTask(model, vocab=datamodule.vocab, **options)


# -- sequence to sequence -----------------------------------------------------------------


def _exact_match(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per row: the decoded tokens (B, n) equal the target (B, m), PAD-padded to a common width."""
    width = max(pred.size(1), target.size(1))
    pred = F.pad(pred, (0, width - pred.size(1)), value=PAD)
    target = F.pad(target, (0, width - target.size(1)), value=PAD)
    return (pred == target).all(1)


class Seq2SeqTask(Task):
    """Teacher-forced training of a ``Seq2Seq`` model; greedy and beam-search decoding."""

    def __init__(
        self,
        model: Seq2Seq,
        *,
        vocab: Any,
        max_target_len: int,
        label_smoothing: float = 0.0,
        beam_size: int = 4,
        length_penalty: float = 0.0,
    ) -> None:
        if beam_size < 1:
            raise ValueError(f"task.beam_size must be >= 1, got {beam_size}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"task.label_smoothing must be in [0, 1), got {label_smoothing}")
        super().__init__(model)
        self.vocab, self.max_new = vocab, max_target_len - 1  # the target's BOS is given
        self.label_smoothing, self.beam_size, self.length_penalty = label_smoothing, beam_size, length_penalty

    def training_step(self, batch, batch_idx):
        src, tgt = batch
        loss = _token_loss(self.model(src, tgt[:, :-1]), tgt[:, 1:], self.label_smoothing)
        self.check_finite(loss)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(src))
        return loss

    def validation_step(self, batch, batch_idx):
        src, tgt = batch
        logits = self.model(src, tgt[:, :-1])
        loss = _token_loss(logits, tgt[:, 1:])
        exact = _exact_match(greedy_decode(self.model, src, max_len=self.max_new), tgt[:, 1:]).float().mean()
        kw = dict(on_epoch=True, batch_size=len(src), sync_dist=True)
        self.log("val/loss", loss, prog_bar=True, **kw)
        self.log("val/exact_match", exact, prog_bar=True, **kw)

    def decode(self, src: torch.Tensor, beam_size: int = 1) -> torch.Tensor:
        """Decoded outputs (B, n) for sources (B, S): greedy, or beam search when beam_size > 1."""
        with torch.no_grad(), evaluating(self):
            if beam_size > 1:
                return beam_search(
                    self.model, src, max_len=self.max_new, beam_size=beam_size, length_penalty=self.length_penalty
                )
            return greedy_decode(self.model, src, max_len=self.max_new)

    @torch.no_grad()
    def evaluate(self, loader, prefix: str) -> dict[str, float]:
        loss_sum = tokens = right = 0.0
        exact = exact_beam = n = 0
        with evaluating(self):
            for src, tgt in loader:
                src, tgt = src.to(self.device), tgt.to(self.device)
                logits = self.model(src, tgt[:, :-1])
                target = tgt[:, 1:]
                mask = target != PAD
                loss_sum += _token_loss(logits, target, reduction="sum").item()
                tokens += int(mask.sum())
                right += int(((logits.argmax(-1) == target) & mask).sum())
                exact += int(_exact_match(self.decode(src), target).sum())
                if self.beam_size > 1:
                    exact_beam += int(_exact_match(self.decode(src, self.beam_size), target).sum())
                n += len(src)
        metrics = {
            f"{prefix}/loss": loss_sum / max(1, tokens),
            f"{prefix}/token_acc": right / max(1, tokens),
            f"{prefix}/exact_match": exact / max(1, n),
        }
        if self.beam_size > 1:
            metrics[f"{prefix}/exact_match_beam"] = exact_beam / max(1, n)
        return metrics

    def figures(self, datamodule: Any, out_dir: Path) -> list[Path]:
        from dlcamp.report import figures as F

        val = datamodule.splits["val"]
        src = torch.stack([val[i][0] for i in range(min(64, len(val)))]).to(self.device)
        tgt = torch.stack([val[i][1] for i in range(min(64, len(val)))]).to(self.device)
        pred = self.decode(src)
        ok = _exact_match(pred, tgt[:, 1:]).tolist()
        order = [i for i in range(len(ok)) if not ok[i]][:8] + [i for i in range(len(ok)) if ok[i]]
        text = lambda ids: self.vocab.decode(ids.tolist())  # noqa: E731
        lines = [
            f"{'ok ' if ok[i] else 'NO '} {text(src[i])!r:>34} -> {text(pred[i])!r}"
            + ("" if ok[i] else f"   (want {text(tgt[i, 1:])!r})")
            for i in order[:16]
        ]
        paths = [
            F.save(
                F.plot_text(lines, title=f"greedy decoding of validation examples: {sum(ok)}/{len(ok)} exact"),
                out_dir / "examples.png",
            )
        ]
        # the attention maps of one example: the model decodes its own (greedy) output
        i = order[-1] if order else 0
        s_len = int((src[i] != PAD).sum())
        prefix = torch.cat([torch.tensor([BOS], device=self.device), pred[i][pred[i] != PAD]])
        source = [self.vocab.itos[t] for t in src[i, :s_len].tolist()]
        target = [self.vocab.itos[t] for t in prefix[1:].tolist()]
        with torch.no_grad(), evaluating(self.model):
            maps = self.model.attention_maps(src[i : i + 1, :s_len], prefix[None, :-1])
        # A decoder's self-attention keys are what it read: BOS, then its outputs shifted by one.
        keys = {"self": ["<bos>"] + target[:-1], "cross": source}
        for kind in ("self", "cross"):
            if kind in maps:
                paths.append(_plot_attention(maps[kind][0], keys[kind], target, kind, out_dir))
        return paths

    def predict_files(self, inputs, datamodule: Any, output: Path | None) -> None:
        """Each non-empty line of each file is a source; CSV rows: file, source, output."""
        from dlcamp.io import emit_csv

        rows = [["file", "source", "output"]]
        for path in inputs:
            lines = datamodule.read_lines(Path(path))
            src = datamodule.load_input(Path(path)).to(self.device)
            pred = self.decode(src, self.beam_size)
            rows += [[str(path), line, self.vocab.decode(p.tolist())] for line, p in zip(lines, pred)]
        emit_csv(rows, output)


@register_task("seq2seq")
@forwards(Seq2SeqTask, drop=("vocab", "max_target_len"))
def seq2seq(*, model: nn.Module, datamodule: Any, **options: Any) -> Seq2SeqTask:
    """Encoder–decoder training with teacher forcing; exact match by greedy and beam-search decoding."""
    if not isinstance(datamodule, Seq2SeqData):
        raise UsageError(
            f"task seq2seq needs source/target data (dates, reverse, addition), not {type(datamodule).__name__}"
        )
    if not isinstance(model, Seq2Seq):
        raise UsageError(
            f"task seq2seq needs an encoder-decoder model (seq2seq_gru, seq2seq_transformer), "
            f"got {type(model).__name__}"
        )
    return Seq2SeqTask(model, vocab=datamodule.vocab, max_target_len=datamodule.max_target_len, **options)


# -- sequence classification ------------------------------------------------------------


class SequenceClassificationTask(ClassificationTask):
    def figures(self, datamodule: Any, out_dir: Path) -> list[Path]:
        from dlcamp.report import figures as F

        logits, labels = self.predict_logits(datamodule.split_loader("test"))
        preds = logits.argmax(1)
        names = list(datamodule.class_names) or [str(i) for i in range(self.num_classes)]
        paths = [
            F.save(
                F.plot_confusion(F.confusion_matrix(preds, labels, self.num_classes), names),
                out_dir / "confusion_matrix.png",
            )
        ]
        test = datamodule.splits["test"]
        lengths = torch.tensor([int((test[i][0] != PAD).sum()) for i in range(len(test))])
        right = (preds == labels).float()
        by_length: dict[int, list[float]] = {}
        for n, r in zip(lengths.tolist(), right.tolist()):
            by_length.setdefault(n, []).append(r)
        xs = sorted(by_length)
        curve = {"test accuracy": [(float(n), sum(by_length[n]) / len(by_length[n])) for n in xs]}
        paths.append(
            F.save(
                F.plot_compare(curve, ylabel="accuracy", title="accuracy by sequence length", log=False),
                out_dir / "accuracy_by_length.png",
            )
        )
        if isinstance(self.model, TokenAttentionMapper):
            x, _ = test[0]
            n = int((x != PAD).sum())
            tokens = [datamodule.vocab.itos[i] for i in x[:n].tolist()]
            with torch.no_grad(), evaluating(self.model):
                last = self.model.attention_maps(x[None, :n].to(self.device))[-1]  # (1, nh, T, T)
            paths.append(_plot_attention(last[0].mean(0), tokens, tokens, "self", out_dir))
        return paths

    def predict_files(self, inputs, datamodule: Any, output: Path | None) -> None:
        """Classify each non-empty line of each file; CSV rows: file, sequence, class, probability."""
        from dlcamp.io import emit_csv

        rows = [["file", "sequence", "class", "probability"]]
        names = list(datamodule.class_names)
        for path in inputs:
            lines = datamodule.read_lines(Path(path))
            x = datamodule.load_input(Path(path))
            probs = torch.softmax(self.predict_logits([(x, torch.zeros(len(x), dtype=torch.long))])[0], dim=1)
            for line, p in zip(lines, probs):
                rows.append([str(path), line, names[int(p.argmax())], f"{float(p.max()):.4f}"])
        emit_csv(rows, output)


@register_task("sequence_classification")
def sequence_classification(
    *, model: nn.Module, datamodule: Any, label_smoothing: float = 0.0
) -> SequenceClassificationTask:
    """Classify token sequences (Reber grammar, text): cross-entropy; accuracy overall and by length."""
    if not isinstance(datamodule, TextData):
        raise UsageError(
            f"task sequence_classification needs text data (with a vocab), not {type(datamodule).__name__}"
        )
    return SequenceClassificationTask(model, num_classes=datamodule.num_classes, label_smoothing=label_smoothing)
