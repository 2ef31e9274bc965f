"""Semantic segmentation: per-pixel cross-entropy, dataset-level mIoU, label-map figures and predictions.

The model returns logits [B, K, H, W] at the input's size, or torchvision's dict
``{"out": logits, "aux": logits}`` (``fcn_resnet50``), whose auxiliary loss is added with
weight ``aux_weight`` (0.5, torchvision's reference scripts). Pixels labelled
``ignore_index`` add nothing to the loss and are not scored.

Logs ``train/loss``, ``val/loss``, ``val/miou``, ``val/pixel_acc``; the final metrics are
``test/miou``, ``test/pixel_acc``, ``test/mean_acc``, ``test/boundary_miou`` (within
``band`` px of a class boundary, see ``dlcamp.metrics.segmentation``) and ``test/iou/<class>``.
Figures: test images with truth and prediction overlays, per-class IoU bars, the pixel
confusion matrix. ``dlcamp predict RUN images... -o DIR`` writes a palette PNG of class ids
and an overlay per image.

Legend: B batch, K classes, H, W height and width.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcamp.data.contracts import SegmentationData
from dlcamp.errors import UsageError
from dlcamp.metrics.segmentation import SegmentationMeter
from dlcamp.registry import forwards
from dlcamp.tasks import register_task
from dlcamp.tasks.base import Task, evaluating


def split_output(out: torch.Tensor | dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(main logits, auxiliary logits or None) from a tensor or torchvision's ``{"out", "aux"}`` dict."""
    if isinstance(out, dict):
        return out["out"], out.get("aux")
    return out, None


class SegmentationTask(Task):
    """Pixel-wise cross-entropy (ignoring ``ignore_index``) on a model that outputs [B, K, H, W] logits."""

    def __init__(
        self,
        model: nn.Module,
        *,
        num_classes: int,
        class_names: Sequence[str],
        palette: Sequence[tuple[int, int, int]],
        ignore_index: int = 255,
        aux_weight: float = 0.5,
        band: int = 3,
        label_smoothing: float = 0.0,
    ) -> None:
        if aux_weight < 0 or band < 0 or not 0 <= label_smoothing < 1:
            raise UsageError(
                f"task: aux_weight and band must be >= 0 and label_smoothing in [0, 1), "
                f"got {aux_weight}, {band}, {label_smoothing}"
            )
        super().__init__(model)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.class_names = list(class_names) or [str(k) for k in range(num_classes)]
        self.palette = [tuple(c) for c in palette]
        self.aux_weight, self.band, self.label_smoothing = aux_weight, band, label_smoothing
        self._val: SegmentationMeter | None = None
        self._last_eval: tuple[str, SegmentationMeter] | None = None

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits.float(), target, ignore_index=self.ignore_index, label_smoothing=self.label_smoothing
        )

    def pixel_nll(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[float, int]:
        """Summed cross-entropy (no smoothing) over the labelled pixels, and their count: what val and test report."""
        n = int((target != self.ignore_index).sum())
        if n == 0:  # every pixel ignored: nothing to score (the mean would be NaN)
            return 0.0, 0
        return float(F.cross_entropy(logits.float(), target, ignore_index=self.ignore_index, reduction="sum")), n

    def training_step(self, batch, batch_idx):
        x, y = batch
        out, aux = split_output(self.model(self._prepare(x)))
        loss = self.loss(out, y)
        if aux is not None:  # even at weight 0: DDP wants a gradient (zero) for every parameter
            loss = loss + self.aux_weight * self.loss(aux, y)
        self.check_finite(loss)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    # -- validation: one confusion matrix over the split ------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val = SegmentationMeter(self.num_classes, self.ignore_index, self.band)
        self._val_nll = [0.0, 0]

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits, _ = split_output(self(x))
        total, n = self.pixel_nll(logits, y)
        self._val_nll[0] += total
        self._val_nll[1] += n
        self._val.update(logits.argmax(1), y)

    def on_validation_epoch_end(self) -> None:
        # The evaluation loaders are not sharded: under DDP each process scores the whole split.
        if self._val is None:
            return
        metrics = self._val.compute("val/")
        self.log("val/loss", self._val_nll[0] / max(1, self._val_nll[1]), prog_bar=True)
        self.log("val/miou", metrics["val/miou"], prog_bar=True)
        self.log("val/pixel_acc", metrics["val/pixel_acc"])
        self._val = None

    # -- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def predict_labels(self, x: torch.Tensor) -> torch.Tensor:
        """Class ids [B, H, W] for images [B, C, H, W] (eval mode)."""
        with evaluating(self):
            logits, _ = split_output(self(x.to(self.device)))
        return logits.argmax(1).cpu()

    @torch.no_grad()
    def evaluate(self, loader, prefix: str) -> dict[str, float]:
        meter = SegmentationMeter(self.num_classes, self.ignore_index, self.band)
        total, pixels = 0.0, 0
        with evaluating(self):
            for x, y in loader:
                logits, _ = split_output(self(x.to(self.device)))
                y = y.to(logits.device)
                nll, n = self.pixel_nll(logits, y)
                total, pixels = total + nll, pixels + n
                meter.update(logits.argmax(1), y)
        metrics = meter.compute(f"{prefix}/")
        named = {}
        for key, value in metrics.items():
            if key.startswith(f"{prefix}/iou/"):
                key = f"{prefix}/iou/{self.class_names[int(key.rsplit('/', 1)[1])]}"
            named[key] = value
        named[f"{prefix}/loss"] = total / max(1, pixels)
        self._last_eval = (prefix, meter)
        return named

    # -- figures -------------------------------------------------------------------------------
    def figures(self, datamodule: Any, out_dir: Path) -> list[Path]:
        from dlcamp.report import figures as F_

        if self._last_eval is None or self._last_eval[0] != "test":
            self.evaluate(datamodule.split_loader("test"), "test")
        meter = self._last_eval[1]
        scores = meter.compute()
        test = datamodule.splits["test"]
        shown = [test[i] for i in range(min(6, len(test)))]  # one at a time: photographs differ in size
        images = [datamodule.denormalize(x) for x, _ in shown]
        preds = [self.predict_labels(x[None])[0] for x, _ in shown]
        paths = [
            F_.save(
                F_.plot_segmentations(
                    images,
                    [y for _, y in shown],
                    preds,
                    self.palette,
                    self.class_names,
                    ignore_index=self.ignore_index,
                    title=f"test images: truth and prediction (test mIoU {scores['miou']:.3f})",
                ),
                out_dir / "segmentations.png",
            )
        ]
        iou = [scores[f"iou/{k}"] for k in range(self.num_classes)]
        paths.append(
            F_.save(
                F_.plot_class_iou(
                    iou,
                    self.class_names,
                    title=f"per-class IoU, test (mIoU {scores['miou']:.3f}; "
                    f"within {self.band} px of a boundary {scores['boundary_miou']:.3f})",
                ),
                out_dir / "class_iou.png",
            )
        )
        # pixel counts run to millions: each row as per cent of that true class's pixels
        percent = (100 * meter.cm.double() / meter.cm.sum(1, keepdim=True).clamp(min=1)).round().long()
        paths.append(
            F_.save(
                F_.plot_confusion(percent, self.class_names, title="test pixels: % of each true class (rows)"),
                out_dir / "confusion_matrix.png",
            )
        )
        return paths

    # -- predict -------------------------------------------------------------------------------
    def predict_files(self, inputs, datamodule: Any, output: Path | None) -> None:
        """For each image, ``DIR/<name>_labels.png`` (a palette PNG of class ids, at the image's size) and
        ``DIR/<name>_overlay.png``; one line per image (file, pixels per class) on standard output.

        Two inputs with the same name, or an output that would replace an input, are refused
        before anything is written.
        """
        import io

        from PIL import Image

        from dlcamp.data.segmentation import save_label
        from dlcamp.io import write_bytes
        from dlcamp.report import figures as F_

        if output is None or (output.exists() and not output.is_dir()) or output.suffix.lower() in (".json", ".csv"):
            raise UsageError("segmentation predictions are images: give -o DIR, a folder for the label PNGs")
        stems = [Path(p).stem for p in inputs]
        twice = sorted({s for s in stems if stems.count(s) > 1})
        if twice:
            raise UsageError(f"inputs share the name {twice[0]!r}: their label PNGs would overwrite each other")
        given = {Path(p).resolve() for p in inputs}
        for stem in stems:
            for suffix in ("_labels.png", "_overlay.png"):
                if (output / f"{stem}{suffix}").resolve() in given:
                    raise UsageError(f"{output / (stem + suffix)} is one of the inputs; choose another -o folder")
        for path in inputs:
            path = Path(path)
            image = datamodule.load_input(path)  # (3, H, W) in [0, 1]
            labels = self.predict_labels(image[None])[0]  # (H, W)
            output.mkdir(parents=True, exist_ok=True)
            save_label(output / f"{path.stem}_labels.png", labels.numpy(), self.palette, self.ignore_index)
            blend = F_.overlay(datamodule.denormalize(image), labels, self.palette, ignore_index=self.ignore_index)
            buf = io.BytesIO()
            Image.fromarray((blend.permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(buf, format="PNG")
            write_bytes(output / f"{path.stem}_overlay.png", buf.getvalue())
            counts = torch.bincount(labels.flatten(), minlength=self.num_classes)
            shares = " ".join(f"{self.class_names[k]}:{int(c)}" for k, c in enumerate(counts) if c)
            print(f"{path} -> {output / f'{path.stem}_labels.png'} ({shares})")


@register_task("segmentation")
@forwards(SegmentationTask, drop=("num_classes", "class_names", "palette", "ignore_index"))
def segmentation(*, model: nn.Module, datamodule: Any, **options: Any) -> SegmentationTask:
    """Classify every pixel: cross-entropy with an ignore index, dataset mIoU, boundary mIoU, label-map figures."""
    if not isinstance(datamodule, SegmentationData):
        raise UsageError(
            f"task segmentation needs segmentation data (shapes_segmentation, voc_segmentation, "
            f"segmentation_folder), got {type(datamodule).__name__}"
        )
    return SegmentationTask(
        model,
        num_classes=datamodule.num_classes,
        class_names=datamodule.class_names,
        palette=datamodule.palette,
        ignore_index=datamodule.ignore_index,
        **options,
    )
