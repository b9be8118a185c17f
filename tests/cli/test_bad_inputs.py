"""Bad input, as a new user types it, through the real command line in a subprocess (issue 12, "Why").

Each case asserts the exit code (2 for a usage error, 1 for ``bench data check`` reporting problems), that the
message names the culprit, that no traceback is printed, and that run folders and record folders are
byte-for-byte unchanged, or never created. The cases run in parallel subprocesses once per module (each
pays Python's and torch's start-up); a test per case reads its result.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.methods import available_methods
from tests.conftest import TINY_SYNTH_IMAGES

# A tiny, fast run: 67 px is the smallest input the encoder takes.
SMALL = ["--image-size", "67", "--batch-size", "4", "--workers", "0", "--no-progress"]
SMALL += ["--set", f"data.synth_images={TINY_SYNTH_IMAGES}"]


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int
    culprit: tuple[str, ...]  # every one of these appears in the output
    unchanged: tuple[str, ...] = ()  # folders (under the work folder) that must stay byte-for-byte the same
    absent: tuple[str, ...] = ()  # folders that must not come into being
    stdout: bool = False  # the culprit is named on stdout (a report), not in an error line on stderr


def snapshot(folder: Path) -> dict[str, bytes] | None:
    """Every file under ``folder`` (hidden ones too) and its bytes; None when there is no folder."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _cases(work: Path, cuda: bool) -> dict[str, Case]:
    done, voc, records = "done_run", str(work / "voc"), "records"
    device = "cuda:99" if cuda else "cuda"
    pretrain_new = ("pretrain", "--steps", "2", *SMALL, "--out", "new_run")
    resume = ("pretrain", "--steps", "2", *SMALL, "--out", done, "--resume")
    evaluation = ("eval", "--data", voc, "--out", records, "--no-progress")
    return {
        # 1. A run folder is never silently replaced.
        "new run into a finished run's folder": Case(
            ("pretrain", "--method", "autoencoder", "--steps", "2", *SMALL, "--out", done),
            2, ("done_run", "context_encoder run", "step 2", "--resume", "--overwrite"), unchanged=(done,),
        ),
        # 2. --resume checks what it resumes.
        "resume with another method": Case(
            (*resume, "--method", "autoencoder"), 2, ("context_encoder", "autoencoder"), unchanged=(done,)
        ),
        "resume with another encoder": Case(
            (*resume, "--set", "model.encoder=caffenet_bn"),
            2, ("model.encoder", "'caffenet'", "'caffenet_bn'"), unchanged=(done,),
        ),
        "resume with another image size": Case(
            (*resume, "--image-size", "99"), 2, ("data.image_size", "67", "99"), unchanged=(done,)
        ),
        # 3. Every value is checked before anything is written.
        "lr of the wrong type": Case(
            (*pretrain_new, "--set", "train.lr=abc"), 2, ("train.lr=abc", "float"), absent=("new_run",)
        ),
        "negative steps": Case(
            ("pretrain", *SMALL, "--out", "new_run", "--steps", "-1"), 2, ("--steps -1",), absent=("new_run",)
        ),
        "zero batch size": Case(
            (*pretrain_new, "--batch-size", "0"), 2, ("--batch-size 0",), absent=("new_run",)
        ),
        "cuda without a GPU": Case(
            (*pretrain_new, "--device", device), 2, (f"--device {device}",), absent=("new_run",)
        ),
        "image size too small": Case(
            (*pretrain_new, "--image-size", "10"), 2, ("--image-size 10", "67"), absent=("new_run",)
        ),
        "every image bad, with --skip-bad-images": Case(
            (*pretrain_new, "--data", str(work / "all_bad"), "--skip-bad-images"),
            2, ("--skip-bad-images", "all_bad"), absent=("new_run",),
        ),
        # 4. Unknown keys are errors, for pretraining and evaluation alike.
        "unknown pretraining section": Case(
            (*pretrain_new, "--set", "bogus.key=3"), 2, ("bogus",), absent=("new_run",)
        ),
        "misspelt pretraining key": Case(
            (*pretrain_new, "--set", "train.lrr=0.1"), 2, ("lrr", "did you mean 'lr'"), absent=("new_run",)
        ),
        "unknown evaluation key": Case(
            (*evaluation, "--task", "seg", "--weights", "random", "--set", "bogus=3"),
            2, ("bogus",), unchanged=(records,), absent=("results",),
        ),
        "misspelt evaluation key": Case(
            (*evaluation, "--task", "cls", "--weights", "random", "--set", "iteration=20"),
            2, ("iteration", "did you mean 'iterations'"), unchanged=(records,), absent=("results",),
        ),
        "evaluation value of the wrong type": Case(
            (*evaluation, "--task", "knn", "--weights", "random", "--set", "k=abc"),
            2, ("k='abc'",), unchanged=(records,), absent=("results",),
        ),
        # 6. Records of mistakes stay out of tables.
        "misspelt task": Case(
            (*evaluation, "--task", "segg", "--weights", "random"),
            2, ("segg", "did you mean 'seg'"), unchanged=(records,), absent=("results",),
        ),
        "truncated weights": Case(
            (*evaluation, "--task", "seg", "--weights", str(work / "weights" / "truncated.pt")),
            2, ("truncated.pt", "truncated file"), unchanged=(records,), absent=("results",),
        ),
        "table with a record of an unknown task and method": Case(
            ("table", "--results", "table_records"), 0, ("'segg'", "--all-tasks", "'bogus_method'"),
            unchanged=("table_records",),
        ),
        # 7. Messages in plain words.
        "misspelt method": Case(
            ("pretrain", "--method", "contxt_encoder", "--out", "new_run"),
            2, ("contxt_encoder", "did you mean 'context_encoder'", "choose from: autoencoder, "),
            absent=("new_run",),
        ),
        "a training checkpoint as weights": Case(
            (*evaluation, "--task", "seg", "--weights", f"{done}/checkpoint.pt"),
            2, ("training checkpoint", "encoder.pt"), unchanged=(records, done), absent=("results",),
        ),
        "a text file as weights": Case(
            (*evaluation, "--task", "seg", "--weights", str(work / "weights" / "notes.pt")),
            2, ("notes.pt", "not a PyTorch file"), unchanged=(records,), absent=("results",),
        ),
        "a pickle that runs code": Case(
            (*evaluation, "--task", "seg", "--weights", str(work / "weights" / "evil.pt")),
            2, ("evil.pt", "refused"), unchanged=(records,), absent=("results",),
        ),
        "a file as the data folder": Case(
            (*pretrain_new, "--data", str(work / "weights" / "notes.pt")),
            2, ("notes.pt", "file"), absent=("new_run",),
        ),
        # 9. bench data check opens every image.
        "data check of a corrupted VOC copy": Case(
            ("data", "check", "--data", voc, "--no-progress"), 1,
            ("unreadable or truncated image", "malformed XML"), unchanged=("voc",), stdout=True,
        ),
    }  # fmt: skip


@pytest.fixture(scope="module")
def work(synth_cache: Path, synth_voc_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The work folder every case runs in: a finished run, bad weights and data, records, a corrupted VOC."""
    work = tmp_path_factory.mktemp("bad_inputs")
    assert main(["pretrain", "--steps", "2", *SMALL, "--out", str(work / "done_run")]) == 0

    weights = work / "weights"
    weights.mkdir()
    encoder = (work / "done_run" / "encoder.pt").read_bytes()
    (weights / "truncated.pt").write_bytes(encoder[: len(encoder) // 2])
    (weights / "notes.pt").write_text("these are not weights\n")

    class RunsCode:
        def __reduce__(self) -> tuple:
            return (os.system, ("echo this ran",))

    torch.save({"conv1.weight": RunsCode()}, weights / "evil.pt")

    all_bad = work / "all_bad"
    all_bad.mkdir()
    for i in range(6):
        (all_bad / f"img{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")

    (work / "records").mkdir()
    table_records = work / "table_records"
    table_records.mkdir()
    base = {"status": "ok", "seed": 0, "profile": "smoke", "weights": "random", "metrics": {"miou": 0.5},
            "extra": {"primary_metric": "miou"}, "started_at": "2025-01-01T00:00:00+00:00"}  # fmt: skip
    for name, task, method in (("good", "seg", "random"), ("typo", "segg", "random"),
                               ("stranger", "seg", "bogus_method")):  # fmt: skip
        record = {**base, "id": name, "task": task, "pretrain": {"method": method}}
        (table_records / f"{name}.json").write_text(json.dumps(record))

    voc = work / "voc"
    shutil.copytree(synth_voc_root, voc)
    test_ids = (voc / "ImageSets" / "Main" / "test.txt").read_text().split()
    jpeg = voc / "JPEGImages" / f"{test_ids[0]}.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    (voc / "Annotations" / f"{test_ids[1]}.xml").write_text("<annotation><size>")
    return work


@pytest.fixture(scope="module")
def outcomes(work: Path) -> dict[str, tuple[Case, subprocess.CompletedProcess, dict, dict]]:
    """Every case run once, two or three at a time: (case, result, folders before, folders after)."""
    cases = _cases(work, torch.cuda.is_available())
    folders = {f for case in cases.values() for f in case.unchanged + case.absent}
    before = {f: snapshot(work / f) for f in folders}
    env = {**os.environ, "SSL_BENCH_CACHE": os.environ["SSL_BENCH_CACHE"], "PYTHONWARNINGS": "ignore"}

    def run(case: Case) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "ssl_bench", *case.args]
        return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(zip(cases, pool.map(run, cases.values()), strict=True))
    after = {f: snapshot(work / f) for f in folders}
    return {name: (case, results[name], before, after) for name, case in cases.items()}


@pytest.mark.parametrize("name", list(_cases(Path("work"), cuda=False)))
def test_bad_input_is_one_clear_line_and_changes_nothing(name: str, outcomes) -> None:
    case, result, before, after = outcomes[name]
    output = result.stdout + result.stderr
    assert result.returncode == case.code, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "weights_only=False" not in output
    if case.code == 2:
        errors = [line for line in result.stderr.splitlines() if re.match(r"bench \w+: error: ", line)]
        assert len(errors) == 1, result.stderr
        for culprit in case.culprit:
            assert culprit in errors[0], errors[0]
    else:
        named = result.stdout if case.stdout else result.stderr
        for culprit in case.culprit:
            assert culprit in named, output[-3000:]
    for folder in case.unchanged:
        assert after[folder] == before[folder], f"{folder} changed"
    for folder in case.absent:
        assert before[folder] is None and after[folder] is None, f"{folder} was created"


def test_a_table_leaves_unknown_tasks_and_methods_out_unless_asked(work: Path, outcomes, capsys) -> None:
    _, result, _, _ = outcomes["table with a record of an unknown task and method"]
    assert "segg" not in result.stdout and "bogus_method" not in result.stdout and "random" in result.stdout
    assert main(["table", "--results", str(work / "table_records"), "--all-tasks", "--all-methods"]) == 0
    out = capsys.readouterr().out
    assert "segg" in out and "bogus_method" in out


def test_help_gives_every_pretraining_flag_a_default_and_lists_the_choices() -> None:
    text = subprocess.run(
        [sys.executable, "-m", "ssl_bench", "pretrain", "--help"], capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(text.split())
    flags = ["--steps", "--batch-size", "--image-size", "--lr", "--seed", "--checkpoint-every"]
    flags += ["--sample-every", "--workers", "--device", "--method", "--profile", "--data", "--out"]
    for flag in flags:
        described = flat.split(f" {flag} ", 1)[1].split(" --", 1)[0]
        assert "default" in described, (flag, described)
    assert ", ".join(available_methods()) in flat

    text = subprocess.run(
        [sys.executable, "-m", "ssl_bench", "eval", "--help"], capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(text.split())
    assert "caffenet, caffenet_bn, torchvision_alexnet" in flat  # --arch's choices
    for flag in ("--seed", "--profile"):
        assert "default" in flat.split(f" {flag} ", 1)[1].split(" --", 1)[0], flag
