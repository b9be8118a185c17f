"""Structure of learnt first-layer filters: is conv1 still the noise it was initialised with?

Trained first layers hold smooth oriented edges and colour blobs (Krizhevsky et al. 2012, Fig. 3; Pathak
et al. 2016 show conv1 filters as evidence of learning); a Gaussian or He-normal init holds independent
weights. The measure here is the correlation between neighbouring weights of a filter:

- for each filter ``w[o]`` of shape ``[C, k, k]``, take every pair of spatial neighbours within one input
  channel, horizontal ``(w[c, i, j], w[c, i, j+1])`` and vertical ``(w[c, i, j], w[c, i+1, j])``, pooled over
  the channels and both directions (``2·C·k·(k−1)`` pairs: 660 for CaffeNet's 3×11×11);
- the filter's value is the Pearson correlation between the first and the second members of its pairs;
- :func:`conv1_structure` is the mean over filters.

Pairs never cross channels, but the means are taken over the whole filter, so a filter whose channels sit
at different levels (a colour blob) scores high too. Independent weights score about 0 (a filter's value has
a spread of about 1/√pairs ≈ 0.04; the mean of 96 filters about 0.004); smooth filters score near 1; a
checkerboard scores −1. A filter with no spread on one side of its pairs (e.g. all zeros) has no defined
correlation: its value is NaN and the mean skips it.
"""

from __future__ import annotations

import numpy as np
import torch


def neighbour_correlations(weight: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Per-filter correlation between horizontally and vertically neighbouring weights.

    Args:
        weight: conv weights ``[O, C, kh, kw]`` with ``kh, kw ≥ 2`` (conv1 of CaffeNet: ``[96, 3, 11, 11]``).

    Returns:
        ``[O]`` float64 in [−1, 1]; NaN for a filter whose pairs have no spread.
    """
    w = torch.as_tensor(weight).detach().to("cpu", torch.float64)
    if w.dim() != 4 or w.shape[-1] < 2 or w.shape[-2] < 2:
        raise ValueError(f"expected conv weights [O, C, kh, kw] with kh, kw >= 2, got {tuple(w.shape)}")
    n = w.shape[0]
    first = torch.cat([w[..., :, :-1].reshape(n, -1), w[..., :-1, :].reshape(n, -1)], dim=1)  # [O, pairs]
    second = torch.cat([w[..., :, 1:].reshape(n, -1), w[..., 1:, :].reshape(n, -1)], dim=1)  # [O, pairs]
    first = first - first.mean(1, keepdim=True)
    second = second - second.mean(1, keepdim=True)
    cov = (first * second).sum(1)
    scale = (first.pow(2).sum(1) * second.pow(2).sum(1)).sqrt()
    nan = torch.full_like(cov, float("nan"))
    return torch.where(scale > 0, cov / scale.clamp_min(torch.finfo(torch.float64).tiny), nan)


def conv1_structure(weight: torch.Tensor | np.ndarray) -> float:
    """Mean neighbour correlation over the filters (see the module docstring): ≈0 for noise, high when smooth.

    Args:
        weight: conv weights ``[O, C, kh, kw]``, e.g. ``encoder.conv1.weight``.

    Returns:
        The mean over filters with a defined value; NaN if no filter has one.
    """
    values = neighbour_correlations(weight)
    defined = values[~values.isnan()]
    return float(defined.mean()) if defined.numel() else float("nan")
