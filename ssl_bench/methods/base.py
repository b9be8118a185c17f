"""What every pretraining method is: an ``nn.Module`` whose ``forward(batch)`` returns its loss.

The training loop (``ssl_bench/training/loop.py``) knows nothing of any method beyond this contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import nn


def per_sample_generators(seeds: torch.Tensor) -> list[torch.Generator]:
    """One CPU ``torch.Generator`` per sample, from ``batch["sample_seed"]`` [N]."""
    return [torch.Generator().manual_seed(int(s)) for s in seeds.tolist()]


class PretrainMethod(nn.Module):
    """Base class of pretraining methods.

    Class attributes:
        trains: False for methods that are finished once constructed / prepared (``random``, ``datainit``).
        needs_labels: True when batches must carry image-level labels (``supervised``).
        mask_type: which masks the data pipeline draws for each sample (see ``data/masks.py``).

    Subclasses set ``self.encoder`` (the part saved as ``encoder.pt``) and implement ``forward``.
    """

    trains: ClassVar[bool] = True
    needs_labels: ClassVar[bool] = False
    needs_data: ClassVar[bool] = True
    mask_type: str = "none"
    mask_options: dict[str, Any]
    encoder: nn.Module

    def __init__(self) -> None:
        super().__init__()
        self.mask_options = {}

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """batch → {"loss": scalar, and any other scalar to log (e.g. "accuracy")}.

        ``batch``: "image" [N,3,H,W] normalised; "mask" [N,1,H,W] bool (``mask_type``); "label" (with
        ``needs_labels``); "index" [N] (the image's position in the dataset); "sample_seed" [N] int64, a seed
        for the method's own per-sample random choices: a generator seeded with it (``per_sample_generators``)
        draws the same for a sample whatever the number of DDP processes, so the loss stays per sample.
        """
        raise NotImplementedError

    def prepare(self, batches: Iterable[dict[str, torch.Tensor]]) -> None:  # noqa: B027 - optional hook
        """Optional data-dependent set-up before training (used by ``datainit``)."""

    def inpaint(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
        """Reconstruction for sample grids and the inpainting evaluator; None if the method has no decoder."""
        return None
