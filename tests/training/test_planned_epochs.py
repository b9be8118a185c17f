"""The epoch hook's stream (``training.loop.PlannedEpochs``, ``EpochSampler.set_epoch(order=...)``): a
method plans each epoch before it loads, a resumed run re-asks for the epoch in progress, and methods without
the hook keep the stream they had."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from ssl_bench.data.pretrain import EpochSampler, epoch_seed
from ssl_bench.methods import create_method
from ssl_bench.methods.base import plans_epochs
from ssl_bench.training.loop import training_batches


class _Keys(torch.utils.data.Dataset):
    """Items are the sampler's (epoch, index) keys, so a batch shows what was sampled."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, key: tuple[int, int]) -> dict[str, int]:
        epoch, i = key
        return {"image": torch.zeros(1), "epoch": epoch, "index": i}


def _stream(start_step: int, plan, thread: bool = False, world_size: int = 1, rank: int = 0):
    sampler = EpochSampler(12, 2, seed=0, rank=rank, world_size=world_size)  # 6 steps an epoch (one process)
    loader = DataLoader(_Keys(), batch_size=2, sampler=sampler)
    return training_batches(loader, sampler, start_step, torch.device("cpu"), False, thread, plan)


def _reversed_plan(calls: list[int]):
    def plan(epoch: int) -> torch.Tensor:
        calls.append(epoch)
        return torch.arange(12).flip(0)  # 11, 10, …, 0

    return plan


@pytest.mark.parametrize("thread", [False, True])
def test_each_epoch_is_planned_before_its_first_batch_and_sampled_in_the_plan_order(thread):
    calls: list[int] = []
    batches = _stream(0, _reversed_plan(calls), thread)
    first = [next(batches) for _ in range(6)]
    assert calls == [0], "epoch 1 is not planned before epoch 0's last batch is taken"
    assert [b["index"].tolist() for b in first] == [[11, 10], [9, 8], [7, 6], [5, 4], [3, 2], [1, 0]]
    assert next(batches)["epoch"].tolist() == [1, 1] and calls == [0, 1]
    batches.close()


def test_a_resumed_run_asks_again_for_the_epoch_in_progress_and_skips_its_taken_batches():
    calls: list[int] = []
    batches = _stream(8, _reversed_plan(calls))  # step 8: epoch 1, its batch 2
    batch = next(batches)
    assert calls == [1] and batch["epoch"].tolist() == [1, 1] and batch["index"].tolist() == [7, 6]
    batches.close()


def test_ranks_take_interleaved_positions_of_the_plan():
    plan = lambda e: torch.arange(12).flip(0)  # noqa: E731
    both = [next(_stream(0, plan, world_size=2, rank=r))["index"] for r in (0, 1)]
    assert both[0].tolist() == [11, 9] and both[1].tolist() == [10, 8]


def test_no_plan_keeps_the_shuffle_and_a_bad_order_is_refused():
    planned = [next(_stream(0, lambda e: None))["index"].tolist() for _ in range(2)]
    unplanned = next(_stream(0, None))["index"].tolist()
    assert planned[0] == planned[1] == unplanned
    with pytest.raises(ValueError, match="int64 \\[12\\]"):
        next(_stream(0, lambda e: torch.arange(5)))


def test_epoch_seeds_differ_by_epoch_and_repeat_by_seed():
    assert epoch_seed(0, 1) == epoch_seed(0, 1)
    assert len({epoch_seed(s, e) for s in range(3) for e in range(3)}) == 9
    assert all(0 <= epoch_seed(s, 5) < 2**31 for s in range(5))


def test_only_methods_that_override_the_hook_plan_epochs():
    assert plans_epochs(create_method("deepcluster", image_size=67, num_clusters=2, head_width=8))
    assert not plans_epochs(create_method("context_encoder", image_size=67))
