"""DeepCluster (methods/deepcluster.py): the clustering, the pseudo-labels, the sampling, the Sobel conv1,
and a run resumed after SIGKILL ending with the weights of an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from itertools import repeat

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_bench.cli import main
from ssl_bench.data.pretrain import PoolImages
from ssl_bench.encoders import create_encoder, exported_encoder_state
from ssl_bench.methods import create_method
from ssl_bench.methods.deepcluster import (
    SOBEL,
    cluster_features,
    fill_empty_clusters,
    uniform_cluster_order,
)
from tests.conftest import TINY_SYNTH_IMAGES
from tests.methods.steps import take_steps

SMALL = {"image_size": 67, "num_clusters": 4, "pca_dim": 8, "head_width": 32, "dropout": 0.0}


class _Images(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, object]:
        return {"image": self.images[i], "index": i}


def _pool(n: int = 12, size: int = 67, seed: int = 0) -> tuple[torch.Tensor, PoolImages]:
    """Smooth images (upsampled 4×4 noise) and the pool ``on_epoch_start`` reads, 4 per batch."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 3, 4, 4, generator=g)
    images = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return images, PoolImages(_Images(images), batch_size=4)


def _planned(seed: int = 0, **options: object) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    method = create_method("deepcluster", **{**SMALL, **options})
    images, pool = _pool()
    method.on_epoch_start(0, pool, seed=7)
    return method, images


def test_every_image_is_in_exactly_one_cluster_and_no_cluster_is_empty():
    features = np.random.default_rng(0).standard_normal((60, 16)).astype(np.float32)
    labels, numbers = cluster_features(features, num_clusters=6, pca_dim=8, iterations=10, seed=3)
    assert labels.shape == (60,) and labels.dtype == np.int64
    assert sorted(set(labels.tolist())) == list(range(6))  # ids 0…k-1, each used
    assert numbers["clusters"] == 6
    # The method keeps one pseudo-label per pool image.
    method, images = _planned()
    assert method.pseudo_labels.shape == (len(images),)
    assert sorted(set(method.pseudo_labels.tolist())) == list(range(4))


def test_an_empty_cluster_takes_half_of_a_split_cluster():
    # Two tight groups and a third centroid far from both: nearest-centroid leaves cluster 2 empty.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0.0, 0.1, (6, 2)), rng.normal(5.0, 0.1, (4, 2))])
    centroids = np.array([[0.0, 0.0], [5.0, 5.0], [100.0, 100.0]])
    labels = np.array([0] * 6 + [1] * 4)
    new, refilled = fill_empty_clusters(x, centroids, labels, np.random.default_rng(1))
    assert refilled == 1
    assert np.bincount(new, minlength=3).min() >= 1
    split = [c for c in (0, 1) if not np.array_equal(new[labels == c], labels[labels == c])]
    assert len(split) == 1, "the new cluster's points all come from one cluster"
    assert set(new[labels == split[0]].tolist()) == {split[0], 2}
    # Identical points cannot be told apart by a perturbation: one of them moves alone.
    same = np.zeros((5, 2))
    far = np.array([[0.0, 0.0], [9.0, 9.0]])
    new, _ = fill_empty_clusters(same, far, np.zeros(5, int), np.random.default_rng(0))
    assert sorted(np.bincount(new).tolist()) == [1, 4]


def test_each_epoch_draws_equally_from_every_cluster():
    labels = torch.tensor([0] * 85 + [1] * 5 + [2] * 4 + [-1] * 6)  # very uneven; -1: not clustered
    order = uniform_cluster_order(labels, 100, torch.Generator().manual_seed(0))
    assert order.shape == (100,) and order.dtype == torch.int64
    counts = torch.bincount(labels[order], minlength=3).tolist()
    per = 100 // 3 + 1  # 34 draws per cluster, 102 cut to 100
    assert all(per - 2 <= c <= per for c in counts), counts
    assert (labels[order] >= 0).all(), "images that were not clustered are never drawn"
    big = order[labels[order] == 0].tolist()
    assert len(set(big)) == len(big), "a cluster bigger than its share: drawn without replacement"


def test_the_loss_falls_on_a_fixed_batch():
    method, images = _planned(encoder="caffenet_bn")  # as the recipes (plain CaffeNet starts slower)
    batch = {"image": images[:8], "index": torch.arange(8)}
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-3)
    losses = [s["loss"] for s in take_steps(method, optimizer, repeat(batch, 12))]
    assert losses[-1] < 0.5 * losses[0], losses


def test_the_same_seed_gives_the_same_clusters_order_and_steps():
    runs = []
    for _ in range(2):
        method, images = _planned(seed=5)
        optimizer = torch.optim.SGD(method.parameters(), lr=0.01, momentum=0.9)
        indices = [torch.arange(4 * step, 4 * step + 4) for step in range(3)]
        batches = ({"image": images[index], "index": index} for index in indices)
        losses = [s["loss"] for s in take_steps(method, optimizer, batches)]
        runs.append((method.pseudo_labels.tolist(), method.sample_order.tolist(), losses))
    assert runs[0] == runs[1]


def test_the_loss_is_per_sample_so_ddp_halves_average_to_the_whole_batch():
    method, images = _planned()  # caffenet (no batch norm), dropout 0: nothing else couples the batch
    index = torch.arange(8)
    whole = method({"image": images[:8], "index": index})["loss"]
    halves = [method({"image": images[s], "index": index[s]})["loss"] for s in (slice(0, 4), slice(4, 8))]
    assert torch.allclose(whole, torch.stack(halves).mean(), atol=1e-6)


def test_a_second_call_for_the_same_epoch_returns_the_saved_plan_and_the_checkpoint_holds_it():
    method, images = _planned()
    order, labels = method.sample_order.clone(), method.pseudo_labels.clone()
    with torch.no_grad():
        for p in method.parameters():
            p.add_(torch.randn_like(p))  # the weights move during the epoch
    _, pool = _pool()
    assert torch.equal(method.on_epoch_start(0, pool, seed=7), order), "a resumed run: no re-clustering"
    restored = create_method("deepcluster", **SMALL)
    restored.load_state_dict(method.state_dict())
    assert restored.planned_epoch == 0
    assert torch.equal(restored.pseudo_labels, labels) and torch.equal(restored.sample_order, order)
    top = restored.top.weight.clone()
    restored.on_epoch_start(1, pool, seed=8)  # a new epoch: re-clustered, the top layer re-initialised
    assert "nmi" in restored.stats and 0.0 <= restored.stats["nmi"] <= 1.0
    assert not torch.equal(restored.top.weight, top)


def test_the_sobel_conv1_is_grey_then_sobel_then_a_kernel_and_encoder_pt_computes_it():
    method, images = _planned()
    conv1 = method.encoder.conv1
    kernel = conv1.parametrizations.weight.original  # [96, 2, 9, 9]: what is trained
    assert tuple(kernel.shape) == (96, 2, 9, 9) and tuple(conv1.weight.shape) == (96, 3, 11, 11)
    grey = images[:2].mean(1, keepdim=True)
    expected = F.conv2d(F.conv2d(grey, SOBEL[:, None]), kernel, conv1.bias, stride=4)
    assert torch.allclose(conv1(images[:2]), expected, atol=1e-4)
    # encoder.pt is a plain CaffeNet with RGB input that every evaluator loads, computing the same features.
    state = exported_encoder_state(method.encoder, fold_bn=False)
    assert sorted(state) == sorted(f"conv{i}.{p}" for i in range(1, 6) for p in ("weight", "bias"))
    plain = create_encoder("caffenet")
    plain.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(plain(images[:2]), method.encoder(images[:2]), atol=1e-5)


def _plan_on_rank(rank: int, world_size: int, init_file: str, out: str) -> None:
    """One DDP rank (gloo): plan epoch 0 and save what it got. Only rank 0 clusters; rank 1's weights differ,
    so its own clustering would differ too."""
    init = f"file://{init_file}"
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world_size)
    try:
        method, _ = _planned(seed=rank)  # different weights on each rank
        torch.save({"labels": method.pseudo_labels, "order": method.sample_order}, f"{out}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_under_ddp_every_rank_gets_rank_0s_clusters_and_the_same_order(tmp_path):
    torch.multiprocessing.spawn(
        _plan_on_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    single, _ = _planned(seed=0)  # rank 0's weights in one process
    for got in ranks:
        assert torch.equal(got["labels"], single.pseudo_labels)
        assert torch.equal(got["order"], single.sample_order)


# ------------------------------------------------------------------------------------------------------
# A pretraining run: resumed after SIGKILL, it ends with the weights of an uninterrupted one

# 32 pool images, batch 4: an epoch is 8 steps, so the run re-clusters at steps 1, 9, 17, 25, 33 and most
# checkpoints (every 5 steps) fall mid-epoch, where the resumed run must reuse the saved plan.
RUN = [
    "pretrain",
    "--method",
    "deepcluster",
    "--steps",
    "40",
    "--checkpoint-every",
    "5",
    "--seed",
    "3",
    "--image-size",
    "67",
    "--batch-size",
    "4",
    "--workers",
    "0",
    "--no-progress",
    "--set",
    f"data.synth_images={TINY_SYNTH_IMAGES}",
    "--set",
    "train.log_every=1",
    "--set",
    "model.num_clusters=4",
    "--set",
    "model.head_width=64",
]


def _states(out) -> dict[str, torch.Tensor]:
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    extra = ckpt["model"].pop("_extra_state")
    return {
        **{f"model.{k}": v for k, v in ckpt["model"].items()},
        "plan.pseudo_labels": extra["pseudo_labels"],
        "plan.sample_order": extra["sample_order"],
        **{f"enc.{k}": v for k, v in torch.load(out / "encoder.pt", weights_only=True).items()},
    }


@pytest.mark.slow
def test_sigkill_then_resume_ends_with_identical_weights(synth_cache, tmp_path):
    env = {**os.environ, "SSL_BENCH_CACHE": str(synth_cache)}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main([*RUN, "--out", str(straight)]) == 0
    rows = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "nmi" in r][0] == 9, "the second epoch logs its NMI to the first"

    command = [sys.executable, "-m", "ssl_bench", *RUN, "--out", str(killed)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics, deadline = killed / "metrics.jsonl", time.time() + 300
    while time.time() < deadline:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 12:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    step = torch.load(killed / "checkpoint.pt", weights_only=True)["step"]
    assert 5 <= step < 40, "the kill must land mid-run"

    subprocess.run([*command, "--resume"], env=env, check=True, capture_output=True)
    a, b = _states(straight), _states(killed)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed run differs in {different}"


@pytest.mark.slow
def test_a_run_stopped_mid_epoch_and_resumed_equals_one_run(synth_cache, tmp_path):
    """The deterministic twin of the SIGKILL test: stopped at step 12 (mid-epoch), at 16 (an epoch's end)."""
    straight = tmp_path / "straight"
    assert main([*RUN, "--steps", "20", "--out", str(straight)]) == 0
    for stop in (12, 16):
        out = tmp_path / f"stop{stop}"
        assert main([*RUN, "--steps", str(stop), "--out", str(out)]) == 0
        assert main([*RUN, "--steps", "20", "--out", str(out), "--resume"]) == 0
        a, b = _states(straight), _states(out)
        assert not [k for k in a if not torch.equal(a[k], b[k])], f"stopped at {stop}"
