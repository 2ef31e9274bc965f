"""Density estimation: train an explicit model by maximum likelihood, report NLL in nats.

Training minimises the model's ``nll_loss`` averaged over the batch (the exact -log p(x)
for the autoregressive models, the negative ELBO or IWAE bound for the VAE). Logged:
``train/loss`` and ``val/loss`` in nats per image, their bits per dimension, and for the
VAE the two ELBO terms, ``recon`` (-E_q log p(x|z)) and ``kl``, separately.

Final metrics (``evaluate``): ``nll_nats`` = -mean log p(x) over the split (for the VAE
the IWAE estimate with the model's ``eval_k`` samples), ``bpd`` = nll_nats / (D ln 2), and
for the VAE ``elbo_nats`` (the negative ELBO: an upper bound on the NLL), ``recon_nats`` and
``kl_nats``. The VAE's estimates are random; they are drawn from a generator seeded with 0
so that ``dlcamp eval`` reproduces the summary.

Figures: a grid of samples; completions (autoregressive models: the top half of test
images given, the bottom half drawn three times) or reconstructions (VAE); for the VAE a
grid of decoder means E[x | z] for prior draws, a
latent traversal and the latent map of the test set coloured by class (the two latent
dimensions themselves when Z = 2, else the first two principal components of the means).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from dlcamp.errors import UsageError
from dlcamp.models.generative.base import BinaryAutoregressive, DensityModel, LatentVariableModel
from dlcamp.tasks import register_task
from dlcamp.tasks.base import ImageSampler, Task, evaluating

EVAL_SEED = 0


class LikelihoodTask(Task, ImageSampler):
    """Maximum likelihood for a ``DensityModel``; a ``LatentVariableModel`` (the VAE) adds the
    ELBO's terms and its latent-space figures. Samples on demand (``dlcamp sample``)."""

    def __init__(self, model: DensityModel, *, class_names: list[str]) -> None:
        super().__init__(model)
        self.class_names = list(class_names)
        self.nats_per_bit = math.log(2) * model.num_dims  # nats per image -> bits per dimension

    @property
    def conditional(self) -> bool:
        return self.model.conditional

    def _condition(self, y: torch.Tensor) -> torch.Tensor | None:
        return y if self.model.conditional else None

    def _log_terms(self, terms: dict[str, torch.Tensor], stage: str, batch_size: int) -> torch.Tensor:
        loss = terms["loss"].mean()
        on_step = stage == "train"
        kw = dict(on_epoch=True, batch_size=batch_size, sync_dist=stage != "train")
        self.log(f"{stage}/loss", loss, on_step=on_step, prog_bar=True, **kw)
        self.log(f"{stage}/bpd", loss / self.nats_per_bit, on_step=False, **kw)
        for name in ("recon", "kl"):
            if name in terms:
                self.log(f"{stage}/{name}", terms[name].mean(), on_step=False, **kw)
        return loss

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self._log_terms(self.model.nll_loss(self._prepare(x), self._condition(y)), "train", len(x))
        self.check_finite(loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self._log_terms(self.model.nll_loss(self._prepare(x), self._condition(y)), "val", len(x))

    @torch.no_grad()
    def evaluate(self, loader, prefix: str) -> dict[str, float]:
        with evaluating(self):
            sums: dict[str, float] = {}
            n = 0
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(EVAL_SEED)
                for x, y in loader:
                    x, cond = x.to(self.device), self._condition(y.to(self.device))
                    parts = {"nll_nats": -self.model.log_prob(x, cond)}
                    if isinstance(self.model, LatentVariableModel):
                        terms = self.model.elbo(x, cond)
                        parts.update(elbo_nats=-terms["elbo"], recon_nats=-terms["recon"], kl_nats=terms["kl"])
                    for key, v in parts.items():
                        sums[key] = sums.get(key, 0.0) + v.double().sum().item()
                    n += len(x)
        out = {f"{prefix}/{k}": v / n for k, v in sums.items()}
        out[f"{prefix}/bpd"] = out[f"{prefix}/nll_nats"] / self.nats_per_bit
        return out

    @torch.no_grad()
    def predict_files(self, inputs, datamodule: Any, output: Path | None) -> None:
        """Score image files: CSV rows of file, -log p(x) in nats, bits/dim (binarized as the
        data module's ``load_input`` does). A conditional model scores every class and adds
        the most likely one, argmax_y log p(x | y): a generative classifier."""
        from dlcamp.io import emit_csv

        self.eval()
        x = torch.stack([datamodule.load_input(Path(p)) for p in inputs]).to(self.device)
        header = ["file", "nll_nats", "bpd"]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(EVAL_SEED)
            if self.model.conditional:
                per_class = torch.stack(
                    [
                        self.model.log_prob(x, torch.full((len(x),), k, device=self.device))
                        for k in range(len(self.class_names))
                    ],
                    dim=1,
                )  # (N, K)
                nll, best = -per_class.max(1).values, per_class.argmax(1)
                header += ["most likely class"]
            else:
                nll, best = -self.model.log_prob(x), None
        rows = [header]
        for i, path in enumerate(inputs):
            row = [str(path), f"{float(nll[i]):.4f}", f"{float(nll[i]) / self.nats_per_bit:.4f}"]
            rows.append(row + ([self.class_names[int(best[i])]] if best is not None else []))
        emit_csv(rows, output)

    # -- samples and figures ----------------------------------------------------------------
    @torch.no_grad()
    def sample_images(self, n: int, condition: torch.Tensor | None = None) -> tuple[torch.Tensor, list[str] | None]:
        """n samples (and titles naming the class of a conditional model's draws)."""
        if self.model.conditional and condition is None:
            condition = torch.arange(n) % len(self.class_names)
        with evaluating(self):
            x = self.model.sample(n, condition=condition.to(self.device) if condition is not None else None).cpu()
        titles = [self.class_names[int(c)] for c in condition] if condition is not None else None
        return x, titles

    def figures(self, datamodule: Any, out_dir: Path) -> list[Path]:
        from dlcamp.report import figures as F

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(EVAL_SEED)
            images, titles = self.sample_images(64)
            paths = [
                F.save(
                    F.plot_image_grid(images, titles, suptitle=f"64 samples from {type(self.model).__name__}"),
                    out_dir / "samples.png",
                )
            ]
            test = datamodule.splits["test"]
            x = torch.stack([test[i][0] for i in range(16)])
            y = torch.stack([torch.as_tensor(test[i][1]) for i in range(16)])
            if isinstance(self.model, BinaryAutoregressive):
                paths.append(self._completions(x, out_dir, F))
            elif isinstance(self.model, LatentVariableModel):
                paths += self._vae_figures(x, y, datamodule, out_dir, F)
        return paths

    @torch.no_grad()
    def _completions(self, x: torch.Tensor, out_dir: Path, F) -> Path:
        """Rows: the test image, its top half alone, three completions of the bottom half."""
        self.eval()
        x = x[:8]
        c, h, w = self.model.input_shape
        start = (h // 2) * w
        top = x.clone()
        top.view(len(x), -1)[:, start:] = 0.5  # grey: the hidden half
        done = [self.model.sample(len(x), prefix=x.to(self.device), start=start).cpu() for _ in range(3)]
        grid = torch.cat([x, top, *done])
        return F.save(
            F.plot_image_grid(grid, suptitle="rows: test image, top half given, three completions"),
            out_dir / "completions.png",
        )

    @torch.no_grad()
    def _vae_figures(self, x: torch.Tensor, y: torch.Tensor, datamodule: Any, out_dir: Path, F) -> list[Path]:
        self.eval()
        model = self.model
        cond = self._condition(y)
        mu, _ = model.encode(x, cond)
        recon = model.decode_mean(mu, cond)
        paths = [
            F.save(
                F.plot_image_grid(
                    torch.cat([x[:8], recon[:8], x[8:16], recon[8:16]]),
                    suptitle="test images and their reconstructions E[x | z = mu(x)] (rows in pairs)",
                ),
                out_dir / "reconstructions.png",
            )
        ]
        # what the samples are drawn from: E[x | z] for z ~ N(0, I), grey = uncertain pixel
        z = torch.randn(32, model.latent_dim)
        c32 = (torch.arange(32) % len(self.class_names)) if model.conditional else None
        paths.append(
            F.save(
                F.plot_image_grid(
                    model.decode_mean(z, c32),
                    [self.class_names[int(c)] for c in c32] if c32 is not None else None,
                    suptitle="decoder means E[x | z], z ~ N(0, I): the pixel probabilities samples are drawn from",
                ),
                out_dir / "sample_means.png",
            )
        )
        # latent traversal
        steps = torch.linspace(-2.5, 2.5, 9)
        if model.latent_dim == 2:  # the whole 2-D latent plane at Gaussian quantiles
            q = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, 9))
            z = torch.stack(torch.meshgrid(q, q.flip(0), indexing="xy"), dim=-1).view(-1, 2)
            what = "the latent plane: z at the 5%..95% quantiles of N(0, 1) on each axis"
        else:  # each of the first 8 dimensions swept from -2.5 to 2.5, the others at mu of one test image
            dims = min(8, model.latent_dim)
            z = mu[0].repeat(dims * len(steps), 1)
            for d in range(dims):
                z[d * len(steps) : (d + 1) * len(steps), d] = steps
            what = f"rows: latent dimensions 1..{dims} swept from -2.5 to 2.5 (others at mu of a test image)"
        c = None
        if model.conditional:
            c = torch.full((len(z),), int(y[0]))
            what += f"; class {self.class_names[int(y[0])]}"
        paths.append(
            F.save(F.plot_image_grid(model.decode_mean(z, c), ncols=9, suptitle=what), out_dir / "latent_traversal.png")
        )
        # latent map of the test set
        means, labels = [], []
        for xb, yb in datamodule.split_loader("test"):
            means.append(model.encode(xb, self._condition(yb))[0])
            labels.append(yb)
        means_t, labels_t = torch.cat(means), torch.cat(labels)
        if model.latent_dim == 2:
            pts, axes = means_t, ("z1", "z2")
        else:
            centred = means_t - means_t.mean(0)
            _, _, v = torch.linalg.svd(centred, full_matrices=False)
            pts, axes = centred @ v[:2].T, ("principal component 1 of mu", "principal component 2 of mu")
        paths.append(
            F.save(
                F.plot_latent_map(
                    pts,
                    labels_t,
                    self.class_names,
                    xlabel=axes[0],
                    ylabel=axes[1],
                    title=f"test set: posterior means mu(x), Z = {model.latent_dim}",
                ),
                out_dir / "latent_map.png",
            )
        )
        return paths


@register_task("likelihood")
def likelihood(*, model: nn.Module, datamodule: Any) -> LikelihoodTask:
    """Density estimation: maximum likelihood (or the ELBO), NLL in nats and bits per dimension."""
    if not isinstance(model, DensityModel):
        raise UsageError(
            f"the likelihood task needs a density model (nade, pixelcnn, pixelrnn, vae, ...), "
            f"got {type(model).__name__}"
        )
    names = list(datamodule.class_names) or [str(i) for i in range(datamodule.num_classes)]
    return LikelihoodTask(model, class_names=names)
