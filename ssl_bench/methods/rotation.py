"""Rotation prediction (RotNet; Gidaris, Singh & Komodakis, "Unsupervised Representation Learning by
Predicting Image Rotations", ICLR 2018).

Each image is shown in all four rotations by multiples of 90° and the network classifies which rotation
it sees (a 4-way softmax on an AlexNet head over pool5). The rotations are exact (transpose and flip, no
interpolation), so no low-level artefact gives the answer away (paper §2.2); an upright image can only be
told from a rotated one by what it shows (ground below, objects standing up).

Every image of a batch enters with all four rotations, as in the paper (its implementation details: all
four copies at once train better than one random rotation per image) and the authors' data loader, so a
batch of N images is 4N inputs and the method draws nothing at random. The loss is the mean over the 4N
inputs of the cross-entropy, i.e. the mean over images of each image's mean over its four rotations: a
per-sample loss, so DDP over the images equals one process (``tests/methods/test_rotation.py``). With batch
norm (encoder ``caffenet_bn`` or ``head_batch_norm``) the batch statistics couple the images of a batch
while training, as in any BN network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl_bench.encoders import alexnet_head, create_encoder, pool5_size
from ssl_bench.encoders.init import gaussian_init_, kaiming_init_
from ssl_bench.methods.base import PretrainMethod
from ssl_bench.methods.registry import register_method

NUM_ROTATIONS = 4  # 0°, 90°, 180°, 270°: the paper's choice (it also tries 2 and 8 rotations; 4 is best)


def all_rotations(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image in its four rotations, the rotations of one image next to each other.

    images: [N, C, S, S] (square, so that every rotation has the same shape).
    Returns inputs [4N, C, S, S] and labels [4N] int64, where input 4i + k is image i turned k × 90°
    counter-clockwise, exactly ``torch.rot90(images[i], k, dims=(1, 2))`` (a transpose and a flip: no
    interpolation), and its label is k.
    """
    n, _, h, w = images.shape
    if h != w:
        raise ValueError(f"rotation needs square images to stack the four rotations; got {h}×{w}")
    rotated = torch.stack([torch.rot90(images, k, dims=(2, 3)) for k in range(NUM_ROTATIONS)], dim=1)
    labels = torch.arange(NUM_ROTATIONS, device=images.device).repeat(n)  # [4N]: 0, 1, 2, 3, 0, 1, …
    return rotated.flatten(0, 1), labels  # [N, 4, C, S, S] → [4N, C, S, S]


@register_method("rotation")
class RotationPrediction(PretrainMethod):
    """Encoder + AlexNet head (fc6, fc7, fc8 with 4 outputs) trained to name an image's rotation.

    Args:
        encoder: registered encoder name (``caffenet``; ``caffenet_bn`` is closer to the paper's AlexNet,
            which has batch norm after every conv).
        image_size: training crop side (from the data).
        head_width: fc6/fc7 width (4096 in the paper's AlexNet; smaller in the CPU recipes).
        head_batch_norm: batch norm after fc6 and fc7, as in the authors' AlexNet. Off by default so that
            the loss stays per sample with the plain ``caffenet`` encoder.
        encoder_init_std: N(0, std²) for the encoder's weights instead of He-normal (None), as the
            context encoder's option of the same name.

    NOTE: the paper's AlexNet is torchvision's (64/192/384/256/256 channels, no groups, BN after every
    conv and fc); here the encoder is the suite's CaffeNet, so that every evaluator loads ``encoder.pt``.
    NOTE: the head has no dropout, as in the authors' AlexNet (``supervised.py``'s head has dropout).
    """

    supervision = "rotation"

    def __init__(
        self,
        encoder: str = "caffenet",
        image_size: int = 227,
        head_width: int = 4096,
        head_batch_norm: bool = False,
        encoder_init_std: float | None = None,
    ) -> None:
        super().__init__()
        self.encoder = create_encoder(encoder)
        s = pool5_size(image_size)
        self.head = alexnet_head(self.encoder.out_channels * s * s, head_width, NUM_ROTATIONS,
                                 batch_norm=head_batch_norm)  # fmt: skip
        kaiming_init_(self)
        if encoder_init_std is not None:
            gaussian_init_(self.encoder, encoder_init_std)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs, labels = all_rotations(batch["image"])  # [4N, 3, S, S], [4N]
        logits = self.head(self.encoder(inputs)).float()  # [4N, 4]
        # Mean over the 4N inputs = mean over images of their four rotations' mean (per sample).
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return {"loss": loss, "accuracy": accuracy}
