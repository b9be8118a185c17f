"""Figures for the report (matplotlib, Agg backend, PNG): what each encoder learned and how the table looks.

- :func:`inpainting_examples`: masked input / each method's output / original, centre hole, held-out images;
- :func:`conv1_filters`: the 96 conv1 filters of every encoder;
- :func:`tsne_pool5`: t-SNE of pool5 features of held-out images, coloured by the image's main class;
- :func:`loss_curves`: pretraining loss per step from each run's ``metrics.jsonl``;
- :func:`table_bars`: the results table as grouped bars with 95% CI error bars and the paper's numbers;
- :func:`layer_randomisation`: re-draw one layer at a time of an inpainting model from its initial
  distribution (encoder conv1…conv5; for the semantic-inpainting net also its bottleneck and up-convs) and
  measure how much worse it fills a centre hole on held-out images;
- :func:`layer_randomisation_outputs`: the same re-draws as images, one row per layer with its hole error;
- :func:`tsne_code`: t-SNE of the semantic-inpainting net's bottleneck code (4000-d) of held-out images;
- :func:`gan_curves`: generator and discriminator losses and the discriminator's accuracy of GAN runs.

Inputs are pretraining run folders (``bench pretrain --out``), ``encoder.pt`` files, a VOC root and the
table's numeric frame. Every function writes one PNG atomically and returns its path. Held-out images are
the VOC ``Main/test`` split (never seen in pretraining: on SynthVOC the pool is disjoint from it), centre-
cropped at the run's image size as in the pretraining sample grids.
"""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ssl_bench.atomic import atomic_open, atomic_write_json  # noqa: E402
from ssl_bench.data.masks import center_mask, fill_holes  # noqa: E402
from ssl_bench.data.transforms import denormalize, normalize, to_tensor  # noqa: E402
from ssl_bench.data.voc import VOC_CLASSES, load_image, parse_annotation, read_image_set  # noqa: E402
from ssl_bench.encoders import load_encoder, read_weights_file  # noqa: E402
from ssl_bench.errors import CheckpointError  # noqa: E402
from ssl_bench.evaluators.features import image_features  # noqa: E402
from ssl_bench.evaluators.inpainting_baselines import classic_inpaint  # noqa: E402
from ssl_bench.evaluators.inpainting_data import HOLE_AREA, TEST_SPLIT  # noqa: E402  (the inpaint evaluator's)
from ssl_bench.methods.base import PretrainMethod  # noqa: E402
from ssl_bench.methods.registry import method_class  # noqa: E402
from ssl_bench.metrics.filters import conv1_structure  # noqa: E402
from ssl_bench.metrics.inpainting import hole_errors, summarize_hole_errors  # noqa: E402
from ssl_bench.training.run_folder import RunFolder  # noqa: E402

DPI = 110
# Classic inpainting rows of the inpainting grid (``evaluators/inpainting_baselines.py``), with their names.
GRID_BASELINES = {"telea": "Telea", "ns": "Navier-Stokes", "biharmonic": "biharmonic"}


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Write ``fig`` as PNG atomically (no timestamp in the file, so equal inputs give equal bytes)."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    with atomic_open(path, "wb") as f:
        f.write(buf.getvalue())
    return path


def _message_figure(path: Path, title: str, message: str) -> Path:
    """A figure that says why there is nothing to draw, instead of no file (the report links it)."""
    fig, ax = plt.subplots(figsize=(6, 1.6))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.4, message, ha="center", va="center", wrap=True)
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------------------------
# Inputs


def held_out_images(
    voc_root: Path, num_images: int, image_size: int, split: str = TEST_SPLIT
) -> tuple[torch.Tensor, list[str]]:
    """Evenly spaced images of ``ImageSets/Main/<split>.txt``, centre crops, normalised.

    Returns:
        (images [N, 3, S, S], their ids).
    """
    ids = read_image_set(voc_root, split, "Main")
    picks = np.unique(np.linspace(0, len(ids) - 1, min(num_images, len(ids))).round().astype(int))
    chosen = [ids[i] for i in picks]
    out = []
    for image_id in chosen:
        image = load_image(Path(voc_root) / "JPEGImages" / f"{image_id}.jpg")
        w, h = image.size
        scale = image_size / min(w, h)  # shorter side → S, then the centre (the sample grids' crop)
        rw, rh = max(image_size, round(w * scale)), max(image_size, round(h * scale))
        image = image.resize((rw, rh), resample=2)
        x0, y0 = (rw - image_size) // 2, (rh - image_size) // 2
        out.append(normalize(to_tensor(image.crop((x0, y0, x0 + image_size, y0 + image_size)))))
    return torch.stack(out), chosen


def main_classes(voc_root: Path, ids: Sequence[str]) -> np.ndarray:
    """Per image, the class of its largest non-difficult object (largest of any if all are difficult)."""
    out = []
    for image_id in ids:
        ann = parse_annotation(Path(voc_root) / "Annotations" / f"{image_id}.xml")
        boxes, labels = ann["boxes"], ann["labels"]
        if len(labels) == 0:
            out.append(-1)
            continue
        area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
        area = np.where(ann["difficult"], area * 1e-6, area)  # difficult objects only as a last resort
        out.append(int(labels[int(np.argmax(area))]))
    return np.array(out)


def _runs_with_decoder(runs: Mapping[str, Path]) -> dict[str, RunFolder]:
    """The runs whose method can inpaint (random, datainit and supervised have no decoder)."""
    folders = {m: RunFolder(r) for m, r in runs.items()}
    return {m: run for m, run in folders.items() if run.has_decoder}


def _to_image(x: torch.Tensor) -> np.ndarray:
    """Normalised [3, H, W] → displayable [H, W, 3] in [0, 1]."""
    return denormalize(x.float().cpu()).permute(1, 2, 0).numpy()


# ------------------------------------------------------------------------------------------------------
# Figures


@torch.no_grad()
def inpainting_examples(
    runs: Mapping[str, Path],
    voc_root: Path,
    out: Path,
    num_images: int = 6,
    device: str = "cpu",
    baselines: Sequence[str] = (),
) -> Path:
    """Rows: masked input, each inpainting method's output, each classic baseline's, original; columns:
    held-out images.

    Methods without a decoder (random, datainit, supervised) cannot inpaint and are left out (named in
    the title). The hole is the centre quarter (Table 1's protocol), filled with each method's own fill.
    ``baselines``: keys of :data:`GRID_BASELINES` (OpenCV's Telea and Navier–Stokes, scikit-image's
    biharmonic), run on the 8-bit images as the ``inpaint`` evaluator runs them.
    """
    decoders = _runs_with_decoder(runs)
    if not decoders:
        return _message_figure(
            out, "Inpainting examples", "no run with a decoder (context_encoder, autoencoder)"
        )
    size = int(next(iter(decoders.values())).config["data"]["image_size"])
    images, _ = held_out_images(voc_root, num_images, size)  # [N, 3, S, S]
    mask = center_mask(size, area=HOLE_AREA).expand(len(images), 1, size, size)  # [N, 1, S, S]
    rows: list[tuple[str, torch.Tensor]] = []
    for name, run in decoders.items():
        method = run.load_method().to(device)
        if not rows:
            rows.append(("masked input", fill_holes(images, mask, method.fill.cpu())))
        rows.append((f"{name}\noutput", method.inpaint(images.to(device), mask.to(device)).cpu()))
    eight_bit = (denormalize(images).clamp(0, 1) * 255).round() / 255  # [N, 3, S, S] in [0, 1]
    for key in baselines:
        filled = classic_inpaint(eight_bit, mask, key).float()  # [N, 3, S, S] in [0, 1]
        rows.append((GRID_BASELINES[key], normalize(filled)))
    rows.append(("original", images))
    skipped = sorted(set(runs) - set(decoders))
    title = "Centre-hole inpainting on held-out images"
    if skipped:
        title += f"\n(no decoder: {', '.join(skipped)})"
    return _image_rows(rows, title, out)


def _image_rows(rows: Sequence[tuple[str, torch.Tensor]], title: str, out: Path) -> Path:
    """One row of images per (label, normalised batch [n, 3, S, S]), the label on the left; saved to out."""
    n = len(rows[0][1])
    fig, axes = plt.subplots(
        len(rows), n, figsize=(1.5 * n + 0.8, 1.5 * len(rows) + 0.4), squeeze=False, layout="constrained"
    )
    for r, (label, batch) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(_to_image(batch[c]))
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, out)


def filter_mosaic(weight: torch.Tensor, columns: int = 12) -> np.ndarray:
    """conv1 weights [K, 3, k, k] → one RGB mosaic, each filter min–max scaled on its own, 1-px gaps."""
    w = weight.detach().float().cpu()
    k, _, h, wd = w.shape
    rows = math.ceil(k / columns)
    mosaic = np.ones((rows * (h + 1) - 1, columns * (wd + 1) - 1, 3))
    for i in range(k):
        f = w[i]
        f = (f - f.min()) / (f.max() - f.min() + 1e-12)
        r, c = divmod(i, columns)
        mosaic[r * (h + 1) : r * (h + 1) + h, c * (wd + 1) : c * (wd + 1) + wd] = f.permute(1, 2, 0).numpy()
    return mosaic


def conv1_filters(weights: Mapping[str, Path], out: Path) -> Path:
    """One panel per encoder with its conv1 filters (96 of 11×11×3 for CaffeNet), titled with their
    structure (``metrics.filters.conv1_structure``: about 0 for a Gaussian init, high for smooth edges and
    colour blobs)."""
    items = list(weights.items())
    if not items:
        return _message_figure(out, "conv1 filters", "no encoder weights")
    fig, axes = plt.subplots(1, len(items), figsize=(3.4 * len(items), 3.0), squeeze=False)
    for ax, (name, path) in zip(axes[0], items, strict=True):
        ax.set_xticks([])
        ax.set_yticks([])
        state = read_weights_file(path, "encoder weights")
        key = next((k for k in ("conv1.weight", "features.0.weight") if k in state), None)
        if key is None or state[key].shape[1] != 3:
            ax.set_title(name, fontsize=9)
            ax.text(0.5, 0.5, "no RGB conv1", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.set_title(f"{name}\nstructure {conv1_structure(state[key]):.2f}", fontsize=9)
        ax.imshow(filter_mosaic(state[key]), interpolation="nearest")
    fig.suptitle("conv1 filters (each scaled to its own range)", fontsize=10)
    return save_figure(fig, out)


@torch.no_grad()
def pool5_features(
    weights: Path, images: torch.Tensor, arch: str = "caffenet", device: str = "cpu", batch_size: int = 32
) -> np.ndarray:
    """Flattened pool5 features [N, 9216] of ``images`` through the encoder in ``weights``, by the
    evaluators' frozen-feature extractor (the same features cls-linear and knn see)."""
    return image_features(load_encoder(weights, arch), images, "pool5", device=device, batch_size=batch_size)


def tsne_embedding(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE of features (PCA to ≤ 50 dims first, the usual preprocessing for speed and noise).

    Runs on one thread: scikit-learn's Barnes-Hut gradient is OpenMP-parallel per iteration, which on a busy
    machine spends far more time synchronising than computing (measured: 30 s vs 0.1 s for 10 points under
    load), and one thread also makes the embedding, hence the PNG, reproducible.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = len(features)
    x = features.astype(np.float64)
    dims = min(50, n - 1, x.shape[1])
    perplexity = float(max(2.0, min(30.0, (n - 1) / 3.0)))
    with threadpool_limits(1):
        if dims >= 2:
            x = PCA(n_components=dims, random_state=seed).fit_transform(x)
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def _tsne_figure(
    features: Mapping[str, np.ndarray | str], classes: np.ndarray, out: Path, title: str, seed: int = 0,
    progress: bool = True,
) -> Path:
    """One t-SNE panel per entry (features [N, D], or a message why there are none), coloured by class."""
    fig, axes = plt.subplots(1, len(features), figsize=(3.6 * len(features), 3.6), squeeze=False)
    cmap = plt.get_cmap("tab20")
    items = list(features.items())
    for ax, (name, x) in zip(axes[0], tqdm(items, desc="t-SNE", disable=not progress), strict=True):
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if isinstance(x, str):
            ax.text(0.5, 0.5, x, ha="center", va="center", transform=ax.transAxes, fontsize=8, wrap=True)
            continue
        xy = tsne_embedding(x, seed)
        ax.scatter(xy[:, 0], xy[:, 1], c=[cmap(c % 20) if c >= 0 else (0.6, 0.6, 0.6) for c in classes], s=7)
    present = sorted({int(c) for c in classes if c >= 0})
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=cmap(c % 20), label=VOC_CLASSES[c]) for c in present
    ]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(10, len(handles)) or 1,
        fontsize=7,
        frameon=False,
        bbox_to_anchor=(0.5, -0.08),
    )
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, out)


def tsne_pool5(
    weights: Mapping[str, Path],
    voc_root: Path,
    out: Path,
    max_images: int = 300,
    image_size: int = 227,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """t-SNE of pool5 features of held-out images, one panel per encoder, coloured by main class.

    An ``encoder.pt`` that is not a CaffeNet (the semantic-inpainting net's DCGAN encoder) gets a panel
    that says so.
    """
    if not weights:
        return _message_figure(out, "t-SNE of pool5 features", "no encoder weights")
    images, ids = held_out_images(voc_root, max_images, image_size)
    features: dict[str, np.ndarray | str] = {}
    for name, path in weights.items():
        try:
            features[name] = pool5_features(path, images, device=device)
        except CheckpointError:
            features[name] = "not a CaffeNet encoder:\nno pool5"
    title = (
        f"t-SNE of pool5 features, {len(images)} held-out images ({TEST_SPLIT}), "
        "coloured by the largest object's class"
    )
    return _tsne_figure(features, main_classes(voc_root, ids), out, title, seed, progress)


@torch.no_grad()
def tsne_code(
    runs: Mapping[str, Path],
    voc_root: Path,
    out: Path,
    max_images: int = 300,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """t-SNE of the bottleneck code (``method.encode``: the semantic-inpainting net's 4000-d code) of
    held-out images with the centre hole filled, as the decoder reads it, one panel per run."""
    coders = {m: RunFolder(r) for m, r in runs.items()}
    coders = {m: run for m, run in coders.items() if hasattr(method_class(run.method_name), "encode")}
    if not coders:
        return _message_figure(out, "t-SNE of the code", "no run with a bottleneck code (semantic nets)")
    features: dict[str, np.ndarray | str] = {}
    ids: list[str] = []
    dims = set()
    for name, run in coders.items():
        method = run.load_method().to(device)
        size = int(run.config["data"]["image_size"])
        images, ids = held_out_images(voc_root, max_images, size)
        mask = center_mask(size, area=HOLE_AREA).expand(len(images), 1, size, size)
        codes = [
            method.encode(images[i : i + 32].to(device), mask[i : i + 32].to(device)).cpu()
            for i in range(0, len(images), 32)
        ]
        features[name] = torch.cat(codes).numpy()  # [N, D]
        dims.add(features[name].shape[1])
    title = (
        f"t-SNE of the {'/'.join(map(str, sorted(dims)))}-d bottleneck code, {len(ids)} held-out images "
        f"({TEST_SPLIT}, centre hole filled), coloured by the largest object's class"
    )
    return _tsne_figure(features, main_classes(voc_root, ids), out, title, seed, progress)


def loss_curves(runs: Mapping[str, Path], out: Path) -> Path:
    """Pretraining loss per logged step, one panel per trained method; inpainting runs also show the hole L2
    (%) of their fixed sample batch against the mean-fill baseline (the ``sample_l2`` / ``fill_l2`` rows)."""
    series = {m: RunFolder(r).metrics() for m, r in runs.items()}
    series = {m: rows for m, rows in series.items() if any("loss" in x for x in rows)}
    if not series:
        return _message_figure(out, "Pretraining loss", "no trained run (random and datainit do not train)")
    fig, axes = plt.subplots(1, len(series), figsize=(3.6 * len(series), 3.0), squeeze=False)
    for ax, (name, rows) in zip(axes[0], series.items(), strict=True):
        steps = [x["step"] for x in rows if "loss" in x]
        ax.plot(steps, [x["loss"] for x in rows if "loss" in x], lw=1.2, label="training loss")
        samples = [x for x in rows if "sample_l2" in x]
        if samples:
            ax.plot(
                [x["step"] for x in samples],
                [x["sample_l2"] for x in samples],
                "o-",
                ms=3,
                lw=0.8,
                label="sample hole L2 (%)",
            )
            ax.plot(
                [x["step"] for x in samples],
                [x["fill_l2"] for x in samples],
                "--",
                lw=0.8,
                label="mean fill hole L2 (%)",
            )
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend(fontsize=7, loc="lower left")
        accuracy = [x for x in rows if "accuracy" in x]
        if accuracy:  # the pretext's own accuracy, on a right-hand axis
            right = ax.twinx()
            right.plot([x["step"] for x in accuracy], [x["accuracy"] for x in accuracy], color="tab:green",
                       lw=0.8, alpha=0.8, label="pretext accuracy")
            right.set_ylim(0, 1)
            right.legend(fontsize=7, loc="upper right")
    fig.suptitle("Pretraining curves (metrics.jsonl)", fontsize=10)
    return save_figure(fig, out)


# (metrics.jsonl key, label) of the GAN curves: the generator's losses and the discriminator's.
GAN_LOSSES = (("loss", "G: joint loss"), ("l2", "G: L2 (unweighted)"),
              ("adversarial", "G: adversarial (BCE)"), ("loss_discriminator", "D: BCE"))  # fmt: skip
GAN_ACCURACIES = (("d_accuracy_real", "D accuracy, originals"), ("d_accuracy_fake", "D accuracy, fills"))


def gan_curves(runs: Mapping[str, Path], out: Path) -> Path:
    """Per GAN run (``loss_discriminator`` in its ``metrics.jsonl``): left, the generator's joint loss, its
    L2 and adversarial terms and the discriminator's loss; right, the discriminator's accuracy on the
    original regions and on the predictions (0.5 each: it cannot tell; 1 on both for long: it has won)."""
    series = {m: RunFolder(r).metrics() for m, r in runs.items()}
    series = {m: rows for m, rows in series.items() if any("loss_discriminator" in x for x in rows)}
    if not series:
        return _message_figure(out, "GAN curves", "no run with a discriminator (semantic_inpainting)")
    fig, axes = plt.subplots(
        len(series), 2, figsize=(8.0, 2.8 * len(series)), squeeze=False, layout="constrained"
    )
    for (left, right), (name, rows) in zip(axes, series.items(), strict=True):
        rows = [x for x in rows if "loss_discriminator" in x]
        steps = [x["step"] for x in rows]
        for key, label in GAN_LOSSES:
            if all(key in x for x in rows):
                left.plot(steps, [x[key] for x in rows], lw=1.0, label=label)
        left.set_yscale("log")
        left.set_xlabel("step")
        left.set_title(f"{name}: losses", fontsize=9)
        left.legend(fontsize=7)
        for key, label in GAN_ACCURACIES:
            if all(key in x for x in rows):
                right.plot(steps, [x[key] for x in rows], lw=1.0, label=label)
        right.axhline(0.5, color="grey", ls="--", lw=0.8)
        right.set_ylim(-0.02, 1.02)
        right.set_xlabel("step")
        right.set_title(f"{name}: discriminator accuracy", fontsize=9)
        right.legend(fontsize=7)
    fig.suptitle("Generator and discriminator (metrics.jsonl, one point per logged step)", fontsize=10)
    return save_figure(fig, out)


def table_bars(
    frame: pd.DataFrame,
    out: Path,
    tasks: Sequence[str] | None = None,
    metrics: Mapping[str, str | None] | None = None,
) -> Path:
    """Grouped bars: one group per task, one bar per method, 95% CI error bars, the paper's numbers as ×.

    Args:
        frame: :meth:`ResultsTable.numeric_frame` (``<task>.mean``, ``.ci95``, ``.paper``, ``.diff`` …).
        tasks: groups to draw (default: every task in the frame).
        metrics: task → metric name, for the axis labels.
    """
    tasks = list(tasks or [c[:-5] for c in frame.columns if c.endswith(".mean")])
    if frame.empty or not tasks:
        return _message_figure(out, "Results", "no results")
    labels = [
        m if frame["profile"].nunique() == 1 else f"{m} ({p})"
        for m, p in zip(frame["method"], frame["profile"], strict=True)
    ]
    width = 0.8 / len(frame)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.8 * len(tasks) + 0.3 * len(frame)), 3.6))
    cmap = plt.get_cmap("tab10")
    for i, (label, (_, row)) in enumerate(zip(labels, frame.iterrows(), strict=True)):
        x = np.arange(len(tasks)) + (i - (len(frame) - 1) / 2) * width
        means = np.array([_num(row.get(f"{t}.mean")) for t in tasks])
        errs = np.array([_num(row.get(f"{t}.ci95"), 0.0) for t in tasks])
        ax.bar(x, np.nan_to_num(means), width, yerr=errs, capsize=2, color=cmap(i % 10), label=label)
        for xi, t, m in zip(x, tasks, means, strict=True):
            paper = _num(row.get(f"{t}.paper"))
            if (
                not math.isnan(paper)
                and row.get(f"{t}.diff") is not None
                and not pd.isna(row.get(f"{t}.diff"))
            ):
                ax.plot(xi, paper, marker="x", color="black", ms=6)
            if math.isnan(m):
                ax.text(
                    xi,
                    0,
                    str(row.get(f"{t}.status", "missing")),
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=6,
                )
    names = [f"{t}\n{(metrics or {}).get(t) or row_metric(frame, t)}" for t in tasks]
    ax.set_xticks(np.arange(len(tasks)), names, fontsize=8)
    ax.set_ylabel("score (AP / IU in %)")
    ax.plot([], [], "x", color="black", label="paper (same metric)")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Transfer results: mean ± 95% CI over seeds", fontsize=10)
    return save_figure(fig, out)


def row_metric(frame: pd.DataFrame, task: str) -> str:
    col = f"{task}.metric"
    if col not in frame:
        return ""
    values = [v for v in frame[col] if isinstance(v, str)]
    return values[0] if values else ""


def _num(x: Any, default: float = float("nan")) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(v) else v


def _redrawn(trained: PretrainMethod, layer_name: str, generator: torch.Generator) -> PretrainMethod:
    """A copy of ``trained`` with one of its ``inpainting_layers()`` re-drawn (``PretrainMethod.redraw_``)."""
    model = copy.deepcopy(trained)
    model.redraw_(model.inpainting_layers()[layer_name], generator)
    return model


def hole_l2_pct(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """Table 1's hole L2 (%) of normalised images, compared in [0, 1] (``ssl_bench.metrics.inpainting``)."""
    errors = hole_errors(denormalize(pred.float()), denormalize(target.float()), mask)  # (l1 [N], mse [N])
    return summarize_hole_errors(*errors)["l2_pct"]


@torch.no_grad()
def inpainting_l2_pct(
    method: PretrainMethod, images: torch.Tensor, mask: torch.Tensor, batch_size: int = 16
) -> float:
    """:func:`hole_l2_pct` of ``method``'s inpainting of normalised ``images``, in batches."""
    l1, mse = [], []
    for i in range(0, len(images), batch_size):
        x, m = images[i : i + batch_size], mask[i : i + batch_size]
        errors = hole_errors(denormalize(method.inpaint(x, m).float()), denormalize(x.float()), m)  # [B] each
        l1.append(errors[0])
        mse.append(errors[1])
    return summarize_hole_errors(torch.cat(l1), torch.cat(mse))["l2_pct"]


@torch.no_grad()
def layer_randomisation(
    runs: Mapping[str, Path],
    voc_root: Path,
    out: Path,
    num_images: int = 64,
    draws: int = 3,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """Centre-hole error after re-randomising one layer at a time, per inpainting method.

    For each run with a decoder: the hole L2 (%) of the trained model, then for each of its
    ``inpainting_layers()`` the mean (and spread) over ``draws`` re-draws of that layer alone, and the
    mean-fill baseline. A layer whose re-randomisation costs little carried little of what the model uses
    to inpaint.

    Returns:
        (PNG path, the numbers — also written beside the PNG as ``<name>.json``).
    """
    decoders = _runs_with_decoder(runs)
    results: dict[str, Any] = {
        "metric": "hole L2 % (100 * mean squared error on the centre hole, [0,1] pixels)",
        "num_images": 0,
        "draws": draws,
        "methods": {},
    }
    if not decoders:
        path = _message_figure(
            out, "Layer randomisation", "no run with a decoder (context_encoder, autoencoder)"
        )
        atomic_write_json(Path(out).with_suffix(".json"), results)
        return path, results
    for name, run in tqdm(decoders.items(), desc="layer randomisation", disable=not progress):
        trained = run.load_method().to(device)
        size = int(run.config["data"]["image_size"])
        images, _ = held_out_images(voc_root, num_images, size)
        images = images.to(device)
        mask = center_mask(size, area=HOLE_AREA).expand(len(images), 1, size, size).to(device)
        results["num_images"] = len(images)
        entry: dict[str, Any] = {
            "trained": inpainting_l2_pct(trained, images, mask),
            "mean_fill": hole_l2_pct(fill_holes(images, mask, trained.fill), images, mask),
            "layers": {},
        }
        generator = torch.Generator().manual_seed(seed)
        for layer_name in trained.inpainting_layers():
            values = []
            for _ in range(draws):
                values.append(inpainting_l2_pct(_redrawn(trained, layer_name, generator), images, mask))
            entry["layers"][layer_name] = {
                "mean": float(np.mean(values)),
                "std": float(np.std(values)),
                "values": values,
            }
        results["methods"][name] = entry

    layers = list(dict.fromkeys(k for entry in results["methods"].values() for k in entry["layers"]))
    fig, ax = plt.subplots(figsize=(max(5.6, 0.6 * len(layers) + 2.0), 3.4))
    xs = ["none", *layers]
    for i, (name, entry) in enumerate(results["methods"].items()):
        ys = [entry["trained"]] + [entry["layers"].get(k, {}).get("mean", np.nan) for k in layers]
        es = [0.0] + [entry["layers"].get(k, {}).get("std", 0.0) for k in layers]
        ax.errorbar(range(len(xs)), ys, yerr=es, marker="o", capsize=3, color=f"C{i}", label=name)
        ax.axhline(entry["mean_fill"], color=f"C{i}", ls="--", lw=0.8, label=f"{name}: mean fill")
    ax.set_xticks(range(len(xs)), xs, rotation=30 if len(xs) > 6 else 0, fontsize=8)
    ax.set_xlabel("layer re-randomised")
    ax.set_ylabel("centre-hole L2 error (%)")
    ax.set_title(
        f"Layer randomisation: {results['num_images']} held-out images, {draws} draws per layer", fontsize=10
    )
    ax.legend(fontsize=7)
    path = save_figure(fig, out)
    atomic_write_json(Path(out).with_suffix(".json"), results)
    return path, results


@torch.no_grad()
def layer_randomisation_outputs(
    run: Path, voc_root: Path, out: Path, num_images: int = 4, seed: int = 0, device: str = "cpu"
) -> Path:
    """One run's fills of a centre hole as each of its ``inpainting_layers()`` is re-drawn in turn (one
    draw each, the first draw of :func:`layer_randomisation` with the same seed): rows masked input, the
    trained net, one per re-drawn layer (its hole L2 % on these images in the label), original."""
    folder = RunFolder(run)
    if not folder.has_decoder:
        return _message_figure(out, "Layer randomisation", f"{folder.method_name} has no decoder")
    trained = folder.load_method().to(device)
    size = int(folder.config["data"]["image_size"])
    images, _ = held_out_images(voc_root, num_images, size)
    images = images.to(device)
    mask = center_mask(size, area=HOLE_AREA).expand(len(images), 1, size, size).to(device)
    rows = [("masked input", fill_holes(images, mask, trained.fill))]
    generator = torch.Generator().manual_seed(seed)
    for layer_name, model in [("trained", trained)] + [
        (name, _redrawn(trained, name, generator)) for name in trained.inpainting_layers()
    ]:
        filled = model.inpaint(images, mask)
        label = layer_name if layer_name == "trained" else f"{layer_name} re-drawn"
        rows.append((f"{label}\nL2 {hole_l2_pct(filled, images, mask):.2f}%", filled))
    rows.append(("original", images))
    return _image_rows(rows, f"{folder.method_name}: one layer re-drawn from its init at a time", out)
