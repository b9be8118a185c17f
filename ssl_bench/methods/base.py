"""What every pretraining method is: an ``nn.Module`` whose ``forward(batch)`` returns its loss.

The training loop (``ssl_bench/training/loop.py``) knows nothing of any method beyond this contract.

One optional hook lets a method plan each epoch (one epoch = one pass over the pool,
``len(pool) // global batch`` steps): ``on_epoch_start(epoch, images, seed)`` runs before the epoch's first
step, in the training thread, with the weights the previous step left; it may read every pool image
(centre crops, no augmentation), change the method's own state (pseudo-labels, a re-initialised layer) and
return the epoch's sample order. DeepCluster (``methods/deepcluster.py``) uses it to re-cluster.

Several optimisers (a GAN's generator and discriminator; ``methods/semantic_inpainting.py``): a method may
split its parameters into named ``OptimizerGroup`` s by overriding ``optimizer_groups()``. The default is
one group, ``main``, of every parameter, trained on ``forward(batch)["loss"]``: methods that do not override
it train exactly as before, and their ``forward`` takes the batch alone. A method with several groups
ALTERNATES their steps, in the order ``optimizer_groups()`` lists them, as GANs train (PyTorch's DCGAN
example: the discriminator steps first, then the generator's loss comes from the updated discriminator).
Each training step is, for each group in turn:

1. ``forward(batch, group=group.name)``: a forward for this group alone, under the run's autocast; it
   returns the group's loss under ``group.loss`` and any other scalar to log, and it sees every update the
   earlier groups made in this step;
2. the group's gradients cleared and its loss back-propagated into its own parameters only
   (``torch.autograd.backward(loss, inputs=group.params)``: a generator's loss through the discriminator
   leaves the discriminator's gradients alone); under DDP only those gradients are averaged;
3. the group's optimiser steps.

The step's logged scalars are the union of what the groups' forwards return (no key twice). Every forward
of a step must see the same samples: the masks come with the batch, and anything else a forward draws at
random must come from ``batch["sample_seed"]`` (``per_sample_generators``), never from the global RNG.
A module that several groups' forwards run (the generator, whose output the discriminator's step needs
too) runs once per forward, and its batch-norm running statistics move each time; a forward that only
needs another group's output computes it under ``torch.no_grad()``.
Every optimiser is the recipe's (``train.optimizer``, betas, weight decay) with lr ``train.lr ·
group.lr_factor`` at every step of the schedule; ``checkpoint.pt`` keeps each optimiser's state under
its group's name. Every parameter of a group must receive a gradient from its loss at every step.

Layer re-randomisation (``results/analyses.py``): a method with a decoder names the layers it can re-draw,
input to output, in ``inpainting_layers()``, and ``redraw_(layer, generator)`` sets one back to a fresh
draw of its initial distribution (``redraw_std``). The defaults fit the context encoder (its CaffeNet
``conv1`` … ``conv5``, He normal); the semantic-inpainting net adds its bottleneck and decoder and its
DCGAN init. The analysis knows no method beyond these two hooks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

MAIN_GROUP = "main"  # the one optimiser of a method that does not override ``optimizer_groups``
ENCODER_CONVS = ("conv1", "conv2", "conv3", "conv4", "conv5")  # the default ``inpainting_layers``


@dataclass(frozen=True)
class OptimizerGroup:
    """Parameters trained by one optimiser, on the loss ``forward`` returns for it.

    Attributes:
        name: the optimiser's name (``checkpoint.pt`` keys its state by it), e.g. ``generator``.
        params: the parameters it trains; groups may not share a parameter.
        loss: the key of ``forward(batch, group=name)``'s output that this optimiser minimises.
        lr_factor: its lr is ``train.lr`` times this, at every step of the schedule.
    """

    name: str
    params: tuple[nn.Parameter, ...]
    loss: str = "loss"
    lr_factor: float = 1.0


def per_sample_generators(seeds: torch.Tensor) -> list[torch.Generator]:
    """One CPU ``torch.Generator`` per sample, from ``batch["sample_seed"]`` [N]."""
    return [torch.Generator().manual_seed(int(s)) for s in seeds.tolist()]


class PretrainMethod(nn.Module):
    """Base class of pretraining methods.

    Class attributes:
        trains: False for methods that are finished once constructed / prepared (``random``, ``datainit``).
        needs_labels: True when batches must carry image-level labels (``supervised``).
        heldout_pretext: False when ``forward`` cannot score an image outside the pool it trained on
            (``training/memorisation.py``).
        mask_type: which masks the data pipeline draws for each sample (see ``data/masks.py``).
        redraw_std: the initial distribution ``redraw_`` draws from: None for He normal (fan-in), the
            encoders' init; a number for N(0, std²).
        supervision: what the method learns from, the results table's "supervision" column (the paper's
            Table 2 column: ``"context"``, ``"image labels"``); "" leaves the cell empty.
        table_order: the method's row in the results table when no ``--methods`` order is given: lower
            first, then by name (the paper's Table 2 rows 0-4; the default puts the others after them).

    Subclasses set ``self.encoder`` (the part saved as ``encoder.pt``) and implement ``forward``.
    """

    trains: ClassVar[bool] = True
    needs_labels: ClassVar[bool] = False
    needs_data: ClassVar[bool] = True
    redraw_std: ClassVar[float | None] = None
    # Whether ``forward`` can score images the method never trained on (its targets come from the batch
    # alone). False for DeepCluster, whose pseudo-labels exist per pool index: no memorisation measure.
    heldout_pretext: ClassVar[bool] = True
    supervision: ClassVar[str] = ""
    table_order: ClassVar[int] = 1000
    mask_type: str = "none"
    mask_options: dict[str, Any]
    encoder: nn.Module

    def __init__(self) -> None:
        super().__init__()
        self.mask_options = {}

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """batch → {"loss": scalar, and any other scalar to log (e.g. "accuracy")}.

        A method with several optimisers takes a second argument, ``group``: the name of the optimiser
        whose step this forward is for; it returns that group's loss under ``group.loss`` (module
        docstring).

        ``batch``: "image" [N,3,H,W] normalised; "mask" [N,1,H,W] bool (``mask_type``); "label" (with
        ``needs_labels``); "index" [N] (the image's position in the dataset); "sample_seed" [N] int64, a seed
        for the method's own per-sample random choices: a generator seeded with it (``per_sample_generators``)
        draws the same for a sample whatever the number of DDP processes, so the loss stays per sample.
        """
        raise NotImplementedError

    def prepare(self, batches: Iterable[dict[str, torch.Tensor]]) -> None:  # noqa: B027 - optional hook
        """Optional data-dependent set-up before training (used by ``datainit``)."""

    def on_epoch_start(
        self, epoch: int, images: Iterable[dict[str, torch.Tensor]], seed: int
    ) -> torch.Tensor | None:
        """Optional: act before epoch ``epoch``'s first step and choose the epoch's sample order.

        Called before the first batch of every epoch, and again for the epoch in progress when a run resumes
        mid-epoch: the weights have moved since the epoch began, so the method must then return the plan it
        made at the epoch's start, kept in its state (a buffer, or ``get_extra_state``: checkpoint.pt holds
        the whole method). Under DDP it is called on every rank and must return the same order on every
        rank (compute on rank 0 and broadcast, or compute what every rank computes identically).

        Args:
            epoch: 0-based.
            images: every pool image once, in index order (``data.pretrain.PoolImages``): batches of
                "image" [N,3,H,W] (normalised, on the training device, centre crop at the training size) and
                "index" [N]; nothing loads unless iterated; ``len(images)`` is the pool size.
            seed: for the epoch's random choices: the same on every rank and after a resume.

        Returns:
            int64 [len(images)] dataset indices (repeats allowed) that replace the epoch's shuffle (DDP ranks
            take interleaved positions of it, as of the shuffle), or None to keep the shuffle.
        """
        return None

    def optimizer_groups(self) -> list[OptimizerGroup]:
        """The method's optimisers, in the order they step within a training step (module docstring).

        Default: one group, ``main``, of every parameter, on ``forward(batch)["loss"]``.
        """
        return [OptimizerGroup(MAIN_GROUP, tuple(self.parameters()))]

    def inpaint(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
        """Reconstruction for sample grids and the inpainting evaluator; None if the method has no decoder."""
        return None

    def inpainting_layers(self) -> dict[str, nn.Module]:
        """The layers, input to output, that layer re-randomisation re-draws one at a time (module
        docstring). Default: the encoder's ``conv1`` … ``conv5``, those it has."""
        return {name: getattr(self.encoder, name) for name in ENCODER_CONVS if hasattr(self.encoder, name)}

    def redraw_(self, layer: nn.Module, generator: torch.Generator) -> None:
        """Re-draw ``layer`` (one of ``inpainting_layers()``) from the method's initial distribution, in
        place: its weight from N(0, std²), std = ``redraw_std`` or He normal's sqrt(2 / fan-in); its bias 0.
        Batch norm keeps its trained statistics and affine weights.

        NOTE: "re-randomise" follows the re-initialisation test of Zhang, Bengio & Singer, "Are All Layers
        Created Equal?" (2019): the layer is set back to a fresh draw of its initialisation, as if it had
        never been trained, while every other layer keeps its trained weights.
        """
        weight = layer.weight
        std = self.redraw_std if self.redraw_std is not None else math.sqrt(2.0 / weight[0].numel())
        with torch.no_grad():
            weight.copy_(torch.randn(weight.shape, generator=generator) * std)
            if getattr(layer, "bias", None) is not None:
                layer.bias.zero_()


def plans_epochs(method: PretrainMethod) -> bool:
    """Whether ``method`` overrides ``on_epoch_start``: only then is its training stream planned epoch by
    epoch (other methods keep the stream that runs ahead across epochs)."""
    return type(method).on_epoch_start is not PretrainMethod.on_epoch_start
