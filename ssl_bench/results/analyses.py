"""The analyses behind the report's figures: they run encoders and inpainting nets on held-out images and
return plain data (numbers, arrays), which ``figures.py`` only draws.

- :func:`inpainting_example_grid`: masked input / each method's fill / each classic inpainter's / original;
- :func:`conv1_panels`: each encoder's conv1 filters as one RGB mosaic, with their structure;
- :func:`tsne_pool5_panels` / :func:`tsne_code_panels`: 2-D t-SNE of pool5 features / of the semantic-
  inpainting net's bottleneck code of held-out images, with each image's main class;
- :func:`layer_randomisation_errors`: the centre-hole error as one layer at a time of an inpainting net is
  re-drawn from its initial distribution (the method's ``inpainting_layers()`` / ``redraw_`` hooks);
- :func:`layer_output_grid`: the same re-draws' fills as images.

Image rows are an :class:`ImageGrid` (saved as ``.npz``); t-SNE panels and layer errors are JSON-ready
dicts (:func:`write_json`). Where there is nothing to analyse (no run with a decoder), a function returns a
string that says why, and the figure shows it. Held-out images are the VOC ``Main/test`` split (never seen
in pretraining: on SynthVOC the pool is disjoint from it), centre-cropped at the run's image size as in the
pretraining sample grids.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ssl_bench.atomic import atomic_open, atomic_write_json
from ssl_bench.data.masks import center_mask, fill_holes
from ssl_bench.data.transforms import denormalize, normalize, to_tensor
from ssl_bench.data.voc import load_image, parse_annotation, read_image_set
from ssl_bench.encoders import load_encoder, read_weights_file
from ssl_bench.errors import CheckpointError
from ssl_bench.evaluators.features import image_features
from ssl_bench.evaluators.inpainting_baselines import classic_inpaint
from ssl_bench.evaluators.inpainting_data import HOLE_AREA, TEST_SPLIT  # the inpaint evaluator's
from ssl_bench.methods.base import PretrainMethod
from ssl_bench.methods.registry import method_class
from ssl_bench.metrics.filters import conv1_structure
from ssl_bench.metrics.inpainting import hole_errors, summarize_hole_errors
from ssl_bench.runtime.run_folder import RunFolder

# Classic inpainting rows of the inpainting grid (``evaluators/inpainting_baselines.py``), with their names.
GRID_BASELINES = {"telea": "Telea", "ns": "Navier-Stokes", "biharmonic": "biharmonic"}
NO_DECODER = "no run with a decoder (context_encoder, autoencoder)"


# ------------------------------------------------------------------------------------------------------
# Inputs


def held_out_centre_crops(
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


def runs_with_decoder(runs: Mapping[str, Path]) -> dict[str, RunFolder]:
    """The runs whose method can inpaint (random, datainit and supervised have no decoder)."""
    folders = {m: RunFolder(r) for m, r in runs.items()}
    return {m: run for m, run in folders.items() if run.has_decoder}


def _centre_holes(size: int, n: int) -> torch.Tensor:
    """Table 1's centre hole (a quarter of the area) for n images: [n, 1, S, S] bool."""
    return center_mask(size, area=HOLE_AREA).expand(n, 1, size, size)


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Write an analysis's numbers (layer errors, t-SNE panels) atomically; returns ``path``."""
    atomic_write_json(Path(path), dict(data))
    return Path(path)


# ------------------------------------------------------------------------------------------------------
# Image rows: the inpainting grid and the layer re-draws' fills


@dataclass
class ImageGrid:
    """Rows of images with a label each (displayable [n, S, S, 3] float32 in [0, 1], n equal), and a title."""

    title: str
    rows: list[tuple[str, np.ndarray]]

    @classmethod
    def of_batches(cls, title: str, rows: Sequence[tuple[str, torch.Tensor]]) -> ImageGrid:
        """From normalised batches [n, 3, S, S] (any device)."""
        return cls(title, [(label, _displayable(batch)) for label, batch in rows])

    def save(self, path: Path) -> Path:
        """As ``.npz`` (title, labels [R], images [R, n, S, S, 3]), atomically."""
        with atomic_open(Path(path), "wb") as f:
            np.savez(
                f,
                title=np.array(self.title),
                labels=np.array([label for label, _ in self.rows]),
                images=np.stack([images for _, images in self.rows]),
            )
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> ImageGrid:
        with np.load(path) as data:
            labels, images = data["labels"], data["images"]
            return cls(str(data["title"]), [(str(label), x) for label, x in zip(labels, images, strict=True)])


def _displayable(batch: torch.Tensor) -> np.ndarray:
    """Normalised [n, 3, H, W] → [n, H, W, 3] in [0, 1] (``denormalize`` clamps)."""
    return denormalize(batch.float().cpu()).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def inpainting_example_grid(
    runs: Mapping[str, Path],
    voc_root: Path,
    num_images: int = 6,
    device: str = "cpu",
    baselines: Sequence[str] = (),
) -> ImageGrid | str:
    """Rows: masked input, each inpainting method's output, each classic baseline's, original; columns:
    held-out images.

    Methods without a decoder (random, datainit, supervised) cannot inpaint and are left out (named in
    the title). The hole is the centre quarter (Table 1's protocol), filled with each method's own fill.
    ``baselines``: keys of :data:`GRID_BASELINES` (OpenCV's Telea and Navier–Stokes, scikit-image's
    biharmonic), run on the 8-bit images as the ``inpaint`` evaluator runs them.
    """
    decoders = runs_with_decoder(runs)
    if not decoders:
        return NO_DECODER
    size = int(next(iter(decoders.values())).config["data"]["image_size"])
    images, _ = held_out_centre_crops(voc_root, num_images, size)  # [N, 3, S, S]
    mask = _centre_holes(size, len(images))  # [N, 1, S, S]
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
    return ImageGrid.of_batches(title, rows)


# ------------------------------------------------------------------------------------------------------
# conv1 filters and t-SNE


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


def conv1_panels(weights: Mapping[str, Path]) -> dict[str, tuple[np.ndarray, float] | str]:
    """Per encoder, (its conv1 :func:`filter_mosaic`, their structure: ``metrics.filters.conv1_structure``,
    about 0 for a Gaussian init, high for smooth edges and colour blobs), or why there is none."""
    panels: dict[str, tuple[np.ndarray, float] | str] = {}
    for name, path in weights.items():
        state = read_weights_file(path, "encoder weights")
        key = next((k for k in ("conv1.weight", "features.0.weight") if k in state), None)
        if key is None or state[key].shape[1] != 3:
            panels[name] = "no RGB conv1"
            continue
        panels[name] = (filter_mosaic(state[key]), conv1_structure(state[key]))
    return panels


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


def _tsne_panels(
    features: Mapping[str, np.ndarray | str], classes: np.ndarray, title: str, seed: int, progress: bool
) -> dict[str, Any]:
    """JSON-ready t-SNE panels: ``title``, ``classes`` [N] (-1: no object), and per entry ``panels``: the
    embedding [[x, y] × N], or a message why there is none."""
    panels: dict[str, list[list[float]] | str] = {}
    for name, x in tqdm(list(features.items()), desc="t-SNE", disable=not progress):
        panels[name] = x if isinstance(x, str) else tsne_embedding(x, seed).tolist()
    return {"title": title, "classes": [int(c) for c in classes], "panels": panels}


def tsne_pool5_panels(
    weights: Mapping[str, Path],
    voc_root: Path,
    max_images: int = 300,
    image_size: int = 227,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any] | str:
    """t-SNE of pool5 features of held-out images, one panel per encoder (:func:`_tsne_panels`).

    An ``encoder.pt`` that is not a CaffeNet (the semantic-inpainting net's DCGAN encoder) gets a panel
    that says so.
    """
    if not weights:
        return "no encoder weights"
    images, ids = held_out_centre_crops(voc_root, max_images, image_size)
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
    return _tsne_panels(features, main_classes(voc_root, ids), title, seed, progress)


@torch.no_grad()
def tsne_code_panels(
    runs: Mapping[str, Path],
    voc_root: Path,
    max_images: int = 300,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any] | str:
    """t-SNE of the bottleneck code (``method.encode``: the semantic-inpainting net's 4000-d code) of
    held-out images with the centre hole filled, as the decoder reads it, one panel per run."""
    coders = {m: RunFolder(r) for m, r in runs.items()}
    coders = {m: run for m, run in coders.items() if hasattr(method_class(run.method_name), "encode")}
    if not coders:
        return "no run with a bottleneck code (semantic nets)"
    features: dict[str, np.ndarray | str] = {}
    ids: list[str] = []
    dims = set()
    for name, run in coders.items():
        method = run.load_method().to(device)
        size = int(run.config["data"]["image_size"])
        images, ids = held_out_centre_crops(voc_root, max_images, size)
        mask = _centre_holes(size, len(images))
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
    return _tsne_panels(features, main_classes(voc_root, ids), title, seed, progress)


# ------------------------------------------------------------------------------------------------------
# Layer re-randomisation


def redrawn_copy(trained: PretrainMethod, layer_name: str, generator: torch.Generator) -> PretrainMethod:
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
def layer_randomisation_errors(
    runs: Mapping[str, Path],
    voc_root: Path,
    num_images: int = 64,
    draws: int = 3,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Centre-hole error after re-randomising one layer at a time, per inpainting method (JSON-ready).

    For each run with a decoder: the hole L2 (%) of the trained model, then for each of its
    ``inpainting_layers()`` the mean (and spread) over ``draws`` re-draws of that layer alone, and the
    mean-fill baseline. A layer whose re-randomisation costs little carried little of what the model uses
    to inpaint. No run with a decoder: ``methods`` is empty.
    """
    results: dict[str, Any] = {
        "metric": "hole L2 % (100 * mean squared error on the centre hole, [0,1] pixels)",
        "num_images": 0,
        "draws": draws,
        "methods": {},
    }
    decoders = runs_with_decoder(runs)
    for name, run in tqdm(decoders.items(), desc="layer randomisation", disable=not progress):
        trained = run.load_method().to(device)
        size = int(run.config["data"]["image_size"])
        images, _ = held_out_centre_crops(voc_root, num_images, size)
        images = images.to(device)
        mask = _centre_holes(size, len(images)).to(device)
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
                values.append(inpainting_l2_pct(redrawn_copy(trained, layer_name, generator), images, mask))
            entry["layers"][layer_name] = {
                "mean": float(np.mean(values)),
                "std": float(np.std(values)),
                "values": values,
            }
        results["methods"][name] = entry
    return results


@torch.no_grad()
def layer_output_grid(
    run: Path, voc_root: Path, num_images: int = 4, seed: int = 0, device: str = "cpu"
) -> ImageGrid | str:
    """One run's fills of a centre hole as each of its ``inpainting_layers()`` is re-drawn in turn (one
    draw each, the first draw of :func:`layer_randomisation_errors` with the same seed): rows masked input,
    the trained net, one per re-drawn layer (its hole L2 % on these images in the label), original."""
    folder = RunFolder(run)
    if not folder.has_decoder:
        return f"{folder.method_name} has no decoder"
    trained = folder.load_method().to(device)
    size = int(folder.config["data"]["image_size"])
    images, _ = held_out_centre_crops(voc_root, num_images, size)
    images = images.to(device)
    mask = _centre_holes(size, len(images)).to(device)
    rows = [("masked input", fill_holes(images, mask, trained.fill))]
    generator = torch.Generator().manual_seed(seed)
    for layer_name, model in [("trained", trained)] + [
        (name, redrawn_copy(trained, name, generator)) for name in trained.inpainting_layers()
    ]:
        filled = model.inpaint(images, mask)
        label = layer_name if layer_name == "trained" else f"{layer_name} re-drawn"
        rows.append((f"{label}\nL2 {hole_l2_pct(filled, images, mask):.2f}%", filled))
    rows.append(("original", images))
    return ImageGrid.of_batches(f"{folder.method_name}: one layer re-drawn from its init at a time", rows)
