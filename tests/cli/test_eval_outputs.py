"""Per-run outputs: every file a record points to lies in its run's own folder, which no other run touches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.encoders import create_encoder

# Seconds on a CPU: the session's tiny SynthVOC (tests/conftest.py), a few iterations, small heads.
TINY = {
    "det": ["iterations=2", "min_size=128", "max_size=128", "fc_width=16", "workers=0",
            "rpn_pre_nms_train=100", "rpn_post_nms_train=20", "rpn_pre_nms_test=50", "rpn_post_nms_test=10",
            "test_batch_size=16", "figure_images=2"],
    "inpaint": ["image_size=99", "max_test_images=4", "nn_database_max=8", "workers=0", "batch_size=8"],
}  # fmt: skip


@pytest.mark.parametrize("task", ["det", "inpaint"])
def test_two_runs_with_different_encoders_keep_their_own_figures(
    task: str, synth_voc_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(1)
    other = tmp_path / "other" / "encoder.pt"
    other.parent.mkdir()
    torch.save(create_encoder("caffenet").state_dict(), other)
    out = tmp_path / "results" / "runs"
    records = []
    for weights in ("random", str(other)):
        argv = ["eval", "--task", task, "--weights", weights, "--data", str(synth_voc_root),
                "--device", "cpu", "--out", str(out), "--no-progress"]  # fmt: skip
        for item in TINY[task]:
            argv += ["--set", item]
        assert main(argv) == 0
        records.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
        if len(records) == 1:
            first = Path(records[0]["extra"]["figure"]).read_bytes()
    figures = [Path(r["extra"]["figure"]) for r in records]
    assert figures[0] != figures[1]
    for record, figure in zip(records, figures, strict=True):
        work = out.parent / "work" / task / record["id"]  # the run's own folder, named by its record
        assert Path(record["work_dir"]) == work and figure.parent == work
        assert figure.is_file()
    assert figures[0].read_bytes() == first  # the second run left the first one's figure alone
