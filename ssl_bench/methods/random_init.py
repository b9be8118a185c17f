"""The "Random Gaussian" baseline (PAPER.md §2): the encoder as initialised, never trained."""

from __future__ import annotations

from ssl_bench.encoders import create_encoder
from ssl_bench.encoders.init import GAUSSIAN_STD, gaussian_init_
from ssl_bench.methods.base import PretrainMethod
from ssl_bench.methods.registry import register_method


@register_method("random")
class RandomInit(PretrainMethod):
    """Conv weights ~ N(0, std²), biases 0. "Pretraining time < 1 minute"."""

    supervision = "initialisation"
    table_order = 1

    trains = False
    needs_data = False

    def __init__(self, encoder: str = "caffenet", std: float = GAUSSIAN_STD, image_size: int = 227) -> None:
        super().__init__()
        self.encoder = gaussian_init_(create_encoder(encoder), std)
