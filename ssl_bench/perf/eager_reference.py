"""The baseline every speed-up is measured against: a plain eager fp32 context-encoder training step.

Contiguous (NCHW) tensors, no autocast, no compilation, the for-loop Adam, torch's own
``nn.LocalResponseNorm`` (the suite's encoder uses the faster, equivalent ``ChannelLRN``) and the
channel-wise layer as the authors wrote it, a plain grouped ``nn.Conv2d`` (the suite's ``GroupedFC``
computes it as a batched matrix product): what a first hand-written PyTorch script would do. Kept
deliberately naive; do not optimise this file.
"""

from __future__ import annotations

import torch

from ssl_bench.methods import create_method


def build_reference(image_size: int = 227, lr: float = 3e-4) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = create_method("context_encoder", image_size=image_size)
    model.encoder.lrn = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)  # same constants
    grouped = model.channel_fc.fc
    plain = torch.nn.Conv2d(
        grouped.in_channels, grouped.out_channels, grouped.kernel_size, groups=grouped.groups
    )
    plain.load_state_dict(grouped.state_dict(), strict=True)
    model.channel_fc.fc = plain  # same weights, oneDNN's grouped convolution
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999), foreach=False, fused=False)
    return model, optimizer


def reference_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor]
) -> float:
    loss = model(batch)["loss"]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()
