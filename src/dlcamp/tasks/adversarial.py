"""Adversarial training: a discriminator and a generator, each stepped by its own optimizer.

Every training batch the discriminator (critic) takes one step on the real batch and a
generated one, ``loss.d(D(x), D(G(z)))`` (plus the gradient penalty for WGAN-GP); every
``n_critic``-th batch the generator then takes one step on fresh noise, ``loss.g(D(G(z)))``
(``dlcamp.models.adversarial.losses``). Conditional models give both players the batch's
labels. With ``ema`` > 0 the generator's weights are also averaged after each of its steps,
and samples come from the average.

Logged: ``train/d_loss`` and ``train/g_loss``; ``train/d_real`` and ``train/d_fake``, D's
mean output on real and generated samples (a probability for the logit losses, the raw
score otherwise); each validation epoch the same on the validation split, and a score of
the samples: for digits the Fréchet distance in the features of dlcamp's own digits
classifier (``val/fid``: 180 samples against the 180 validation digits, a trace, not the
final figure), for 2-D mixtures the modes covered and the fraction of samples within 3σ of
a mode. The fixed noise grid is drawn every epoch to TensorBoard (``tb/``) and kept at
up to eight epochs for the progress figure.

Final metrics (``evaluate``), from samples drawn with a fixed seed: for digits, FID and KID
in the digits classifier's features (not comparable with Inception FID), precision and
recall (Kynkäänniemi et al. 2019, k = 3), all against the evaluated split with as many
samples as it has images, the samples' sharpness, and for conditional models the
classifier's accuracy on the classes asked for; for 2-D mixtures the modes covered and the
high-quality fraction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn

from dlcamp.data.contracts import PointData
from dlcamp.errors import UsageError
from dlcamp.models.adversarial.base import AdversarialModel
from dlcamp.models.adversarial.losses import LOSSES, get_loss, gradient_penalty
from dlcamp.optim.groups import is_multi
from dlcamp.tasks import register_task
from dlcamp.tasks.base import ImageSampler, Task, evaluating

EVAL_SEED = 0
GRID = 64  # the fixed noise grid
SNAPSHOTS = 8  # epochs of the fixed grid kept for the progress figure
POINTS = 2_500  # samples scored on a 2-D mixture
MIN_COUNT_SHARE = 0.1  # a mode is covered with >= 10% of its fair share of high-quality samples
CHUNK = 500


class AdversarialTask(Task, ImageSampler):
    """A GAN game on the multi-optimizer engine: groups ``generator`` and ``discriminator``."""

    def __init__(
        self,
        model: AdversarialModel,
        *,
        class_names: list[str],
        loss: str = "non_saturating",
        n_critic: int = 1,
        gp_weight: float = 10.0,
        ema: float = 0.0,
        features: str = "none",
        centers: torch.Tensor | None = None,
        sigma: float = 0.0,
    ) -> None:
        super().__init__(model)
        self.class_names = list(class_names)
        self.loss = get_loss(loss)
        self.n_critic, self.gp_weight, self.ema = int(n_critic), float(gp_weight), float(ema)
        self.features = features
        if ema:
            model.enable_ema()
        self.register_buffer("centers", centers if centers is not None else torch.zeros(0, 2), persistent=False)
        self.sigma = float(sigma)
        g = torch.Generator().manual_seed(EVAL_SEED)
        n = GRID if model.images else POINTS // 5
        self.register_buffer("fixed_z", model.latent(n, generator=g))
        self.register_buffer("fixed_y", torch.arange(n) % max(1, model.num_classes))
        self.snapshots: list[tuple[int, torch.Tensor]] = []  # (epoch, samples) for the progress figure
        self._val_feats: list[torch.Tensor] = []

    @property
    def conditional(self) -> bool:
        return self.model.conditional

    def _labels(self, y: torch.Tensor) -> torch.Tensor | None:
        return y if self.model.conditional else None

    # -- the engine: one spec is the same optimizer for both players -------------------------
    def configure_engine(self, *, optim: dict[str, Any], **kwargs: Any) -> None:
        if not is_multi(optim):  # the shorthand: one spec, one optimizer per player
            optim = {"generator": dict(optim), "discriminator": dict(optim)}
        super().configure_engine(optim=optim, **kwargs)

    # -- training -----------------------------------------------------------------------------
    def _d_terms(self, x: torch.Tensor, y: torch.Tensor | None, *, penalty: bool = True) -> tuple[torch.Tensor, ...]:
        """The discriminator's loss on a real batch and a generated one, and D's two outputs.

        ``penalty=False`` leaves WGAN-GP's gradient penalty out (validation runs without gradients)."""
        model = self.model
        with torch.no_grad():
            fake = model.generate(model.latent(len(x), device=x.device), y)
        real_out, fake_out = model.discriminate(x, y), model.discriminate(fake, y)
        d_loss = self.loss.d(real_out, fake_out)
        if self.loss.penalty and penalty:
            d_loss = d_loss + self.gp_weight * gradient_penalty(lambda v: model.discriminate(v, y), x, fake)
        return d_loss, real_out.detach(), fake_out.detach()

    def training_step(self, batch, batch_idx):
        x, y = batch
        x, y = self.model.to_model_space(self._prepare(x)), self._labels(y)
        d_loss, real_out, fake_out = self._d_terms(x, y)
        self.check_finite(d_loss)
        self.step_optimizer("discriminator", d_loss)
        logs = {
            "d_loss": d_loss.detach(),
            "d_real": self.loss.shown(real_out).mean(),
            "d_fake": self.loss.shown(fake_out).mean(),
        }
        if self.batches_done() % self.n_critic == self.n_critic - 1:
            z = self.model.latent(len(x), device=x.device)
            g_loss = self.loss.g(self.model.discriminate(self.model.generate(z, y), y))
            self.check_finite(g_loss)
            self.step_optimizer("generator", g_loss)
            if self.ema:  # warmed up: early on the average must not hold the initial weights
                k = self.batches_done() // self.n_critic
                self.model.update_ema(min(self.ema, (1 + k) / (10 + k)))
            logs["g_loss"] = g_loss.detach()
        for name, value in logs.items():
            self.log(
                f"train/{name}", value, on_step=True, on_epoch=False, prog_bar=name.endswith("loss"), batch_size=len(x)
            )

    def validation_step(self, batch, batch_idx):
        x, y = batch
        x, y = self.model.to_model_space(x), self._labels(y)
        d_loss, real_out, fake_out = self._d_terms(x, y, penalty=False)
        kw = dict(on_epoch=True, batch_size=len(x), sync_dist=True)
        self.log("val/d_loss", d_loss, **kw)
        self.log("val/d_real", self.loss.shown(real_out).mean(), **kw)
        self.log("val/d_fake", self.loss.shown(fake_out).mean(), **kw)
        if self.features != "none":
            self._val_feats.append(self._feature_net().features(self.model.to_data_space(x)))

    def on_validation_epoch_end(self) -> None:
        if self.features != "none" and self._val_feats:
            from dlcamp.metrics.samples import fid

            real = torch.cat(self._val_feats)
            self._val_feats = []
            fake = self._feature_net().features(self._samples(len(real))[0])
            self.log("val/fid", fid(fake, real))
        elif len(self.centers):  # a 2-D mixture
            for k, v in self._mode_scores(self._samples(POINTS)[0]).items():
                self.log(f"val/{k}", v)

    def on_train_epoch_end(self) -> None:
        """The fixed noise grid, drawn every epoch (to TensorBoard) and kept at up to eight epochs."""
        with evaluating(self.model):
            samples = self.model.sample(len(self.fixed_z), self._fixed_labels(), z=self.fixed_z).cpu()
        epoch, last = self.current_epoch, max(1, int(self.trainer.max_epochs or 1))
        keep = {round(i * (last - 1) / (SNAPSHOTS - 1)) for i in range(SNAPSHOTS)}
        if epoch in keep:
            self.snapshots.append((epoch, samples))
        if self.model.images:
            from lightning.pytorch.loggers import TensorBoardLogger
            from torchvision.utils import make_grid

            for logger in self.loggers:
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_image("fixed_noise", make_grid(samples, nrow=8), epoch)

    def _fixed_labels(self) -> torch.Tensor | None:
        return self.fixed_y if self.model.conditional else None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["fixed_noise_snapshots"] = list(self.snapshots)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.snapshots = [(int(e), s) for e, s in checkpoint.get("fixed_noise_snapshots", [])]

    # -- samples and their scores ---------------------------------------------------------------
    def _feature_net(self) -> nn.Module:
        from dlcamp.metrics.features import load_digit_features

        return load_digit_features().to(self.device)

    @torch.no_grad()
    def _samples(self, n: int, *, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """n samples in data space (and the classes asked for), in chunks, the model in eval mode."""
        y = torch.arange(n, device=self.device) % self.model.num_classes if self.model.conditional else None
        gen = torch.Generator(device=self.device).manual_seed(seed) if seed is not None else None
        with evaluating(self.model):
            out = [
                self.model.sample(min(CHUNK, n - i), None if y is None else y[i : i + CHUNK], generator=gen)
                for i in range(0, n, CHUNK)
            ]
        return torch.cat(out), y

    def _mode_scores(self, points: torch.Tensor) -> dict[str, float]:
        from dlcamp.metrics.samples import mode_coverage

        k = len(self.centers)
        min_count = max(1, round(MIN_COUNT_SHARE * len(points) / k))
        scores = mode_coverage(points.cpu(), self.centers.cpu(), self.sigma, min_count)
        return {"modes": float(scores["modes_covered"]), "high_quality": float(scores["high_quality"])}

    @torch.no_grad()
    def evaluate(self, loader, prefix: str) -> dict[str, float]:
        from dlcamp.metrics import samples as S

        with evaluating(self):
            real, d_real = [], []
            for x, y in loader:
                x, y = x.to(self.device), y.to(self.device)
                d_real.append(self.loss.shown(self.model.discriminate(self.model.to_model_space(x), self._labels(y))))
                real.append(x)
            real_t = torch.cat(real)
            out = {f"{prefix}/d_real": torch.cat(d_real).mean().item()}
            if len(self.centers):  # a 2-D mixture: modes covered, samples within 3σ
                fake, _ = self._samples(max(POINTS, len(real_t)), seed=EVAL_SEED)
                return out | {f"{prefix}/{k}": v for k, v in self._mode_scores(fake).items()}
            fake, asked = self._samples(len(real_t), seed=EVAL_SEED)
            d_fake = self.loss.shown(self.model.discriminate(self.model.to_model_space(fake), asked))
            out[f"{prefix}/d_fake"] = d_fake.mean().item()
            if self.features == "none":
                return out
            net = self._feature_net()
            f_real, f_fake = net.features(real_t), net.features(fake)
            kid_mean, kid_std = S.kid(
                f_fake, f_real, subset_size=len(f_real) // 2, generator=torch.Generator().manual_seed(EVAL_SEED)
            )
            precision, recall = S.precision_recall(f_real, f_fake)
            out |= {
                f"{prefix}/fid": S.fid(f_fake, f_real),
                f"{prefix}/kid": kid_mean,
                f"{prefix}/kid_std": kid_std,
                f"{prefix}/precision": precision,
                f"{prefix}/recall": recall,
                f"{prefix}/sharpness": S.sharpness(fake),
                f"{prefix}/sharpness_real": S.sharpness(real_t),
            }
            if asked is not None:
                out[f"{prefix}/class_accuracy"] = (net(fake).argmax(1) == asked).float().mean().item()
        return out

    # -- dlcamp sample and figures --------------------------------------------------------------
    def sample_images(self, n: int, condition: torch.Tensor | None = None) -> tuple[torch.Tensor, list[str] | None]:
        if not self.model.images:
            raise UsageError("this model draws 2-D points, not images: its samples are in figures/samples.png")
        if self.model.conditional and condition is None:
            condition = torch.arange(n) % self.model.num_classes
        with evaluating(self.model):
            x = self.model.sample(n, None if condition is None else condition.to(self.device)).cpu()
        titles = [self.class_names[int(c)] for c in condition] if condition is not None else None
        return x, titles

    def figures(self, datamodule: Any, out_dir: Path) -> list[Path]:
        from dlcamp.report import figures as F
        from dlcamp.report.figures.adversarial import (
            plot_adversarial_curves,
            plot_point_progress,
            plot_points,
        )

        series = F.read_metrics_csv(out_dir.parent / "metrics.csv")
        name = type(self.model).__name__
        paths = [F.save(plot_adversarial_curves(series, loss=self.loss.name), out_dir / "training.png")]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(EVAL_SEED)
            if not self.model.images:
                pts, _ = self._samples(POINTS)
                title = f"{POINTS} samples of {name} ({self.loss.name}); circles: 3σ around each mode"
                paths.append(
                    F.save(plot_points(pts.cpu(), self.centers.cpu(), self.sigma, title=title), out_dir / "samples.png")
                )
                if self.snapshots:
                    paths.append(
                        F.save(plot_point_progress(self.snapshots, self.centers.cpu()), out_dir / "progress.png")
                    )
                return paths
            k = self.model.num_classes
            n = 8 * k if k else 64
            images, titles = self.sample_images(n)
            paths.append(
                F.save(
                    F.plot_image_grid(
                        images, titles, ncols=k or 8, suptitle=f"{n} samples from {name} ({self.loss.name})"
                    ),
                    out_dir / "samples.png",
                )
            )
            paths.append(F.save(self._interpolation(F), out_dir / "interpolation.png"))
            if self.snapshots:
                rows = torch.cat([s[:8] for _, s in self.snapshots])
                heads = [f"epoch {e + 1}" if i == 0 else "" for e, _ in self.snapshots for i in range(8)]
                paths.append(
                    F.save(
                        F.plot_image_grid(rows, heads, suptitle="the same fixed noise over training"),
                        out_dir / "progress.png",
                    )
                )
        return paths

    @torch.no_grad()
    def _interpolation(self, F):
        """Eight rows, each a straight line in z between two draws (a conditional row keeps one class)."""
        steps = torch.linspace(0, 1, 10, device=self.device)[:, None]
        z0, z1 = self.model.latent(8, device=self.device), self.model.latent(8, device=self.device)
        z = torch.cat([(1 - steps) * z0[r] + steps * z1[r] for r in range(8)])  # [80, Z]
        y = torch.arange(8, device=self.device).repeat_interleave(10) % max(1, self.model.num_classes)
        with evaluating(self.model):
            x = self.model.sample(len(z), y if self.model.conditional else None, z=z).cpu()
        what = "rows: z moved in a straight line between two draws" + (
            ", one class per row" if self.model.conditional else ""
        )
        return F.plot_image_grid(x, ncols=10, suptitle=what)


@register_task("adversarial")
def adversarial(
    *,
    model: nn.Module,
    datamodule: Any,
    loss: Literal["minimax", "non_saturating", "lsgan", "hinge", "wgan_gp"] = "non_saturating",
    n_critic: int = 1,
    gp_weight: float = 10.0,
    ema: float = 0.0,
    features: Literal["auto", "digits", "none"] = "auto",
) -> AdversarialTask:
    """GAN training: alternating discriminator and generator steps, two optimizers, sample scores."""
    from dlcamp.data.digits import DigitsData

    if not isinstance(model, AdversarialModel):
        raise UsageError(f"the adversarial task needs a GAN (gan, dcgan, cgan, cdcgan), got {type(model).__name__}")
    if loss not in LOSSES:
        raise UsageError(f"task.loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if n_critic < 1 or gp_weight < 0 or not 0 <= ema < 1:
        raise UsageError("task.n_critic must be >= 1, task.gp_weight >= 0 and task.ema in [0, 1)")
    if features not in ("auto", "digits", "none"):
        raise UsageError(f"task.features must be auto, digits or none, got {features!r}")
    if features == "auto":
        features = "digits" if isinstance(datamodule, DigitsData) else "none"
    if features == "digits" and (not model.images or model.input_shape[0] != 1):
        raise UsageError(f"task.features=digits scores grey images; this model makes {model.input_shape}")
    centers, sigma = None, 0.0
    if isinstance(datamodule, PointData):
        centers, sigma = torch.as_tensor(datamodule.centers, dtype=torch.float32), float(datamodule.sigma)
    names = list(datamodule.class_names) or [str(i) for i in range(datamodule.num_classes)]
    return AdversarialTask(
        model,
        class_names=names,
        loss=loss,
        n_critic=n_critic,
        gp_weight=gp_weight,
        ema=ema,
        features=features,
        centers=centers,
        sigma=sigma,
    )
