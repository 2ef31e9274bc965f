"""Image classification: cross-entropy (with label smoothing), mixup/cutmix, noise injection.

Logs ``train/loss``, ``val/loss``, ``val/acc``; the final metrics are ``test/loss`` and
``test/acc``. Figures: confusion matrix and a grid of test images with predicted and true
labels.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from dlcamp import nn as dnn
from dlcamp.models.contracts import AttentionMapper, AuxiliaryClassifier
from dlcamp.registry import forwards
from dlcamp.tasks import register_task
from dlcamp.tasks.base import Task, evaluating


class ClassificationTask(Task):
    """Cross-entropy on a classifier; an ``AuxiliaryClassifier`` adds its heads' losses, an
    ``AttentionMapper`` (ViT) adds the class-token attention figure."""

    def __init__(
        self,
        model: nn.Module,
        *,
        num_classes: int,
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        input_noise: float = 0.0,
        weight_noise: float = 0.0,
    ) -> None:
        for name, v in (
            ("label_smoothing", label_smoothing),
            ("mixup_alpha", mixup_alpha),
            ("cutmix_alpha", cutmix_alpha),
            ("input_noise", input_noise),
            ("weight_noise", weight_noise),
        ):
            if v < 0:
                raise ValueError(f"task.{name} must be >= 0, got {v}")
        if label_smoothing >= 1:
            raise ValueError(f"task.label_smoothing must be < 1, got {label_smoothing}")
        super().__init__(model)
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.mixer = (
            dnn.MixupOrCutMix(mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, num_classes=num_classes)
            if (mixup_alpha > 0 or cutmix_alpha > 0)
            else None
        )
        self.input_noise = dnn.GaussianNoise(input_noise) if input_noise > 0 else None
        self.weight_noise_std = weight_noise
        self._noise_stack: ExitStack | None = None

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dnn.cross_entropy(logits, target, label_smoothing=self.label_smoothing)

    def training_step(self, batch, batch_idx):
        x, y = batch
        x = self._prepare(x)
        target: torch.Tensor = y
        if self.mixer is not None:
            x, target = self.mixer(x, y)  # soft targets (B, K)
        if self.input_noise is not None:
            x = self.input_noise(x)
        if isinstance(self.model, AuxiliaryClassifier):
            # auxiliary classifiers (GoogLeNet): their losses join the main one, weighted
            logits, *aux = self.model.forward_with_aux(x)
            loss = self.loss(logits, target) + self.model.aux_loss_weight * sum(
                self.loss(a, target) for a in aux if a is not None
            )
        else:
            logits = self.model(x)  # (B, K)
            loss = self.loss(logits, target)
        self.check_finite(loss)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    # Weight noise (Graves 2011): the gradient is taken at noisy weights and applied to
    # the clean ones, so the noise goes on before the forward and off before the step.
    def on_train_batch_start(self, batch, batch_idx):
        super().on_train_batch_start(batch, batch_idx)  # the engine's schedules and phases first
        if self.weight_noise_std > 0:
            self._noise_stack = ExitStack()
            self._noise_stack.enter_context(dnn.weight_noise(self.model, self.weight_noise_std))

    def on_before_optimizer_step(self, optimizer):
        if self._noise_stack is not None:
            self._noise_stack.close()
            self._noise_stack = None

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log("val/acc", acc, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)

    @torch.no_grad()
    def predict_logits(self, loader) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and labels over a loader, in eval mode."""
        logits, labels = [], []
        with evaluating(self):
            for x, y in loader:
                logits.append(self(x.to(self.device)).float().cpu())
                labels.append(y)
        return torch.cat(logits), torch.cat(labels)

    @torch.no_grad()
    def evaluate(self, loader, prefix: str) -> dict[str, float]:
        logits, labels = self.predict_logits(loader)
        return {
            f"{prefix}/loss": nn.functional.cross_entropy(logits, labels).item(),
            f"{prefix}/acc": (logits.argmax(1) == labels).float().mean().item(),
        }

    def figures(self, datamodule: Any, out_dir: Path) -> list[Path]:
        from dlcamp.report import figures as F

        logits, labels = self.predict_logits(datamodule.split_loader("test"))
        preds = logits.argmax(1)
        names = list(datamodule.class_names) or [str(i) for i in range(self.num_classes)]
        cm = F.confusion_matrix(preds, labels, self.num_classes)
        paths = [F.save(F.plot_confusion(cm, names), out_dir / "confusion_matrix.png")]
        # the mistakes first (they teach the most), then correct ones, 32 in all
        wrong_idx = (preds != labels).nonzero().flatten().tolist()
        right_idx = (preds == labels).nonzero().flatten().tolist()
        shown = (wrong_idx[:16] + right_idx)[:32]
        images = datamodule.denormalize(torch.stack([datamodule.splits["test"][i][0] for i in shown]))
        titles = [f"{names[preds[i]]} ({names[labels[i]]})" for i in shown]
        wrong = [bool(preds[i] != labels[i]) for i in shown]
        paths.append(
            F.save(
                F.plot_image_grid(
                    images,
                    titles,
                    highlight=wrong,
                    suptitle=f"test images: predicted (true); {len(wrong_idx)} wrong, in red, first",
                ),
                out_dir / "test_predictions.png",
            )
        )
        if isinstance(self.model, AttentionMapper):
            paths.append(self._class_token_attention(shown[:8], datamodule, out_dir))
        return paths

    @torch.no_grad()
    def _class_token_attention(self, indices: list[int], datamodule: Any, out_dir: Path) -> Path:
        """A ViT's last-layer attention from the class token to each patch (heads averaged), beside each test image."""
        import torch.nn.functional as F_

        from dlcamp.report import figures as F

        x = torch.stack([datamodule.splits["test"][i][0] for i in indices]).to(self.device)
        images = datamodule.denormalize(x.cpu())
        with evaluating(self):
            last = self.model.attention_maps(self._prepare(x))[-1]  # (B, nh, 1 + N, 1 + N)
        size = tuple(x.shape[-2:])  # (H, W)
        grid = (size[0] // self.model.patch_size, size[1] // self.model.patch_size)
        heat = last[:, :, 0, 1:].mean(1).reshape(-1, 1, *grid).float().cpu()  # (B, 1, gh, gw)
        heat = heat / heat.amax(dim=(2, 3), keepdim=True).clamp(min=1e-12)
        heat = F_.interpolate(heat, size=size, mode="nearest").expand(-1, images.size(1), -1, -1)
        pairs = torch.stack([images.cpu(), heat], dim=1).flatten(0, 1)  # image, its map, image, ...
        titles = ["image", "class token looks at"] * len(images)
        return F.save(
            F.plot_image_grid(pairs, titles, suptitle="ViT: last layer, class-token attention over patches"),
            out_dir / "class_token_attention.png",
        )

    def predict_files(self, inputs, datamodule: Any, output: Path | None) -> None:
        """Classify image files; CSV rows: file, predicted class, probability, top-3."""
        from dlcamp.io import emit_csv

        batch = torch.stack([datamodule.load_input(Path(p)) for p in inputs])
        probs = torch.softmax(self.predict_logits([(batch, torch.zeros(len(batch), dtype=torch.long))])[0], dim=1)
        names = list(datamodule.class_names) or [str(i) for i in range(self.num_classes)]
        rows = [["file", "class", "probability", "top3"]]
        for path, p in zip(inputs, probs):
            top = p.topk(min(3, len(p)))
            rows.append(
                [
                    str(path),
                    names[int(top.indices[0])],
                    f"{float(top.values[0]):.4f}",
                    " ".join(f"{names[int(i)]}:{float(v):.3f}" for v, i in zip(top.values, top.indices)),
                ]
            )
        emit_csv(rows, output)


@register_task("classification")
@forwards(ClassificationTask, drop=("num_classes",))
def classification(*, model: nn.Module, datamodule: Any, **options: Any) -> ClassificationTask:
    """Classify images: cross-entropy with label smoothing, mixup/cutmix and noise injection as options."""
    return ClassificationTask(model, num_classes=datamodule.num_classes, **options)
