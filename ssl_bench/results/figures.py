"""Figures for the report (matplotlib, Agg backend, PNG): what each encoder learned and how the table looks.

Drawing only: the numbers and arrays come from ``analyses.py`` (held-out images through the models, t-SNE,
layer re-randomisation), from each run's ``metrics.jsonl`` and from the table. Each ``draw_*`` function
draws one analysis's data, as returned or as saved (``ImageGrid.load``, the JSON of ``analyses.write_json``);
the figure functions below compute, then draw, from the inputs ``bench reproduce`` has:

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
table's numeric frame. Every function writes one PNG atomically and returns its path.
"""

from __future__ import annotations

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

from ssl_bench.atomic import atomic_open  # noqa: E402
from ssl_bench.data.voc import VOC_CLASSES  # noqa: E402
from ssl_bench.results import analyses as A  # noqa: E402
from ssl_bench.results.analyses import ImageGrid  # noqa: E402
from ssl_bench.runtime.run_folder import RunFolder  # noqa: E402

DPI = 110
GRID_BASELINES = A.GRID_BASELINES  # the classic inpainters the inpainting grid can show (reproduce's list)


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
# Drawing an analysis's data


def draw_image_grid(grid: ImageGrid, out: Path) -> Path:
    """One row of images per (label, [n, S, S, 3] in [0, 1]), the label on the left; saved to out."""
    n = len(grid.rows[0][1])
    fig, axes = plt.subplots(
        len(grid.rows), n, figsize=(1.5 * n + 0.8, 1.5 * len(grid.rows) + 0.4), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    for r, (label, images) in enumerate(grid.rows):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(images[c])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
    fig.suptitle(grid.title, fontsize=10)
    return save_figure(fig, out)


def draw_conv1_filters(panels: Mapping[str, tuple[np.ndarray, float] | str], out: Path) -> Path:
    """One panel per encoder (:func:`analyses.conv1_panels`): its conv1 mosaic titled with its structure,
    or the message why there is none."""
    if not panels:
        return _message_figure(out, "conv1 filters", "no encoder weights")
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.0), squeeze=False)
    for ax, (name, panel) in zip(axes[0], panels.items(), strict=True):
        ax.set_xticks([])
        ax.set_yticks([])
        if isinstance(panel, str):
            ax.set_title(name, fontsize=9)
            ax.text(0.5, 0.5, panel, ha="center", va="center", transform=ax.transAxes)
            continue
        mosaic, structure = panel
        ax.set_title(f"{name}\nstructure {structure:.2f}", fontsize=9)
        ax.imshow(mosaic, interpolation="nearest")
    fig.suptitle("conv1 filters (each scaled to its own range)", fontsize=10)
    return save_figure(fig, out)


def draw_tsne(data: Mapping[str, Any], out: Path) -> Path:
    """One t-SNE panel per entry of ``data["panels"]`` (an embedding [[x, y] × N] or a message why there
    is none), points coloured by ``data["classes"]`` (VOC class index; -1 grey), titled ``data["title"]``
    (:func:`analyses.tsne_pool5_panels`, :func:`analyses.tsne_code_panels`, or their saved JSON)."""
    panels, classes = data["panels"], data["classes"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), squeeze=False)
    cmap = plt.get_cmap("tab20")
    for ax, (name, xy) in zip(axes[0], panels.items(), strict=True):
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if isinstance(xy, str):
            ax.text(0.5, 0.5, xy, ha="center", va="center", transform=ax.transAxes, fontsize=8, wrap=True)
            continue
        xy = np.asarray(xy)
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
    fig.suptitle(data["title"], fontsize=10)
    return save_figure(fig, out)


def draw_layer_randomisation(results: Mapping[str, Any], out: Path) -> Path:
    """Hole error per re-drawn layer (mean ± std over draws), one line per method, its mean fill dashed
    (:func:`analyses.layer_randomisation_errors`, or its saved JSON)."""
    if not results["methods"]:
        return _message_figure(out, "Layer randomisation", A.NO_DECODER)
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
        f"Layer randomisation: {results['num_images']} held-out images, {results['draws']} draws per layer",
        fontsize=10,
    )
    ax.legend(fontsize=7)
    return save_figure(fig, out)


# ------------------------------------------------------------------------------------------------------
# Figures: compute (analyses.py), then draw


def inpainting_examples(
    runs: Mapping[str, Path],
    voc_root: Path,
    out: Path,
    num_images: int = 6,
    device: str = "cpu",
    baselines: Sequence[str] = (),
) -> Path:
    """The inpainting grid of :func:`analyses.inpainting_example_grid` (rows: masked input, each method's
    fill, each classic baseline's, original; columns: held-out images)."""
    grid = A.inpainting_example_grid(runs, voc_root, num_images, device, baselines)
    if isinstance(grid, str):
        return _message_figure(out, "Inpainting examples", grid)
    return draw_image_grid(grid, out)


def conv1_filters(weights: Mapping[str, Path], out: Path) -> Path:
    """One panel per encoder with its conv1 filters (96 of 11×11×3 for CaffeNet), titled with their
    structure (``metrics.filters.conv1_structure``: about 0 for a Gaussian init, high for smooth edges and
    colour blobs)."""
    return draw_conv1_filters(A.conv1_panels(weights), out)


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
    """t-SNE of pool5 features of held-out images, one panel per encoder, coloured by main class
    (:func:`analyses.tsne_pool5_panels`; a non-CaffeNet encoder gets a panel that says so)."""
    data = A.tsne_pool5_panels(weights, voc_root, max_images, image_size, seed, device, progress)
    if isinstance(data, str):
        return _message_figure(out, "t-SNE of pool5 features", data)
    return draw_tsne(data, out)


def tsne_code(
    runs: Mapping[str, Path],
    voc_root: Path,
    out: Path,
    max_images: int = 300,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """t-SNE of the bottleneck code of held-out images, one panel per run
    (:func:`analyses.tsne_code_panels`)."""
    data = A.tsne_code_panels(runs, voc_root, max_images, seed, device, progress)
    if isinstance(data, str):
        return _message_figure(out, "t-SNE of the code", data)
    return draw_tsne(data, out)


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
    """Centre-hole error after re-randomising one layer at a time, per inpainting method
    (:func:`analyses.layer_randomisation_errors`).

    Returns:
        (PNG path, the numbers — also written beside the PNG as ``<name>.json``).
    """
    results = A.layer_randomisation_errors(runs, voc_root, num_images, draws, seed, device, progress)
    path = draw_layer_randomisation(results, out)
    A.write_json(Path(out).with_suffix(".json"), results)
    return path, results


def layer_randomisation_outputs(
    run: Path, voc_root: Path, out: Path, num_images: int = 4, seed: int = 0, device: str = "cpu"
) -> Path:
    """One run's fills of a centre hole as each of its layers is re-drawn in turn, one row per layer with
    its hole error (:func:`analyses.layer_output_grid`)."""
    grid = A.layer_output_grid(run, voc_root, num_images, seed, device)
    if isinstance(grid, str):
        return _message_figure(out, "Layer randomisation", grid)
    return draw_image_grid(grid, out)


# ------------------------------------------------------------------------------------------------------
# Figures from metrics.jsonl and the table


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
