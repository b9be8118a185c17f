"""Semantic-inpainting context encoder: L2 + adversarial loss (Pathak et al. 2016, §3–4; PAPER.md §1.1).

The net of the paper's Table 1 and inpainting figures, as the authors' public Torch code defines it
(``pathak22/context-encoder``, ``train.lua`` for centre holes, ``train_random.lua`` for random regions;
the README trains it with ``wtl2=0.999 nBottleneck=4000 overlapPred=4 fineSize=128``). At 128 px, with
the code's width w = 64 (``nef = ngf = ndf``)::

    image [N,3,128,128], hole filled with the mean pixel (``fill``)
      encoder     conv 4×4/2, LeakyReLU 0.2            [N, w, 64, 64]    (no batch norm on the first conv)
                  conv 4×4/2, BN, LeakyReLU 0.2        [N, w, 32, 32]
                  … [N, 2w, 16, 16] → [N, 4w, 8, 8] →  [N, 8w, 4, 4]
      bottleneck  conv 4×4 (valid), BN, LeakyReLU 0.2  [N, 4000, 1, 1]   the 4000-d code (``encode``)
      decoder     up-conv 4×4, BN, ReLU                [N, 8w, 4, 4]
                  up-conv 4×4/2, BN, ReLU … [N, 4w, 8, 8] → [N, 2w, 16, 16] → [N, w, 32, 32]
                  up-conv 4×4/2, tanh                  [N, 3, 64, 64]    the predicted region, in [-1, 1]
    discriminator on the predicted region (real: the original's), the encoder's layout down to 4×4, then
                  conv 4×4 (valid)                     [N] logit (the code: sigmoid + BCE; here BCE on logits)

Losses, as the code computes them (``wtl2 = 0.999``, ``adversarial_weight = 1 − wtl2 = 0.001``), in the
order the two optimisers step within a training step::

    loss_discriminator = BCE(D(original region), real) + BCE(D(prediction, detached), fake)   D steps
    l2            = mean over the region's N·3·P·P values of  w · (prediction − original)²,  in [-1, 1] units,
                    w = 1 in the hole, ``overlap_weight`` (10) on the visible ring that is predicted too
    loss (G)      = 0.999 · l2 + 0.001 · BCE(D'(prediction), real),  D' = D after its step       G steps

Geometry. ``mask: center`` (Table 1): the predicted region is the centre square of half the side (64×64
of 128, the data pipeline's 1/4-area centre mask); the hole filled in the input is that square minus a
ring of ``overlap`` px (4 in the code: a 56×56 hole), so the ring is visible and predicted with weight 10.
``mask: random_region`` (``train_random.lua``): the decoder predicts the whole image (one more up-conv;
the encoder and discriminator then have the layout of a 128-px DCGAN), the hole is the sample's mask, and
the L2 covers every pixel: weight 1, or ``overlap_weight`` within ``overlap`` px of the hole (``overlap``
at least the image side is the code's ``useOverlapPred=1``: 10 on every visible pixel; the README's
command, ``useOverlapPred=0``, is ``overlap: 0``).
NOTE: the region-mask variant predicts the whole 128×128 image, as ``train_random.lua`` does (its D also
sees the whole image); only the hole is pasted by ``inpaint``.

Two optimisers (``PretrainMethod.optimizer_groups``), stepped in turn (``methods/base.py``):
``discriminator`` first, at ``discriminator_lr_factor`` (0.1) of the recipe's lr, then ``generator``
(encoder, bottleneck, decoder) at the recipe's lr: "a higher learning rate for the context encoder (10
times) than for the discriminator", the code's 2e-3 / 2e-4. ``forward(batch, group=...)`` computes one
optimiser's loss: the discriminator's on the original region and on the generator's prediction (computed
without gradients), then the generator's, from a fresh forward through the discriminator just updated.
Adam with β1 = 0.5 is the recipe's (``train.betas``). With ``adversarial_weight: 0`` there is no
discriminator: the L2-only net of the same size, with one optimiser and the plain ``forward(batch)``.
Metrics: ``loss`` (G's joint loss), ``l2`` (unweighted, the code's ``Err_G_L2``), ``adversarial``,
``loss_discriminator``, and D's accuracy on the original and on the prediction (``d_accuracy_real`` /
``d_accuracy_fake``, from D's forward before its step).

NOTE: the generator's adversarial term comes from a fresh forward of D on the prediction after D's step,
as in PyTorch's DCGAN example. The code (``train.lua``, ``fGx``) also updates D first, but reuses D's
output on the fake from before the update (``netD.output``) and back-propagates it through the updated
weights. The generator thus runs twice per step here (once without gradients for D's step), so its
batch-norm running statistics move twice per step (the same batch statistics both times), once in the
code: an effective momentum of 0.19 instead of 0.1 for the running statistics that ``inpaint`` and
``encode`` use in ``eval()`` mode.
NOTE: the code zeroes every conv bias before each forward (``m.bias:zero()``): here the convs have no bias.
NOTE: the encoder sees the suite's ImageNet-normalised images (every evaluator feeds the encoder those);
the code feeds images in [-1, 1], a per-channel affine change of the input only. The decoder's tanh output,
the L2 and the discriminator are in [-1, 1] units, as in the code, so that 0.999/0.001 weigh the same.
NOTE: the code's fill is ``2·{117, 104, 123}/255 − 1`` (channels 1, 2, 3); ``fill`` is the mean pixel in
normalised units (``dataset_mean`` in the CPU recipes; the code's numbers in the paper recipe).
NOTE: ``inpaint(image, mask)`` fills the whole ``mask``: at evaluation (the ``inpaint`` task's centre hole,
the same pixels the baselines fill) the ring that training showed is hidden too, and the whole predicted
square is pasted. The code's ``test.lua`` shows the ring and pastes the inner hole only; scoring that on
the full square would give the net the ring's true pixels, which no baseline gets. With ``overlap`` > 0
the net thus fills at evaluation a hole 2·overlap px wider than the one it trained on.
NOTE: the paper (§3.1) says the ring is 7 px (``overlap: 7``); the code uses 4 (the default here).
NOTE: crops come from the suite's pipeline (shorter side resized to 256/227 of the crop, random crop, flip);
the code resizes images to 350 px (``loadSize``) before its random 128-px crop, a closer view of each image.

Options beyond the code: ``bottleneck: channel_wise`` (the paper's channel-wise fully connected layer, as
in ``context_encoder.py``: each of the encoder's 8w maps of 4×4 connected to itself, then a 1×1 conv that
mixes channels, instead of the 4000-d fully connected code), and ``encoder: caffenet`` / ``caffenet_bn``
(the AlexNet conv1…pool5 of the feature-learning net; at 128 px pool5 is 256×2×2; encoder.pt is then a
CaffeNet that every evaluator loads). NOTE: the authors could not make the adversarial loss train with the
AlexNet encoder (PAPER.md §1.2: "the adversarial loss did not converge"); use ``adversarial_weight: 0``
with it to get their feature-learning setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.data.masks import fill_holes
from ssl_bench.data.transforms import denormalize, normalize
from ssl_bench.encoders import create_encoder, pool5_size
from ssl_bench.methods.base import OptimizerGroup, PretrainMethod
from ssl_bench.methods.context_encoder import ChannelWiseFC
from ssl_bench.methods.dcgan import (
    INIT_STD,
    LEAK,
    DCGANEncoder,
    Discriminator,
    dcgan_decoder,
    dcgan_init_,
    doublings,
)
from ssl_bench.methods.losses import reconstruction_weights
from ssl_bench.methods.registry import register_method

ENCODERS = ("dcgan", "caffenet", "caffenet_bn")
BOTTLENECKS = ("fc", "channel_wise")
MASKS = ("center", "random_region", "random_block")
GENERATOR, DISCRIMINATOR = "generator", "discriminator"  # the optimisers' names


def to_tanh_range(image: torch.Tensor) -> torch.Tensor:
    """Normalised images → [-1, 1] (the code's pixel units), float32."""
    return denormalize(image.float()) * 2.0 - 1.0


def _check_options(
    image_size: int,
    encoder: str,
    mask: str,
    mask_options: dict[str, Any] | None,
    adversarial_weight: float,
    overlap: int,
    overlap_weight: float,
    bottleneck: str,
    bottleneck_dim: int,
    width: int,
) -> None:
    """ValueError for an option ``SemanticInpainting`` cannot build (its Args)."""
    for name, value, valid in (("encoder", encoder, ENCODERS), ("bottleneck", bottleneck, BOTTLENECKS),
                               ("mask", mask, MASKS)):  # fmt: skip
        if value not in valid:
            raise ValueError(f"unknown {name} '{value}'; choose from {', '.join(valid)}")
    if mask == "center" and mask_options:
        raise ValueError("mask 'center' takes no mask_options: its square is the decoder's region")
    if not 0.0 <= adversarial_weight < 1.0:
        raise ValueError(f"adversarial_weight must lie in [0, 1), not {adversarial_weight}")
    if overlap < 0 or overlap_weight <= 0 or width < 1 or bottleneck_dim < 1:
        raise ValueError("overlap must be >= 0; overlap_weight, width and bottleneck_dim > 0")
    doublings(4, image_size)  # a DCGAN size: 4·2^k


def _generator(
    encoder: str, image_size: int, width: int, bottleneck: str, bottleneck_dim: int, region_size: int
) -> tuple[nn.Module, nn.Sequential, nn.Sequential]:
    """The generator's encoder, bottleneck and decoder (module docstring), made in that order."""
    if encoder == "dcgan":
        trunk: nn.Module = DCGANEncoder(image_size, width)
        code_size = 4
    else:
        trunk = create_encoder(encoder)
        code_size = pool5_size(image_size)  # 2 at 128 px
    channels = trunk.out_channels
    if bottleneck == "fc":
        code = nn.Sequential(
            nn.Conv2d(channels, bottleneck_dim, code_size, bias=False),  # [N, 4000, 1, 1]
            nn.BatchNorm2d(bottleneck_dim),
            nn.LeakyReLU(LEAK, inplace=True),
        )
        head: nn.Module = nn.ConvTranspose2d(bottleneck_dim, 8 * width, 4, bias=False)  # [N, 8w, 4, 4]
        decoder_in = 4
    else:
        code = nn.Sequential(
            ChannelWiseFC(channels, code_size),  # [N, C, s, s], C·s⁴ weights
            nn.BatchNorm2d(channels),
            nn.LeakyReLU(LEAK, inplace=True),
        )
        head = nn.Conv2d(channels, 8 * width, 1, bias=False)  # mixes channels: [N, 8w, s, s]
        decoder_in = code_size
    decoder = nn.Sequential(
        head,
        nn.BatchNorm2d(8 * width),
        nn.ReLU(inplace=True),
        *dcgan_decoder(8 * width, decoder_in, region_size, width),
    )
    return trunk, code, decoder


@register_method("semantic_inpainting")
class SemanticInpainting(PretrainMethod):
    """The paper's semantic-inpainting net: DCGAN encoder–decoder and discriminator (module docstring).

    Args:
        image_size: training crop side, 4·2^k px (128 in the paper); the region is its centre half-side
            square (``center``) or the whole image (region masks).
        encoder: ``dcgan`` (the code's), or ``caffenet`` / ``caffenet_bn`` (AlexNet conv1…pool5).
        mask: ``center`` (Table 1), ``random_region`` (``train_random.lua``) or ``random_block``.
        mask_options: passed to the region mask generator (none for ``center``: its square is fixed).
        adversarial_weight: weight of the adversarial term, 1 − the code's ``wtl2`` (0.001); 0 gives the
            L2-only net of the same size, without a discriminator.
        overlap: px of visible ring around the hole predicted with ``overlap_weight`` (code 4, paper 7).
        overlap_weight: the ring's L2 weight (10 in the code; the hole's is 1).
        fill: the hole's value per channel in normalised units (the mean pixel; resolved by the trainer).
        bottleneck: ``fc`` (the code's 4000-d code) or ``channel_wise`` (the paper's channel-wise layer).
        bottleneck_dim: length of the ``fc`` code (4000 in the README's command).
        width: w = nef = ngf = ndf, the first conv's channels (64 in the code).
        discriminator_lr_factor: the discriminator's lr over the generator's (0.1: the code's 10×).
    """

    supervision = "context"

    redraw_std: ClassVar[float] = INIT_STD  # layer re-randomisation draws from the code's init (dcgan_init_)

    def __init__(
        self,
        image_size: int = 128,
        encoder: str = "dcgan",
        mask: str = "center",
        mask_options: dict[str, Any] | None = None,
        adversarial_weight: float = 0.001,
        overlap: int = 4,
        overlap_weight: float = 10.0,
        fill: Sequence[float] = (0.0, 0.0, 0.0),
        bottleneck: str = "fc",
        bottleneck_dim: int = 4000,
        width: int = 64,
        discriminator_lr_factor: float = 0.1,
    ) -> None:
        super().__init__()
        _check_options(image_size, encoder, mask, mask_options, adversarial_weight, overlap, overlap_weight,
                       bottleneck, bottleneck_dim, width)  # fmt: skip
        self.image_size, self.adversarial_weight = image_size, adversarial_weight
        self.overlap, self.overlap_weight = overlap, overlap_weight
        self.discriminator_lr_factor = discriminator_lr_factor
        self.mask_type, self.mask_options = mask, dict(mask_options or {})
        self.region_size = image_size // 2 if mask == "center" else image_size  # P
        self.region_start = (image_size - self.region_size) // 2  # 32 at 128 px (centre), else 0
        if mask == "center" and 2 * overlap >= self.region_size:
            raise ValueError(f"overlap {overlap} leaves no hole in the {self.region_size}-px centre square")

        self.encoder, self.bottleneck, self.decoder = _generator(
            encoder, image_size, width, bottleneck, bottleneck_dim, self.region_size
        )
        self.discriminator = Discriminator(self.region_size, width) if adversarial_weight > 0 else None
        self.register_buffer("fill", torch.as_tensor(fill, dtype=torch.float32).view(3), persistent=True)
        dcgan_init_(self)
        if mask == "center":
            self._register_center_hole()

    def _register_center_hole(self) -> None:
        """Centre masks: the hole is the region minus its ring (fixed); the L2 weights over the region."""
        overlap, image_size = self.overlap, self.image_size
        region = torch.zeros(1, 1, self.region_size, self.region_size, dtype=torch.bool)
        inner = self.region_size - 2 * overlap
        region[..., overlap : overlap + inner, overlap : overlap + inner] = True
        hole = torch.zeros(1, 1, image_size, image_size, dtype=torch.bool)
        s = self.region_start
        hole[..., s : s + self.region_size, s : s + self.region_size] = region
        self.register_buffer("center_hole", hole, persistent=False)  # [1, 1, S, S]
        self.register_buffer("center_weights", self.l2_weights(region), persistent=False)  # [1, 1, P, P]

    # ------------------------------------------------------------------------------------------------
    # The network

    def _code(self, visible: torch.Tensor) -> torch.Tensor:
        """visible: [N, 3, S, S] normalised, hole filled → bottleneck [N, 4000, 1, 1] (or [N, C, s, s])."""
        return self.bottleneck(self.encoder(visible))

    def predict(self, visible: torch.Tensor) -> torch.Tensor:
        """visible: [N, 3, S, S] normalised, hole filled → the predicted region [N, 3, P, P] in [-1, 1]."""
        return self.decoder(self._code(visible)).float()

    def region(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted region of full-size images or masks: [N, C, S, S] → [N, C, P, P]."""
        s, p = self.region_start, self.region_size
        return x[..., s : s + p, s : s + p]

    def l2_weights(self, hole: torch.Tensor) -> torch.Tensor:
        """Per-pixel L2 weights over the region: 1 in the hole, ``overlap_weight`` on the visible pixels
        within ``overlap`` px of it, 1 on the other visible pixels (region masks only).

        hole: bool [N, 1, P, P] (the hole inside the region) → float32 [N, 1, P, P].
        """
        ring = reconstruction_weights(hole, self.overlap, self.overlap_weight)  # 1 / overlap_weight / 0
        return torch.where(ring > 0, ring, torch.ones_like(ring))

    def optimizer_groups(self) -> list[OptimizerGroup]:
        """With an adversarial loss ``discriminator``, which steps first; then ``generator`` (encoder,
        bottleneck, decoder)."""
        generator = tuple(
            p for module in (self.encoder, self.bottleneck, self.decoder) for p in module.parameters()
        )
        groups = [OptimizerGroup(GENERATOR, generator, loss="loss")]
        if self.discriminator is not None:
            discriminator = tuple(self.discriminator.parameters())
            factor = self.discriminator_lr_factor
            groups.insert(0, OptimizerGroup(DISCRIMINATOR, discriminator, "loss_discriminator", factor))
        return groups

    # ------------------------------------------------------------------------------------------------
    # Training

    def forward(self, batch: dict[str, torch.Tensor], group: str = GENERATOR) -> dict[str, torch.Tensor]:
        """The loss of optimiser ``group`` (``discriminator`` or ``generator``) on ``batch``, and its metrics.

        Nothing here is random: the hole is the centre square or the batch's mask, so the two forwards of a
        training step see the same inputs.
        """
        names = [g.name for g in self.optimizer_groups()]
        if group not in names:
            raise ValueError(f"no optimiser '{group}'; this net has {', '.join(names)}")
        image = batch["image"]  # [N, 3, S, S] normalised
        if self.mask_type == "center":
            hole = self.center_hole.expand(image.shape[0], -1, -1, -1)  # [N, 1, S, S]
            weights = self.center_weights  # [1, 1, P, P]
        else:
            hole = batch["mask"]  # [N, 1, S, S]
            weights = self.l2_weights(hole)  # [N, 1, S, S]: the region is the image
        visible = fill_holes(image, hole, self.fill)  # [N, 3, S, S]
        real = self.region(to_tanh_range(image))  # [N, 3, P, P] in [-1, 1]
        if group == DISCRIMINATOR:
            with torch.no_grad():
                fake = self.predict(visible)  # [N, 3, P, P]: the generator's, trained in its own step
            d_real, d_fake = self.discriminator(real), self.discriminator(fake)  # [N] logits each
            on_real = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
            on_fake = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            return {
                "loss_discriminator": on_real + on_fake,
                "d_accuracy_real": (d_real.detach() > 0).float().mean(),
                "d_accuracy_fake": (d_fake.detach() < 0).float().mean(),
            }
        prediction = self.predict(visible)  # [N, 3, P, P] in [-1, 1]
        squared = (prediction - real).square()
        l2 = (weights * squared).mean()  # the code's weighted MSECriterion over the region
        out = {"l2": squared.mean().detach()}  # the code's Err_G_L2 (unweighted)
        if self.discriminator is None:
            return {"loss": l2, **out}
        d_fake = self.discriminator(prediction)  # [N]: the discriminator as updated in this step
        adversarial = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))  # G wants "real"
        a = self.adversarial_weight
        return {"loss": (1.0 - a) * l2 + a * adversarial, **out, "adversarial": adversarial.detach()}

    # ------------------------------------------------------------------------------------------------
    # Using the trained net

    @torch.no_grad()
    def inpaint(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The whole ``mask`` filled, the net's region pasted into it; original pixels elsewhere.

        image: [N, 3, S, S] normalised; mask: bool [N, 1, S, S], True on the hole → [N, 3, S, S].
        Hole pixels outside the predicted region (a region mask on a centre-trained net) keep the fill.
        """
        visible = fill_holes(image, mask, self.fill)  # [N, 3, S, S]
        prediction = normalize((self.predict(visible) + 1.0) / 2.0).to(image.dtype)  # [N, 3, P, P]
        full = visible.clone()
        self.region(full).copy_(prediction)
        return torch.where(mask, full, image)

    @torch.no_grad()
    def encode(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The code of each image with ``mask`` filled: [N, 3, S, S], [N, 1, S, S] → [N, D].

        D = ``bottleneck_dim`` (4000) after its batch norm and LeakyReLU (what the decoder reads), or
        C·s·s for the channel-wise bottleneck. Call it in ``eval()`` mode (running BN statistics).
        """
        return self._code(fill_holes(image, mask, self.fill)).float().flatten(1)

    def inpainting_layers(self) -> dict[str, nn.Module]:
        """The encoder's convs, the code's, the decoder's (``deconv1`` …): issue #15's "each conv layer"."""
        convs = [m for m in self.decoder if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        decoder = {f"deconv{i}": m for i, m in enumerate(convs, start=1)}
        return super().inpainting_layers() | {"bottleneck": self.bottleneck[0]} | decoder


@register_method("semantic_inpainting_l2")
class SemanticInpaintingL2(SemanticInpainting):
    """The L2-only twin of :class:`SemanticInpainting`: the same generator, no discriminator.

    ``semantic_inpainting`` with ``adversarial_weight: 0`` under its own name, so that a reproduction and
    its table carry the joint-loss net and its comparison net (issue #15: same size, same budget) as two
    rows. Any other ``adversarial_weight`` is an error: that is the joint net.
    """

    def __init__(self, adversarial_weight: float = 0.0, **options: Any) -> None:
        if adversarial_weight != 0.0:
            raise ValueError(
                "semantic_inpainting_l2 is the L2-only net (adversarial_weight 0, not "
                f"{adversarial_weight}); use method semantic_inpainting for the joint loss"
            )
        super().__init__(adversarial_weight=0.0, **options)
