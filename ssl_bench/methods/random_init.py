"""The "Random Gaussian" baseline (PAPER.md §2): the encoder as initialised, never trained."""

from __future__ import annotations

from ssl_bench.encoders import create_encoder
from ssl_bench.encoders.init import GAUSSIAN_STD, caffe_input_scale_, gaussian_init_
from ssl_bench.methods.base import PretrainMethod
from ssl_bench.methods.registry import register_method


@register_method("random")
class RandomInit(PretrainMethod):
    """Conv weights ~ N(0, std²) on Caffe's 0–255 input, biases 0. "Pretraining time < 1 minute".

    ``caffe_input`` (default): the draw is the paper's Caffe trunk expressed in the suite's normalised input
    (:func:`caffe_input_scale_`: conv1 × 255·std per channel). NOTE: ``false`` gives the suite's earlier
    random row, std 0.01 on normalised input, whose activations are ~57× smaller than Caffe's.
    """

    supervision = "initialisation"
    table_order = 1

    trains = False
    needs_data = False

    def __init__(
        self,
        encoder: str = "caffenet",
        std: float = GAUSSIAN_STD,
        image_size: int = 227,
        caffe_input: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = gaussian_init_(create_encoder(encoder), std)
        if caffe_input:
            caffe_input_scale_(self.encoder)
