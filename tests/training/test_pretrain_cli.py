"""``bench pretrain`` as a user runs it: every method, outputs, resume after SIGKILL, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.methods import available_methods, create_method
from ssl_bench.runtime.run_folder import RunFolder
from tests.conftest import TINY_SYNTH_IMAGES

CAFFENET_SHAPES = {
    "conv1.weight": (96, 3, 11, 11),
    "conv2.weight": (256, 48, 5, 5),
    "conv3.weight": (384, 256, 3, 3),
    "conv4.weight": (384, 192, 3, 3),
    "conv5.weight": (256, 192, 3, 3),
}
# Small and fast: 99 px gives a 2×2 pool5.
FAST = [
    "--image-size",
    "99",
    "--batch-size",
    "4",
    "--workers",
    "0",
    "--no-progress",
    "--set",
    f"data.synth_images={TINY_SYNTH_IMAGES}",
    "--set",
    "data.synth_pool=null",  # the tiny dataset's own pool (the mini recipes draw a 12,800-image one)
]


# semantic_inpainting's default encoder is the DCGAN encoder of the paper's inpainting net (PAPER.md §1.1),
# so its encoder.pt is not a CaffeNet (tests/methods/test_semantic_inpainting.py checks that the evaluators
# refuse it); with model.encoder=caffenet it exports one. Its nets take 4·2^k px (128), cut down for speed.
SEMANTIC_INPAINTING_AS_CAFFENET = ["--image-size", "128", "--set", "model.encoder=caffenet",
                                   "--set", "model.width=8", "--set", "model.bottleneck_dim=32"]  # fmt: skip


@pytest.mark.parametrize("method", available_methods())
def test_every_method_pretrains_20_steps_and_writes_caffenet_encoder(method, synth_cache, tmp_path, capsys):
    out = tmp_path / method
    extra = ["--set", "model.head_width=64"] if method == "supervised" else []
    extra += ["--set", "model.num_images=8"] if method == "datainit" else []
    extra += SEMANTIC_INPAINTING_AS_CAFFENET if method.startswith("semantic_inpainting") else []
    assert main(["pretrain", "--method", method, "--steps", "20", "--out", str(out), *FAST, *extra]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["method"] == method
    state = torch.load(out / "encoder.pt", weights_only=True)
    assert {k: tuple(state[k].shape) for k in CAFFENET_SHAPES} == CAFFENET_SHAPES
    assert sorted(state) == sorted(f"conv{i}.{p}" for i in range(1, 6) for p in ("weight", "bias"))
    assert (out / "config.yaml").is_file() and (out / "checkpoint.pt").is_file()


def test_context_encoder_run_folder_has_metrics_and_samples(synth_cache, tmp_path):
    out = tmp_path / "ce"
    assert main(["pretrain", "--steps", "20", "--sample-every", "10", "--out", str(out), *FAST]) == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [10, 20]
    assert all(r["img_s"] > 0 for r in rows if "loss" in r)
    samples = [r for r in rows if "sample_l2" in r]
    assert [r["step"] for r in samples] == [10, 20] and all(r["fill_l2"] > 0 for r in samples)
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000010.png", "step_000020.png"]
    from PIL import Image

    grid = Image.open(out / "samples" / "step_000020.png")
    assert grid.size[1] > 3 * 99  # three rows: masked input / output / original


def test_the_loader_thread_trains_exactly_what_serial_loading_trains(synth_cache, tmp_path):
    runs = {}
    for thread in ("true", "false"):
        out = tmp_path / thread
        args = ["--out", str(out), *FAST, "--set", f"train.loader_thread={thread}"]
        assert main(["pretrain", "--steps", "6", *args]) == 0
        runs[thread] = torch.load(out / "encoder.pt", weights_only=True)
    assert all(torch.equal(runs["true"][k], runs["false"][k]) for k in runs["true"])


def _bench(*args: str) -> list[str]:
    return [sys.executable, "-m", "ssl_bench", *args]


def _states(out: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    return {
        **{f"model.{k}": v for k, v in ckpt["model"].items()},
        **{f"enc.{k}": v for k, v in torch.load(out / "encoder.pt", weights_only=True).items()},
    }


KILL_COMMON = [
    "pretrain",
    "--steps",
    "40",
    "--checkpoint-every",
    "5",
    "--seed",
    "3",
    *FAST,
    "--set",
    "train.log_every=1",
]


@pytest.fixture(scope="module")
def straight_run(synth_cache, tmp_path_factory) -> Path:
    """The uninterrupted run that killed-and-resumed runs must match."""
    out = tmp_path_factory.mktemp("straight") / "run"
    env = {**os.environ, "SSL_BENCH_CACHE": str(synth_cache)}
    subprocess.run(_bench(*KILL_COMMON, "--out", str(out)), env=env, check=True, capture_output=True)
    return out


def _start_and_signal(out: Path, env: dict[str, str], signum: int) -> subprocess.CompletedProcess:
    """Start the run, send ``signum`` once a dozen steps are logged; returns the finished process."""
    command = _bench(*KILL_COMMON, "--out", str(out))
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics, deadline = out / "metrics.jsonl", time.time() + 120
    while time.time() < deadline:
        rows = metrics.read_text().splitlines() if metrics.is_file() else []
        if len(rows) >= 12:
            break
        time.sleep(0.05)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _resume_and_compare(straight: Path, out: Path, env: dict[str, str]) -> None:
    command = _bench(*KILL_COMMON, "--out", str(out), "--resume")
    subprocess.run(command, env=env, check=True, capture_output=True)
    a, b = _states(straight), _states(out)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed run differs in {different}"
    logged = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 41)), "metrics.jsonl holds each step once after the resume"


def test_sigkill_then_resume_ends_with_identical_weights(synth_cache, straight_run, tmp_path):
    env = {**os.environ, "SSL_BENCH_CACHE": str(synth_cache)}
    killed = tmp_path / "killed"
    result = _start_and_signal(killed, env, signal.SIGKILL)
    assert result.returncode == -signal.SIGKILL
    step = torch.load(killed / "checkpoint.pt", weights_only=True)["step"]
    assert 5 <= step < 40, "the kill must land mid-run"
    _resume_and_compare(straight_run, killed, env)


def test_sigterm_saves_the_last_step_and_resume_gives_identical_weights(synth_cache, straight_run, tmp_path):
    """A job scheduler's SIGTERM loses nothing: the step in progress is finished and saved, exit 143, and
    the message gives the command that resumes."""
    env = {**os.environ, "SSL_BENCH_CACHE": str(synth_cache)}
    stopped = tmp_path / "stopped"
    result = _start_and_signal(stopped, env, signal.SIGTERM)
    assert result.returncode == 143, result.stderr[-2000:]
    step = torch.load(stopped / "checkpoint.pt", weights_only=True)["step"]
    last_logged = json.loads((stopped / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    assert 12 <= step < 40 and step == last_logged, "the last completed step is the one saved"
    message = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
    assert f"stopped by SIGTERM: step {step} saved" in message
    command = message.split("resume with: ", 1)[1]
    assert command.startswith("bench pretrain") and command.endswith("--resume") and str(stopped) in command
    _resume_and_compare(straight_run, stopped, env)


def test_ctrl_c_saves_the_last_step_and_exits_130(synth_cache, tmp_path):
    env = {**os.environ, "SSL_BENCH_CACHE": str(synth_cache)}
    stopped = tmp_path / "stopped"
    result = _start_and_signal(stopped, env, signal.SIGINT)
    assert result.returncode == 130, result.stderr[-2000:]
    step = torch.load(stopped / "checkpoint.pt", weights_only=True)["step"]
    last_logged = json.loads((stopped / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    assert step == last_logged and f"stopped by SIGINT: step {step} saved" in result.stderr


def test_two_process_ddp_equals_one_process_on_the_combined_batch(synth_cache, tmp_path):
    env = {**os.environ, "SSL_BENCH_CACHE": str(synth_cache), "OMP_NUM_THREADS": "1"}
    common = [
        "pretrain",
        "--steps",
        "2",
        "--seed",
        "1",
        "--image-size",
        "99",
        "--workers",
        "0",
        "--no-progress",
        "--set",
        f"data.synth_images={TINY_SYNTH_IMAGES}",
        "--set",
        "train.lr=0.01",
        # SGD: its update is linear in the gradient. Adam's first steps are ≈ lr·sign(g), which turns the
        # last-bit differences of a different summation order into whole steps wherever g ≈ 0.
        "--set",
        "train.optimizer=sgd",
        "--set",
        "train.amp=false",  # fp32: the equivalence is about the arithmetic, not bf16 rounding
    ]
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    subprocess.run(
        _bench(*common, "--batch-size", "8", "--out", str(single)), env=env, check=True, capture_output=True
    )
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "ssl_bench",
    ]
    result = subprocess.run(
        [*launcher, *common, "--batch-size", "4", "--out", str(ddp)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = _states(single), _states(ddp)
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-6), k  # only the summation order differs
    # …and the two steps moved the weights by far more than that (the comparison is not vacuous).
    torch.manual_seed(1)  # the run's seed: its initial weights
    initial = create_method("context_encoder", image_size=99).encoder.conv1.weight
    assert (a["enc.conv1.weight"] - initial).abs().max() > 1e-4


@pytest.mark.parametrize("workers", ["0", "1"])  # the loader thread, a worker process
def test_corrupt_jpeg_stops_with_the_file_named_and_skip_flag_counts_it(workers, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(12):
        Image.new("RGB", (120, 100), (i * 20, 100, 50)).save(folder / f"img{i:02d}.jpg")
    (folder / "img05.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    args = [
        "pretrain",
        "--data",
        str(folder),
        "--steps",
        "4",
        "--image-size",
        "99",
        "--batch-size",
        "4",
        "--workers",
        workers,
        "--no-progress",
        "--set",
        "model.fill=[0,0,0]",
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "img05.jpg" in err and "Traceback" not in err
    assert not (tmp_path / "a").exists(), "found before anything is written"
    assert main([*args, "--out", str(tmp_path / "b"), "--skip-bad-images", "--set", "train.log_every=2"]) == 0
    captured = capsys.readouterr()
    # Every draw of img05 is counted: epoch e's order is randperm(12, seed 0 + e), 3 batches of 4 per epoch.
    order = [torch.randperm(12, generator=torch.Generator().manual_seed(e)).tolist() for e in (0, 1)]
    expected = (order[0] + order[1][:4]).count(5)
    rows = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    totals = [r["skipped"] for r in rows if "loss" in r]
    assert totals == sorted(totals) and totals[-1] == expected, "a running total, steps between logs included"
    assert json.loads(captured.out.strip().splitlines()[-1])["skipped_images"] == expected
    assert f"{expected} unreadable image(s) skipped" in captured.err


def test_overwrite_clears_the_old_run_and_resume_may_change_only_speed_and_cadence(synth_cache, tmp_path):
    out = tmp_path / "run"
    assert main(["pretrain", "--steps", "4", "--sample-every", "2", "--out", str(out), *FAST]) == 0
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    autoencoder = ["pretrain", "--method", "autoencoder", "--out", str(out), *FAST]
    assert main([*autoencoder, "--steps", "3", "--overwrite"]) == 0
    assert [p.name for p in (out / "samples").iterdir()] == ["step_000003.png"], "stale grids are gone"
    assert RunFolder(out).method_name == "autoencoder"
    assert [r["step"] for r in RunFolder(out).metrics() if "loss" in r] == [3]

    more = ["--steps", "6", "--workers", "1", "--set", "train.log_every=1"]
    more += ["--set", "train.loader_thread=false", "--sample-every", "0"]
    assert main([*autoencoder, "--resume", *more]) == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 6
    assert RunFolder(out).config["train"]["steps"] == 6


def test_config_records_the_classes_of_a_labelled_pool(synth_cache, tmp_path):
    out = tmp_path / "sup"
    args = ["pretrain", "--method", "supervised", "--steps", "2", "--out", str(out), *FAST]
    assert main([*args, "--set", "model.head_width=16"]) == 0
    run = RunFolder(out)
    assert run.config["data"]["num_classes"] == 20
    assert run.load_method().head[-1].out_features == 20  # rebuilt from config.yaml and loaded strictly


def test_bad_flags_and_recipes_fail_with_a_clear_message(tmp_path, capsys):
    assert main(["pretrain", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err
    assert (
        main(
            [
                "pretrain",
                "--method",
                "context_encoder",
                "--set",
                "train.bogus=1",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "bogus" in capsys.readouterr().err
    assert main(["pretrain", "--resume", "--out", str(tmp_path / "empty")]) == 2
    assert "checkpoint" in capsys.readouterr().err


def test_resume_may_read_the_same_files_from_another_folder(tmp_path, capsys):
    """A data set copied to a node's local disk: the same listing under another root resumes; other files
    do not."""
    from PIL import Image

    here, copy, other = tmp_path / "here", tmp_path / "copy", tmp_path / "other"
    for folder in (here, copy, other):
        folder.mkdir()
        for i in range(8 if folder != other else 9):
            Image.new("RGB", (100, 100), (i * 30, 90, 40)).save(folder / f"img{i}.jpg")
    out = tmp_path / "run"
    args = ["pretrain", "--out", str(out), *FAST, "--set", "model.fill=[0,0,0]"]
    assert main([*args, "--data", str(here), "--steps", "2"]) == 0
    assert main([*args, "--data", str(other), "--steps", "4", "--resume"]) == 2
    assert "does not list the files of the saved run's folder" in capsys.readouterr().err
    assert main([*args, "--data", str(copy), "--steps", "4", "--resume"]) == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 4


@pytest.mark.parametrize("method", ["context_encoder", "supervised"])
def test_mini_recipe_trains_bn_and_saves_a_folded_plain_caffenet(method, synth_cache, tmp_path, capsys):
    """The mini recipes (caffenet_bn, cosine lr, folded BN, N(0, 0.02²) encoder init) run as a user runs them;
    encoder.pt is a plain CaffeNet; the supervised pretext logs its accuracy; the lr follows warm-up, then
    cosine."""
    out = tmp_path / method
    extra = ["--set", "model.head_width=64"] if method == "supervised" else []
    args = ["pretrain", "--method", method, "--profile", "mini", "--steps", "12", "--out", str(out), *FAST]
    assert main([*args, "--set", "train.warmup_steps=2", "--set", "train.log_every=1", *extra]) == 0
    state = torch.load(out / "encoder.pt", weights_only=True)
    assert sorted(state) == sorted(f"conv{i}.{p}" for i in range(1, 6) for p in ("weight", "bias"))
    method_state = RunFolder(out).load_method().encoder.state_dict()
    assert any(k.startswith("bn") for k in method_state)  # checkpoint.pt keeps the BN net (for --resume)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    lrs = [r["lr"] for r in rows]
    assert lrs[0] == pytest.approx(lrs[1] / 2) and lrs[1] == max(lrs) and lrs[-1] < lrs[1] / 10
    if method == "supervised":
        assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)


def test_fold_batch_norm_without_a_bn_encoder_is_refused_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pretrain", "--out", str(out), *FAST, "--set", "train.fold_batch_norm=true"]) == 2
    assert "train.fold_batch_norm" in capsys.readouterr().err and not out.exists()
