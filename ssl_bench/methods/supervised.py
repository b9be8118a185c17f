"""Supervised baseline (PAPER.md §2, "ImageNet: 1000 class labels"): the same encoder trained on labels.

On ImageNet-style folders (``train/<wnid>/``) labels are class indices → softmax cross-entropy, as in
AlexNet. On SynthVOC's pretraining pool the labels are multi-hot (several objects per image) → per-class
sigmoid cross-entropy; this is the suite's stand-in for the paper's ImageNet row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl_bench.encoders import alexnet_head, create_encoder, pool5_size
from ssl_bench.encoders.init import gaussian_init_, kaiming_init_
from ssl_bench.methods.base import PretrainMethod
from ssl_bench.methods.registry import register_method


@register_method("supervised")
class Supervised(PretrainMethod):
    """Encoder + AlexNet classifier head (fc6, fc7 with dropout, fc8), trained on image-level labels.

    Args:
        num_classes: filled in by the trainer from the dataset's label set.
        head_width: fc6/fc7 width (4096 in AlexNet; smaller in the CPU smoke recipe).
        encoder_init_std: N(0, std²) for the encoder's weights instead of He-normal (None), as the
            context encoder's option of the same name.
    """

    supervision = "image labels"
    table_order = 0  # the paper's Table 2 order: ImageNet, random, autoencoder, data-dependent init, ours

    needs_labels = True

    def __init__(
        self,
        num_classes: int,
        encoder: str = "caffenet",
        image_size: int = 227,
        head_width: int = 4096,
        dropout: float = 0.5,
        encoder_init_std: float | None = None,
    ) -> None:
        super().__init__()
        self.encoder = create_encoder(encoder)
        s = pool5_size(image_size)
        self.head = alexnet_head(self.encoder.out_channels * s * s, head_width, num_classes, dropout=dropout,
                                 dropout_at="input")  # fmt: skip
        kaiming_init_(self)
        if encoder_init_std is not None:
            gaussian_init_(self.encoder, encoder_init_std)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = self.head(self.encoder(batch["image"])).float()  # [N, C]
        label = batch["label"]
        top = logits.detach().argmax(1)  # [N]
        if label.dtype == torch.long:  # [N] class indices
            loss = F.cross_entropy(logits, label)
            hit = top == label
        else:  # [N, C] multi-hot
            loss = F.binary_cross_entropy_with_logits(logits, label.float())
            hit = label.gather(1, top[:, None])[:, 0] > 0  # the top-scoring class is present
        # The pretext's accuracy for the training curve: top-1 (single label) or hit@1 (multi-hot).
        return {"loss": loss, "accuracy": hit.float().mean()}
