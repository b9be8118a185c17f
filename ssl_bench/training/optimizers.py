"""A method's optimisers (``PretrainMethod.optimizer_groups``, see ``methods/base.py``), one step each.

A training step with one group (every method but a GAN) is exactly the step it always was: ``model(batch)``
under autocast, ``zero_grad``, ``loss.backward()``, ``step``. With several groups the steps alternate, in
the groups' order: for each group, ``model(batch, group=name)`` under autocast, that group's gradients
cleared and its loss back-propagated into its own parameters, its optimiser's step; so each forward sees
the earlier groups' updates of this step (a GAN's generator loss comes from the updated discriminator).

DDP. A method with one group is wrapped in ``DistributedDataParallel`` as before (its backward all-reduces
the gradients in buckets, overlapped with the backward). A method with several groups is not wrapped: DDP's
reducer expects each backward to reach every parameter it wraps, and here each group's backward reaches
only that group's parameters. Instead each group's gradients are averaged over the processes right after
its own backward, before its optimiser steps (``distributed.average_gradients``: one all-reduce of one flat
buffer per group), and the initial state is broadcast from rank 0 as DDP does
(``distributed.broadcast_state``). Batch-norm buffers are then each rank's own, where DDP would copy rank
0's to the others before each forward: training uses batch statistics either way, and rank 0, whose buffers
are the same in both cases, is the one that writes checkpoints and sample grids.

Mixed precision: the bf16 autocast of ``runtime/performance.py`` needs no loss scaling; it wraps each
group's forward. An fp16 path would need one ``GradScaler`` for all optimisers: each group's loss scaled
before its backward, ``scaler.step`` for each optimiser, one ``scaler.update()`` per step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ssl_bench.errors import CheckpointError
from ssl_bench.methods.base import OptimizerGroup, PretrainMethod
from ssl_bench.runtime.distributed import average_gradients


class Optimizers:
    """One optimiser per ``OptimizerGroup`` of a method, in the groups' order.

    Args:
        method: the method (unwrapped); its ``optimizer_groups()`` are checked here.
        make: builds one optimiser from a group's parameters (the recipe's optimiser and its options).
        average_gradients: average each group's gradients over the DDP processes after its backward
            (a method with several groups under DDP; module docstring).
    """

    def __init__(
        self,
        method: PretrainMethod,
        make: Callable[[Sequence[nn.Parameter]], torch.optim.Optimizer],
        average_gradients: bool = False,
    ) -> None:
        self.groups = list(method.optimizer_groups())
        check_groups(method, self.groups)
        self.optimizers = [make(list(group.params)) for group in self.groups]
        self.average = average_gradients
        self._names = {id(p): name for name, p in method.named_parameters()}
        self.set_lr(self.optimizers[0].param_groups[0]["lr"])  # the lr ``make`` gave, times each factor

    @property
    def names(self) -> list[str]:
        return [group.name for group in self.groups]

    def set_lr(self, lr: float) -> None:
        """Every optimiser's lr: ``lr`` times its group's ``lr_factor``; ``self.lr`` = ``lr``."""
        self.lr = lr  # the schedule's lr, the one metrics.jsonl logs
        for group, optimizer in zip(self.groups, self.optimizers, strict=True):
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr * group.lr_factor

    def step(
        self,
        model: Callable[..., Mapping[str, torch.Tensor]],
        batch: Mapping[str, Any],
        autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    ) -> dict[str, torch.Tensor]:
        """One training step of ``model`` (the method, or its DDP / compiled wrapper) on ``batch``.

        Returns:
            What the forward returned; with several groups, the union of their forwards' outputs.
        """
        if len(self.groups) == 1:  # the plain step
            with autocast():
                output = model(batch)
            self._update(self.groups[0], self.optimizers[0], output, own_parameters_only=False)
            return dict(output)
        outputs: dict[str, torch.Tensor] = {}
        for group, optimizer in zip(self.groups, self.optimizers, strict=True):
            with autocast():
                output = model(batch, group=group.name)
            twice = sorted(set(output) & set(outputs))
            if twice:
                raise KeyError(f"the forward of optimiser '{group.name}' returned {', '.join(twice)} again")
            self._update(group, optimizer, output, own_parameters_only=True)
            outputs.update(output)
        return outputs

    def _update(
        self,
        group: OptimizerGroup,
        optimizer: torch.optim.Optimizer,
        output: Mapping[str, torch.Tensor],
        own_parameters_only: bool,
    ) -> None:
        """``group``'s loss in ``output`` back-propagated (into its own parameters only, if asked), its
        gradients averaged under DDP, its optimiser stepped."""
        if group.loss not in output:
            raise KeyError(
                f"the method's forward returned no '{group.loss}', the loss of its optimiser "
                f"'{group.name}'; it returned: {', '.join(output)}"
            )
        optimizer.zero_grad(set_to_none=True)
        if own_parameters_only:
            torch.autograd.backward(output[group.loss], inputs=list(group.params))
            self._check_gradients(group)
        else:
            output[group.loss].backward()
        if self.average:
            average_gradients(group.params)
        optimizer.step()

    def _check_gradients(self, group: OptimizerGroup) -> None:
        missing = [self._names.get(id(p), "?") for p in group.params if p.grad is None]
        if missing:
            raise RuntimeError(
                f"optimiser '{group.name}': its loss '{group.loss}' gave no gradient to "
                f"{', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}; every parameter of a group "
                "must be trained by its loss at every step"
            )

    def state_dict(self) -> dict[str, dict[str, Any]]:
        """Each optimiser's state under its group's name (``checkpoint.pt["optimizer"]``)."""
        return {group.name: opt.state_dict() for group, opt in zip(self.groups, self.optimizers, strict=True)}

    def load_state_dict(self, state: Mapping[str, Any], source: str) -> None:
        """Restore every optimiser from ``state_dict()``'s output.

        A checkpoint written before methods could own several optimisers holds one optimiser's state dict
        (keys ``state`` and ``param_groups``): it is the state of a one-group method's optimiser.

        Raises:
            CheckpointError: the saved optimisers are not this method's (naming both sets).
        """
        if "param_groups" in state:  # one optimizer's own state dict: a checkpoint of before
            if len(self.groups) != 1:
                raise CheckpointError(
                    f"{source} holds the state of one optimiser; the method has {', '.join(self.names)}"
                )
            state = {self.groups[0].name: state}
        if set(state) != set(self.names):
            raise CheckpointError(
                f"{source} holds the state of the optimiser(s) {', '.join(sorted(state))}; the method "
                f"has {', '.join(self.names)}"
            )
        for group, optimizer in zip(self.groups, self.optimizers, strict=True):
            optimizer.load_state_dict(state[group.name])


def check_groups(method: nn.Module, groups: Sequence[OptimizerGroup]) -> None:
    """Groups have distinct names, share no parameter, and cover every trainable parameter; ValueError."""
    if not groups:
        raise ValueError(f"{type(method).__name__}.optimizer_groups() returned no group")
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ValueError(f"{type(method).__name__}: optimiser names repeat: {', '.join(names)}")
    owner: dict[int, str] = {}
    for group in groups:
        if not group.params:
            raise ValueError(f"{type(method).__name__}: optimiser '{group.name}' has no parameters")
        if group.lr_factor <= 0:
            raise ValueError(f"optimiser '{group.name}': lr_factor must be > 0, not {group.lr_factor}")
        for p in group.params:
            if id(p) in owner:
                raise ValueError(f"a parameter is in the optimisers '{owner[id(p)]}' and '{group.name}'")
            owner[id(p)] = group.name
    orphans = [name for name, p in method.named_parameters() if p.requires_grad and id(p) not in owner]
    if orphans:
        raise ValueError(
            f"{type(method).__name__}: no optimiser trains {', '.join(orphans[:5])}"
            f"{' …' if len(orphans) > 5 else ''}"
        )
