"""An endless stream of batches from a DataLoader, for every training loop (pretraining and fine-tuning)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader

from ssl_bench.data.pretrain import EpochSampler


def endless_batches(
    loader: DataLoader, sampler: EpochSampler | None = None, start_step: int = 0
) -> Iterator[Any]:
    """Batches from global step ``start_step`` on, crossing epochs.

    With an ``EpochSampler`` each epoch is set on it, and a resumed run starts mid-epoch without loading the
    batches it skips. Without one, each pass iterates ``loader`` afresh (a shuffling loader draws a new order
    from its generator); ``start_step`` must then be 0.
    """
    if sampler is None:
        if start_step:
            raise ValueError("resuming mid-stream needs an EpochSampler")
        while True:
            yield from loader
    epoch, skip = divmod(start_step, sampler.batches_per_epoch)
    while True:
        sampler.set_epoch(epoch, skip)
        for batch in loader:
            if isinstance(batch, dict) and "image" not in batch and batch.get("skipped"):
                continue  # every image of this batch was unreadable (--skip-bad-images): nothing to train on
            yield batch
        epoch, skip = epoch + 1, 0
