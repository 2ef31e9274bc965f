"""Object detection: a detector's own losses, COCO mAP, the four-step schedule, results files.

Training calls the model's ``loss(images, targets)`` (SSD's multibox loss, Faster R-CNN's
RPN and head losses) and logs every term. Validation runs ``detect`` and computes COCO
mAP with our own evaluator (``dlcamp.metrics.detection.coco_evaluate``), logged as
``val/map`` and ``val/map_50``. The final metrics are pycocotools' (the reference) on the
same predictions: ``test/map`` (mAP@[.5:.95]), ``test/map_50``, ``test/map_75``,
``test/ar_100`` and ``test/ap/<class>``; ``test/map_ours`` is our evaluator's mAP and
``test/ours_vs_pycocotools`` the largest difference between the two over mAP, mAP@0.5,
mAP@0.75, AR@100 and every class's AP, so each run shows that they agree.

``training_mode: four_step`` trains Faster R-CNN with the paper's alternating schedule
(Ren et al. 2015, section 3.2), the steps taking equal shares of the steps (or
``stage_fractions``) and each its own run of the learning-rate schedule:

1. the RPN, on a backbone of its own (a copy of the detector's initial backbone, as both
   start from the same pre-trained weights in the paper);
2. the detector's backbone and RoI head, on step 1's proposals (no sharing yet);
3. the RPN's own layers, on the detector's backbone, now frozen (shared from here on);
4. the RoI head's own layers, with backbone and RPN frozen.

Each step starts with fresh optimizer moments (the paper's steps are separate trainings).
The stages leave parts of the network without gradients, which DDP refuses, so four-step
training runs in one process.

Figures: detections on test images (ground truth dashed), the anchors laid over an image,
and the precision-recall curve of each class at IoU 0.5.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from dlcamp.errors import UsageError
from dlcamp.optim.groups import Phase
from dlcamp.tasks import register_task
from dlcamp.tasks.base import Task, evaluating

TRAINING_MODES = ("joint", "four_step")


def _to_cpu(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in d.items()}


def four_step_phases(fractions: Sequence[float]) -> list[Phase]:
    """Ren et al.'s alternating schedule as four phases over the groups body, rpn, head and rpn_body."""
    trains = [
        ("rpn_alone", ["rpn_body", "rpn"]),
        ("detector", ["body", "head"]),
        ("rpn_shared", ["rpn"]),
        ("head_shared", ["head"]),
    ]
    return [Phase(name=name, train=train, share=float(f)) for (name, train), f in zip(trains, fractions)]


class DetectionTask(Task):
    def __init__(
        self,
        model: nn.Module,
        *,
        class_names: Sequence[str],
        category_ids: Sequence[int],
        training_mode: str = "joint",
        stage_fractions: Sequence[float] = (0.25, 0.25, 0.25, 0.25),
        draw_threshold: float = 0.5,
    ) -> None:
        super().__init__(model)
        self.class_names = list(class_names)
        self.category_ids = list(category_ids) or list(range(1, len(self.class_names) + 1))
        self.training_mode = training_mode
        self.stage_fractions = [float(f) for f in stage_fractions]
        self.draw_threshold = draw_threshold
        # four-step: step 1's RPN has a backbone of its own, a copy of the detector's initial one
        self.first_body = copy.deepcopy(model.body) if training_mode == "four_step" else None
        self._val: list[tuple[dict, dict]] = []
        self._last_eval: tuple[str, list, list, dict] | None = None

    # -- the four-step schedule, declared as phases (run by the base class) ------------------
    def param_groups(self) -> dict[str, nn.Module]:
        groups = super().param_groups()
        if self.first_body is not None:
            groups["rpn_body"] = self.first_body
        return groups

    def default_phases(self) -> list[Phase]:
        return four_step_phases(self.stage_fractions) if self.training_mode == "four_step" else []

    # -- training and validation ---------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        images, targets = batch
        if self.training_mode == "four_step":
            stage = (self._phase or 0) + 1
            losses = self.model.loss(images, targets, stage=stage, first_body=self.first_body)
            self.log("stage", float(stage), on_step=True, on_epoch=False)
        else:
            losses = self.model.loss(images, targets)
        self.check_finite(losses["loss"])
        n = len(targets)
        for k, v in losses.items():
            self.log(f"train/{k}", v, on_step=True, on_epoch=k == "loss", prog_bar=k == "loss", batch_size=n)
        return losses["loss"]

    def validation_step(self, batch, batch_idx):
        images, targets = batch
        for det, t in zip(self.model.detect(images), targets):
            self._val.append((_to_cpu(det), _to_cpu(t)))

    def on_validation_epoch_end(self) -> None:
        from dlcamp.metrics.detection import coco_evaluate

        # The evaluation loaders are not sharded (each process sees the whole split), so
        # under DDP every process already holds every image: nothing to gather.
        pairs = self._val
        self._val = []
        if not pairs:
            return
        result = coco_evaluate([p[0] for p in pairs], [p[1] for p in pairs], len(self.class_names))
        self.log("val/map", float(result["map"]), prog_bar=True)
        self.log("val/map_50", float(result["map_50"]), prog_bar=True)

    # -- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def predict_loader(self, loader) -> tuple[list[dict], list[dict]]:
        """Detections and targets over a loader (eval mode), on the CPU."""
        preds, targets = [], []
        with evaluating(self):
            for images, tgts in loader:
                images = (
                    images.to(self.device) if isinstance(images, torch.Tensor) else [i.to(self.device) for i in images]
                )
                preds += [_to_cpu(d) for d in self.model.detect(images)]
                targets += [_to_cpu(t) for t in tgts]
        return preds, targets

    def evaluate(self, loader, prefix: str) -> dict[str, float]:
        from dlcamp.metrics.detection import coco_evaluate, pycocotools_evaluate

        preds, targets = self.predict_loader(loader)
        k = len(self.class_names)
        ref = pycocotools_evaluate(preds, targets, k)
        ours = coco_evaluate(preds, targets, k)
        pairs = [(ref[key], ours[key]) for key in ("map", "map_50", "map_75", "ar_100")]
        pairs += [(a, b) for a, b in zip(ref["ap_per_class"], ours["ap_per_class"]) if a == a or b == b]
        diff = max(abs(float(a) - float(b)) if (a == a and b == b) else float("inf") for a, b in pairs)
        metrics = {f"{prefix}/{key}": float(ref[key]) for key in ("map", "map_50", "map_75", "ar_100")}
        for name, ap in zip(self.class_names, ref["ap_per_class"]):
            metrics[f"{prefix}/ap/{name}"] = float(ap)
        metrics[f"{prefix}/map_ours"] = float(ours["map"])
        metrics[f"{prefix}/ours_vs_pycocotools"] = diff
        self._last_eval = (prefix, preds, targets, ref)
        return metrics

    # -- figures -------------------------------------------------------------------------------
    def figures(self, datamodule: Any, out_dir: Path) -> list[Path]:
        from dlcamp.report import figures as F

        if self._last_eval is None or self._last_eval[0] != "test":
            self.evaluate(datamodule.split_loader("test"), "test")
        _, preds, targets, ref = self._last_eval
        test = datamodule.splits["test"]
        shown = list(range(min(8, len(test))))
        images = [test[i][0] for i in shown]
        paths = []
        if all(im.shape == images[0].shape for im in images):
            paths.append(
                F.save(
                    F.plot_detections(
                        torch.stack(images),
                        [preds[i] for i in shown],
                        self.class_names,
                        targets=[targets[i] for i in shown],
                        score_threshold=self.draw_threshold,
                        title=f"test detections (score >= {self.draw_threshold}); ground truth dashed",
                    ),
                    out_dir / "detections.png",
                )
            )
        image = images[0]
        anchors = self.model.anchors_per_level(tuple(image.shape[-2:]))
        paths.append(
            F.save(
                F.plot_anchors(
                    image,
                    anchors,
                    title=f"{type(self.model).__name__}: anchors per level ({sum(len(a) for a in anchors)} in all)",
                ),
                out_dir / "anchors.png",
            )
        )
        paths.append(
            F.save(
                F.plot_pr_curves(
                    ref["precision"][0],
                    ref["recall_thresholds"],
                    self.class_names,
                    title=f"precision-recall at IoU 0.5 (test mAP@0.5 {ref['map_50']:.3f})",
                ),
                out_dir / "pr_curves.png",
            )
        )
        return paths

    # -- predict -------------------------------------------------------------------------------
    def predict_files(self, inputs, datamodule: Any, output: Path | None) -> None:
        """COCO results JSON (to ``output`` or standard output) and, with ``-o``, a PNG per image with boxes drawn.

        Boxes are in each file's own pixels. The image ids are the file names' numbers when
        every name is one (COCO names images by id: 000000397133.jpg), else the files'
        positions (0, 1, ...), so two files never share an id.
        """
        import io
        import json

        from dlcamp.data.detection import empty_target
        from dlcamp.io import write_bytes, write_json
        from dlcamp.metrics.detection import to_coco_results
        from dlcamp.report import figures as F

        if output is not None and output.suffix.lower() != ".json":
            raise UsageError(f"-o must name a .json file (COCO results), got {str(output)!r}")
        rows = []
        numbered = all(Path(p).stem.isdigit() for p in inputs)
        image_dir = output.with_name(output.stem + "_images") if output is not None else None
        for i, path in enumerate(inputs):
            path = Path(path)
            image = datamodule.load_input(path)
            x = image
            if datamodule.eval_transform is not None:
                x, _ = datamodule.eval_transform(image, empty_target(i))
            det = self.predict_loader([([x], [empty_target(i)])])[0][0]
            sy, sx = image.shape[-2] / x.shape[-2], image.shape[-1] / x.shape[-1]
            det["boxes"] = det["boxes"] * torch.tensor([sx, sy, sx, sy])
            image_id = int(path.stem) if numbered else i
            rows += to_coco_results([det], [image_id], self.category_ids)
            if image_dir is not None:
                keep = det["scores"] >= self.draw_threshold
                png = F.draw_boxes(
                    image, det["boxes"][keep], det["labels"][keep], self.class_names, det["scores"][keep]
                )
                buf = io.BytesIO()
                png.save(buf, format="PNG")
                write_bytes(image_dir / f"{path.stem}.png", buf.getvalue())
        if output is None:
            print(json.dumps(rows))
            return
        write_json(output, rows)
        print(f"{len(rows)} detections in {len(inputs)} images -> {output}; boxes drawn -> {image_dir}/")


@register_task("detection")
def detection(
    *,
    model: nn.Module,
    datamodule: Any,
    training_mode: str = "joint",
    stage_fractions: Sequence[float] = (0.25, 0.25, 0.25, 0.25),
    draw_threshold: float = 0.5,
) -> DetectionTask:
    """Detect objects: the model's own losses, COCO mAP (ours, checked against pycocotools), four-step training."""
    from dlcamp.data.detection import DetectionData
    from dlcamp.models.contracts import Grouped
    from dlcamp.models.detection.base import Detector

    if not isinstance(model, Detector):
        raise UsageError(f"task detection needs a detector (ssd, fasterrcnn), got {type(model).__name__}")
    if not isinstance(datamodule, DetectionData):
        raise UsageError(f"task detection needs detection data (shapes, coco, voc), got {type(datamodule).__name__}")
    if training_mode not in TRAINING_MODES:
        raise UsageError(f"task.training_mode must be one of {', '.join(TRAINING_MODES)}, got {training_mode!r}")
    if training_mode == "four_step":
        if not (isinstance(model, Grouped) and {"body", "rpn", "head"} <= set(model.param_groups())):
            raise UsageError(
                "task.training_mode four_step alternates an RPN and a detector head: "
                "it needs a two-stage model (fasterrcnn)"
            )
        if len(stage_fractions) != 4 or any(f <= 0 for f in stage_fractions):
            raise UsageError(f"task.stage_fractions must be 4 positive numbers, got {list(stage_fractions)}")
    if not 0 <= draw_threshold <= 1:
        raise UsageError(f"task.draw_threshold must be in [0, 1], got {draw_threshold}")
    return DetectionTask(
        model,
        class_names=datamodule.class_names,
        category_ids=datamodule.category_ids,
        training_mode=training_mode,
        stage_fractions=stage_fractions,
        draw_threshold=draw_threshold,
    )
