"""Methods with several optimisers (``PretrainMethod.optimizer_groups``, ``training/optimizers.py``).

The one-group default is the plain step; several groups step in turn, each with its own forward that sees
the earlier groups' updates, on its own loss only, at the schedule's lr times its factor; checkpoints keep
every optimiser's state (and an old single-optimiser checkpoint still resumes); a SIGKILLed two-optimiser
run resumes bit-identically; two DDP processes equal one process on the combined batch.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ssl_bench.cli import main
from ssl_bench.errors import CheckpointError
from ssl_bench.methods import create_method
from ssl_bench.methods.base import OptimizerGroup, PretrainMethod
from ssl_bench.runtime.distributed import DistInfo
from ssl_bench.runtime.performance import Performance
from ssl_bench.runtime.schedules import pretrain_lr
from ssl_bench.training.loop import train_loop
from ssl_bench.training.optimizers import Optimizers, check_groups
from tests.conftest import TINY_SYNTH_IMAGES
from tests.training.test_pretrain_cli import FAST


class OnePlayer(PretrainMethod):
    """A method that does not override ``optimizer_groups``."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"loss": self.encoder(batch["image"]).square().mean()}


class TwoPlayers(PretrainMethod):
    """A critic and a generator with an optimiser each, stepped in that order (as a GAN's D and G); both
    losses are means of per-sample terms, so DDP over the samples equals one process on the combined batch."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(4, 3)  # the "generator"
        self.critic = nn.Linear(3, 1)

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [
            OptimizerGroup("critic", tuple(self.critic.parameters()), loss="loss_critic", lr_factor=0.5),
            OptimizerGroup("generator", tuple(self.encoder.parameters())),
        ]

    def forward(self, batch: dict[str, torch.Tensor], group: str) -> dict[str, torch.Tensor]:
        x = batch["image"]  # [N, 4]
        if group == "critic":
            with torch.no_grad():
                y = self.encoder(x)  # [N, 3]
            score = self.critic(y).squeeze(1)  # [N]
            return {"loss_critic": (score - x[:, 0]).square().mean(), "score": score.detach().mean()}
        y = self.encoder(x)  # [N, 3]
        return {"loss": (y - 1).square().mean() - self.critic(y).mean()}  # through the updated critic


class SeesTheUpdate(PretrainMethod):
    """Two scalars: ``first`` pulls a towards 1; ``second``'s loss is b·a, so b's gradient is a's value
    when ``second``'s forward runs."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Identity()
        self.a, self.b = nn.Parameter(torch.tensor(3.0)), nn.Parameter(torch.tensor(0.0))
        self.calls: list[str] = []

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [OptimizerGroup("first", (self.a,)), OptimizerGroup("second", (self.b,), loss="loss_second")]

    def forward(self, batch: dict[str, torch.Tensor], group: str) -> dict[str, torch.Tensor]:
        self.calls.append(group)
        if group == "first":
            return {"loss": (self.a - 1).square(), "a_seen_by_first": self.a.detach().clone()}
        return {"loss_second": self.b * self.a, "a_seen_by_second": self.a.detach().clone()}


def _sgd(params):
    return torch.optim.SGD(params, lr=0.1)


def test_a_method_without_groups_has_one_main_group_of_every_parameter():
    method = create_method("rotation", image_size=99, head_width=16)
    (group,) = method.optimizer_groups()
    assert (group.name, group.loss, group.lr_factor) == ("main", "loss", 1.0)
    assert [id(p) for p in group.params] == [id(p) for p in method.parameters()]


def test_one_group_takes_exactly_the_plain_step():
    torch.manual_seed(0)
    a = OnePlayer()
    b = copy.deepcopy(a)
    optimizers = Optimizers(a, lambda p: torch.optim.Adam(p, lr=1e-2))
    plain = torch.optim.Adam(b.parameters(), lr=1e-2)
    for seed in range(3):
        batch = {"image": torch.randn(5, 4, generator=torch.Generator().manual_seed(seed))}
        optimizers.set_lr(1e-2)
        optimizers.step(a, batch)  # a's forward takes the batch alone
        plain.zero_grad(set_to_none=True)
        b(batch)["loss"].backward()
        plain.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_groups_step_in_turn_and_the_second_sees_the_first_ones_update():
    method = SeesTheUpdate()
    output = Optimizers(method, _sgd).step(method, {"image": torch.zeros(1)})
    assert method.calls == ["first", "second"], "one forward per group, in optimizer_groups' order"
    # first: a = 3 − 0.1·2·(3 − 1) = 2.6; second's forward sees a = 2.6, not 3: b = 0 − 0.1·2.6
    assert output["a_seen_by_first"].item() == 3.0 and output["a_seen_by_second"].item() == pytest.approx(2.6)
    assert method.a.item() == pytest.approx(2.6) and method.b.item() == pytest.approx(-0.26)
    assert set(output) == {"loss", "a_seen_by_first", "loss_second", "a_seen_by_second"}


def test_each_group_steps_on_its_own_loss_at_the_schedules_lr_times_its_factor():
    torch.manual_seed(0)
    method = TwoPlayers()
    twin = copy.deepcopy(method)
    optimizers = Optimizers(method, _sgd)
    lr = pretrain_lr(0.1, 1, 10, "cosine", 2)  # the warm-up's first step: 0.05
    optimizers.set_lr(lr)
    assert [o.param_groups[0]["lr"] for o in optimizers.optimizers] == [lr * 0.5, lr] and optimizers.lr == lr
    batch = {"image": torch.randn(6, 4)}
    optimizers.step(method, batch)
    # By hand: the critic's SGD step on its loss, then the generator's gradient through the updated critic.
    critic = torch.autograd.grad(twin(batch, "critic")["loss_critic"], list(twin.critic.parameters()))
    with torch.no_grad():
        for p, g in zip(twin.critic.parameters(), critic, strict=True):
            p -= 0.5 * lr * g
    generator = torch.autograd.grad(twin(batch, "generator")["loss"], list(twin.encoder.parameters()))
    for p, q in zip(method.critic.parameters(), twin.critic.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-7)  # not the generator's loss's gradient
    for p, q, g in zip(method.encoder.parameters(), twin.encoder.parameters(), generator, strict=True):
        assert torch.allclose(p, q - lr * g, atol=1e-7)


def test_groups_must_be_named_once_and_hold_every_trainable_parameter_once():
    method = TwoPlayers()
    g, c = tuple(method.encoder.parameters()), tuple(method.critic.parameters())
    for groups, message in [
        ([OptimizerGroup("a", g)], "no optimiser trains critic.weight"),
        ([OptimizerGroup("a", g), OptimizerGroup("a", c)], "names repeat"),
        ([OptimizerGroup("a", g + c[:1]), OptimizerGroup("b", c)], "in the optimisers 'a' and 'b'"),
        ([OptimizerGroup("a", g), OptimizerGroup("b", c, lr_factor=0)], "lr_factor must be > 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_groups(method, groups)
    batch = {"image": torch.randn(2, 4)}
    with pytest.raises(KeyError, match="returned no 'loss_critic'"):
        Optimizers(method, _sgd).step(lambda b, group: method(b, "generator"), batch)
    with pytest.raises(KeyError, match="optimiser 'generator' returned loss_critic, score again"):
        Optimizers(method, _sgd).step(lambda b, group: {**method(b, "critic"), **method(b, group)}, batch)


def test_optimiser_states_are_kept_by_name_and_an_old_single_state_still_loads():
    method = TwoPlayers()
    optimizers = Optimizers(method, lambda p: torch.optim.Adam(p, lr=1e-3))
    optimizers.step(method, {"image": torch.randn(3, 4)})
    state = optimizers.state_dict()
    assert list(state) == ["critic", "generator"] and state["critic"]["state"]
    fresh = Optimizers(TwoPlayers(), lambda p: torch.optim.Adam(p, lr=1e-3))
    fresh.load_state_dict(state, "here")
    assert fresh.state_dict()["critic"]["state"][0]["exp_avg"].equal(state["critic"]["state"][0]["exp_avg"])
    with pytest.raises(CheckpointError, match="holds the state of one optimiser; the method has critic, gen"):
        fresh.load_state_dict(state["generator"], "old.pt")
    with pytest.raises(
        CheckpointError, match="optimiser\\(s\\) critic, gen; the method has critic, generator"
    ):
        fresh.load_state_dict({"gen": state["generator"], "critic": state["critic"]}, "x.pt")
    single = OnePlayer()
    old = torch.optim.Adam(single.parameters(), lr=1e-3).state_dict()  # as checkpoints held it before
    Optimizers(single, lambda p: torch.optim.Adam(p, lr=1e-3)).load_state_dict(old, "old.pt")


# ------------------------------------------------------------------------------------------------------
# Checkpoints and resume, as a user runs them


def _states(out: Path) -> dict[str, torch.Tensor]:
    """Every tensor of checkpoint.pt's model and optimisers, and of encoder.pt."""
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    found = {f"model.{k}": v for k, v in ckpt["model"].items()}
    for name, state in ckpt["optimizer"].items():
        for index, values in state["state"].items():
            found.update({f"optimizer.{name}.{index}.{k}": v for k, v in values.items()})
    found.update({f"enc.{k}": v for k, v in torch.load(out / "encoder.pt", weights_only=True).items()})
    return found


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"the resumed run differs in {different}"


def test_a_checkpoint_with_one_optimizers_state_of_before_resumes(synth_cache, tmp_path):
    straight, old = tmp_path / "straight", tmp_path / "old"
    assert main(["pretrain", "--steps", "4", "--seed", "2", "--out", str(straight), *FAST]) == 0
    assert main(["pretrain", "--steps", "2", "--seed", "2", "--out", str(old), *FAST]) == 0
    state = torch.load(old / "checkpoint.pt", weights_only=True)
    state["optimizer"] = state["optimizer"]["main"]  # the layout checkpoints had before
    torch.save(state, old / "checkpoint.pt")
    assert main(["pretrain", "--steps", "4", "--seed", "2", "--out", str(old), "--resume", *FAST]) == 0
    _assert_same(_states(straight), _states(old))


def _bench(*args: str) -> list[str]:
    return [sys.executable, "-m", "ssl_bench", *args]


# The semantic-inpainting net (a generator and a discriminator), small.
TWO_OPTIMISERS = [
    "pretrain", "--method", "semantic_inpainting", "--seed", "3", "--image-size", "128", "--batch-size", "4",
    "--workers", "0", "--no-progress", "--set", "model.width=8", "--set", "model.bottleneck_dim=32",
    "--set", "train.log_every=1", "--set", f"data.synth_images={TINY_SYNTH_IMAGES}",
]  # fmt: skip
KILLED = [*TWO_OPTIMISERS, "--steps", "16", "--checkpoint-every", "4"]


def test_sigkill_then_resume_gives_identical_weights_and_optimiser_states(synth_cache, tmp_path):
    env = {**os.environ, "SSL_BENCH_CACHE": str(synth_cache)}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_bench(*KILLED, "--out", str(straight)), env=env, check=True, capture_output=True)
    proc = subprocess.Popen(
        _bench(*KILLED, "--out", str(killed)), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    metrics, deadline = killed / "metrics.jsonl", time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 6:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    step = torch.load(killed / "checkpoint.pt", weights_only=True)["step"]
    assert 4 <= step < 16, "the kill must land mid-run"
    resume = _bench(*KILLED, "--out", str(killed), "--resume")
    subprocess.run(resume, env=env, check=True, capture_output=True)
    states = _states(straight)
    assert any(k.startswith("optimizer.discriminator.") for k in states)
    _assert_same(states, _states(killed))
    logged = [json.loads(x)["step"] for x in metrics.read_text().splitlines()]
    assert logged == list(range(1, 17)), "metrics.jsonl holds each step once after the resume"


# ------------------------------------------------------------------------------------------------------
# DDP: each group's gradients averaged after its own backward


def _train(rank: int, world_size: int, store: str, out: str, batches: list[torch.Tensor]) -> None:
    """``train_loop`` on this rank's share of every batch (a DDP process, or the single process)."""
    if world_size > 1:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    torch.manual_seed(0)
    method = TwoPlayers()
    share = [{"image": b.chunk(world_size)[rank]} for b in batches]
    info = DistInfo(rank, world_size, rank, torch.device("cpu"))
    perf = Performance(amp=False, channels_last=False, compile=False, fused_adam=False)
    train_loop(
        method, Optimizers(method, _sgd, average_gradients=world_size > 1), iter(share),
        start_step=0, steps=len(share), info=info, out=Path(out), perf=perf, log_every=1,
        on_checkpoint=lambda *_: None, checkpoint_every=0, on_sample=lambda _: None, sample_every=0,
        progress=False, lr_at=lambda step: 0.1,
    )  # fmt: skip
    if rank == 0:
        torch.save(method.state_dict(), Path(out) / "state.pt")
    if world_size > 1:
        dist.destroy_process_group()


def test_two_ddp_processes_equal_one_process_on_the_combined_batch(tmp_path):
    batches = [torch.randn(8, 4, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    single.mkdir(), ddp.mkdir()
    _train(0, 1, "", str(single), batches)
    mp.spawn(_train, args=(2, str(tmp_path / "store"), str(ddp), batches), nprocs=2, join=True)
    a, b = torch.load(single / "state.pt"), torch.load(ddp / "state.pt")
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-6), k  # only the summation order differs
    torch.manual_seed(0)
    initial = TwoPlayers().state_dict()
    assert all((a[k] - initial[k]).abs().max() > 1e-3 for k in a), "every weight moved: not vacuous"
    rows = [json.loads(x) for x in (ddp / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and all("loss_critic" in r and "score" in r for r in rows)


def test_a_two_optimiser_method_trains_under_torchrun(synth_cache, tmp_path):
    env = {**os.environ, "SSL_BENCH_CACHE": str(synth_cache), "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command = [*launcher, "-m", "ssl_bench", *TWO_OPTIMISERS, "--steps", "2", "--out", str(tmp_path / "ddp")]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all("loss_discriminator" in r for r in rows)
