"""Jigsaw puzzles (Noroozi & Favaro, "Unsupervised Learning of Visual Representations by Solving Jigsaw
Puzzles", ECCV 2016): which of a fixed set of permutations shuffled the nine tiles of a crop?

The context-free network (CFN), at the paper's 225-px crop::

    crop [N,3,225,225] → 3×3 cells of 75 px → a random 64-px tile in each cell (gaps: edges do not line up)
      → per tile: colour channels jittered, sometimes grey, resized to the trunk, normalised (mean/std)
      → shuffled by permutation p_label: position i shows tile p_label[i]        [N, 9, 3, T, T]
      → shared CaffeNet trunk on each tile (self.encoder)                        [N·9, 256, s, s]
      → fc6 per tile (shared weights), ReLU, dropout                             [N, 9, 1024]
      → concatenated, fc7, ReLU, dropout                                         [N, 4096]
      → fc8 over the permutation set                                             [N, P]
    loss: cross-entropy against the permutation's index (label)

The permutation set is the paper's Algorithm 1: start from a random permutation of the 9 tiles, then
repeatedly add the remaining permutation whose summed Hamming distance to the chosen ones is largest
(``max_hamming_permutations``, vectorised over all 9! = 362,880 permutations, built once per construction).

Every random choice of a sample (its permutation, tile offsets, channel jitter, grey tiles, dropout masks)
is drawn from its own generator (``per_sample_generators(batch["sample_seed"])``): the loss is a mean of
per-sample losses and a batch split across DDP processes trains exactly as in one. The ``caffenet_bn``
encoder couples the batch through its batch statistics (as it does for every method).
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.data.transforms import denormalize
from ssl_bench.encoders import create_encoder, pool5_size
from ssl_bench.encoders.init import gaussian_init_, kaiming_init_
from ssl_bench.methods.base import PretrainMethod, per_sample_generators
from ssl_bench.methods.registry import register_method

GRID = 3  # 3×3 tiles
TILES = GRID * GRID
# The paper cuts 75-px cells from a 225-px crop and a 64-px tile inside each; other crop sizes keep the ratio.
TILE_OF_CELL = 64 / 75
# The smallest input the CaffeNet trunk takes (pool5 then 1×1); see training.recipe.MIN_IMAGE_SIZE.
MIN_TRUNK_INPUT = 67
# Tiles are normalised in [0, 1] pixel units; dividing by at least 0.01 (2.5 of 255 grey levels) keeps a flat
# tile flat instead of blowing its rounding noise up to unit contrast.
TILE_STD_FLOOR = 1e-2
# ITU-R BT.601 luma weights for grey tiles.
LUMA = (0.299, 0.587, 0.114)


@functools.cache
def all_permutations(pieces: int) -> np.ndarray:
    """Every permutation of ``range(pieces)`` in lexicographic order: uint8 [pieces!, pieces]."""
    flat = itertools.chain.from_iterable(itertools.permutations(range(pieces)))
    return np.fromiter(flat, dtype=np.uint8, count=math.factorial(pieces) * pieces).reshape(-1, pieces)


@functools.cache
def _max_hamming_permutations(count: int, pieces: int, criterion: str, seed: int) -> np.ndarray:
    candidates = all_permutations(pieces)  # [M, pieces]
    if not 1 <= count <= len(candidates):
        raise ValueError(f"num_permutations must be in 1…{len(candidates)} for {pieces} tiles, not {count}")
    columns = np.ascontiguousarray(candidates.T)  # [pieces, M]: one row per position, fast to compare
    taken = pieces * count + 1  # a chosen permutation's score: above any candidate's, never chosen again
    # Positions where a candidate agrees with the chosen ones: summed ("mean") or the most ("min");
    # Hamming distance = pieces - agreements, so the greedy step takes the fewest agreements.
    agreements = np.zeros(len(candidates), dtype=np.int32)
    generator = torch.Generator().manual_seed(seed)
    j = int(torch.randint(len(candidates), (1,), generator=generator))
    chosen = [j]
    for _ in range(count - 1):
        new = candidates[j]
        same = (columns[0] == new[0]).astype(np.uint8)  # [M], at most 9: small ints run ~5× faster
        for i in range(1, pieces):
            same += columns[i] == new[i]
        if criterion == "mean":
            agreements += same
        else:
            np.maximum(agreements, same, out=agreements)
        agreements[j] = taken
        j = int(agreements.argmin())  # the first (lexicographic) of ties, as the paper's arg max
        chosen.append(j)
    return candidates[chosen]


def max_hamming_permutations(
    count: int, pieces: int = TILES, criterion: Literal["mean", "min"] = "mean", seed: int = 0
) -> torch.Tensor:
    """The paper's greedy maximal-Hamming-distance permutation set (Noroozi & Favaro 2016, Algorithm 1).

    Starts from a permutation drawn with ``seed``, then adds, one at a time, the permutation not yet chosen
    whose distance to the chosen set is largest: summed over the chosen ones (``mean``, the paper's
    ``1ᵀD``; the average distance grows, a close pair may remain) or their minimum (``min``, farthest-point
    selection: the set's minimal distance is as large as greedy gets). Deterministic: the same arguments
    give the same set (cached for the process).

    Args:
        count: size of the set (1000 in the paper).
        pieces: tiles per puzzle (9 for 3×3).
        criterion: ``mean`` (paper) or ``min``.
        seed: draws the first permutation.

    Returns:
        long [count, pieces]; row k is permutation k: position i of a shuffled puzzle shows tile row[i].
    """
    if criterion not in ("mean", "min"):
        raise ValueError(f"unknown permutation criterion '{criterion}'; choose mean or min")
    return torch.from_numpy(_max_hamming_permutations(count, pieces, criterion, seed).astype(np.int64))


def hamming_distances(permutations: torch.Tensor) -> torch.Tensor:
    """Pairwise Hamming distances of a set [P, n] → long [P, P] (positions that differ)."""
    return (permutations[:, None, :] != permutations[None, :, :]).sum(-1)


def shuffle_tiles(tiles: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """tiles [N, 9, ...] in grid order, order [N, 9] → [N, 9, ...] where position i holds tile order[:, i].

    The inverse is ``shuffle_tiles(shuffled, order.argsort(1))``.
    """
    rows = torch.arange(tiles.shape[0], device=tiles.device)[:, None]  # [N, 1]
    return tiles[rows, order.to(tiles.device)]


def cut_tiles(image: torch.Tensor, corners: torch.Tensor, tile: int) -> torch.Tensor:
    """Cut a ``tile``-px square per colour channel from each image: image [N, 3, H, W], corners
    [N, K, 3, 2] (row, column of each channel's top-left pixel) → [N, K, 3, tile, tile].

    Each channel has its own corner so the channels can be shifted against each other (colour jitter).
    """
    corners = corners.to(image.device)
    steps = torch.arange(tile, device=image.device)
    n = torch.arange(image.shape[0], device=image.device)[:, None, None, None, None]  # [N, 1, 1, 1, 1]
    c = torch.arange(image.shape[1], device=image.device)[None, None, :, None, None]  # [1, 1, 3, 1, 1]
    rows = corners[..., 0, None, None] + steps[:, None]  # [N, K, 3, tile, 1]
    cols = corners[..., 1, None, None] + steps[None, :]  # [N, K, 3, 1, tile]
    return image[n, c, rows, cols]  # [N, K, 3, tile, tile]


def normalize_tiles(tiles: torch.Tensor) -> torch.Tensor:
    """Each tile's channels to mean 0, std 1: [..., 3, T, T] → same shape (the paper normalises each tile
    so that the net cannot match neighbours by their brightness or contrast)."""
    mean = tiles.mean(dim=(-2, -1), keepdim=True)
    std = tiles.std(dim=(-2, -1), keepdim=True, unbiased=False).clamp_min(TILE_STD_FLOOR)
    return (tiles - mean) / std


def per_sample_dropout(x: torch.Tensor, generators: list[torch.Generator], p: float) -> torch.Tensor:
    """Inverted dropout whose mask for sample n comes from ``generators[n]``: x [N, ...] → [N, ...].

    ``nn.Dropout`` draws from the global generator, so a sample's mask would depend on its batch
    neighbours and on the number of DDP processes; this keeps the loss per sample.
    """
    keep = torch.stack([torch.rand(x.shape[1:], generator=g) >= p for g in generators])  # [N, ...]
    return x * keep.to(device=x.device, dtype=x.dtype) / (1.0 - p)


@register_method("jigsaw")
class Jigsaw(PretrainMethod):
    """Context-free network: a shared trunk per tile, fc6 per tile, fc7 + fc8 over the nine concatenated.

    Args:
        image_size: training crop side (225 in the paper): cells are ``image_size // 3`` px, tiles
            ``round(cell · 64/75)`` px (64 at 225, 36 at 128, 28 at 99), centred crops of 3 cells.
        encoder: trunk name (``caffenet``; ``caffenet_bn`` for batch norm).
        encoder_init_std: N(0, std²) for the trunk's weights instead of He-normal (None), as the context
            encoder's option of the same name.
        num_permutations: size of the permutation set, the number of classes (1000 in the paper).
        permutation_criterion: ``mean`` (the paper's Algorithm 1, largest summed distance) or ``min``
            (largest minimal distance): see ``max_hamming_permutations``.
        permutation_seed: draws the set's first permutation (fixed, so every run and process has one set).
        tile_input_size: side the tiles are resized to for the trunk; None: twice the tile side, at least
            67 px (128 at a 225-px crop, 72 at 128, 67 at 99).
        channel_jitter: each colour channel of a tile is cut up to this many px away from the others
            (the paper: 0, ±1 or ±2 px, against chromatic aberration), staying inside the cell.
        grayscale_prob: chance that a tile is made grey (luma in all three channels).
        fc6_width / fc7_width: the CFN's 1024 (per tile) and 4096.
        dropout: after fc6 and fc7 (masks drawn per sample).
        head_init_std: N(0, std²) for fc6 and fc7 instead of He-normal (None); Caffe's AlexNet uses 0.005.
            He-normal fc layers start with logits of std ~5 (a first loss ~17 for 1000 classes), which SGD at
            the paper's lr 0.01 answers by shrinking the trunk; Adam learns faster from He-normal.

    NOTE: the paper's CFN samples each 64-px tile with conv1 stride 2; the CaffeNet trunk every evaluator
    loads has stride 4 and needs at least 67 px, so tiles are resized by bilinear interpolation to
    ``tile_input_size`` (by default twice their side: the same sampling of the tile as stride 2).
    NOTE: grey tiles are drawn per tile with ``grayscale_prob`` (the paper trains on colour and grey
    images; 0.3 is the share a public reimplementation, bbrattoli/JigsawPuzzlePytorch, makes grey).
    NOTE: tiles are normalised per colour channel (the paper says per patch, without saying whether
    the channels share one mean and std).
    NOTE: dropout after fc6 and fc7 follows AlexNet; the paper does not say.
    NOTE: the paper does not give its initialisation: He-normal (or ``encoder_init_std`` /
    ``head_init_std``), and fc8 ~ N(0, 0.01²) as AlexNet's classifier in Caffe.
    NOTE: the crop comes from the suite's pipeline (shorter side resized to 256/227 of the crop, random
    crop, mirror); the paper resizes to 256 and crops 225 px.
    """

    supervision = "context"

    def __init__(
        self,
        image_size: int = 225,
        encoder: str = "caffenet",
        encoder_init_std: float | None = None,
        num_permutations: int = 1000,
        permutation_criterion: Literal["mean", "min"] = "mean",
        permutation_seed: int = 0,
        tile_input_size: int | None = None,
        channel_jitter: int = 2,
        grayscale_prob: float = 0.3,
        fc6_width: int = 1024,
        fc7_width: int = 4096,
        dropout: float = 0.5,
        head_init_std: float | None = None,
    ) -> None:
        super().__init__()
        self.cell = image_size // GRID
        self.tile = round(self.cell * TILE_OF_CELL)
        self.origin = (image_size - GRID * self.cell) // 2  # the 3×3 cells are centred in the crop
        if tile_input_size is None:
            tile_input_size = max(MIN_TRUNK_INPUT, 2 * self.tile)
        if tile_input_size < MIN_TRUNK_INPUT:
            raise ValueError(f"tile_input_size must be at least {MIN_TRUNK_INPUT} px, not {tile_input_size}")
        if not 0.0 <= grayscale_prob <= 1.0 or not 0.0 <= dropout < 1.0 or channel_jitter < 0:
            raise ValueError("grayscale_prob must be in [0, 1], dropout in [0, 1), channel_jitter ≥ 0")
        self.tile_input_size = tile_input_size
        self.channel_jitter, self.grayscale_prob, self.dropout = channel_jitter, grayscale_prob, dropout
        permutations = max_hamming_permutations(
            num_permutations, criterion=permutation_criterion, seed=permutation_seed
        )
        self.register_buffer("permutations", permutations, persistent=True)  # [P, 9]

        self.encoder = create_encoder(encoder)
        s = pool5_size(tile_input_size)
        self.fc6 = nn.Linear(self.encoder.out_channels * s * s, fc6_width)  # shared by the nine tiles
        self.fc7 = nn.Linear(TILES * fc6_width, fc7_width)
        self.fc8 = nn.Linear(fc7_width, num_permutations)
        self.relu = nn.ReLU(inplace=True)
        kaiming_init_(self)
        # fc8 as AlexNet's classifier in Caffe, N(0, 0.01²): the puzzle starts near chance.
        gaussian_init_(self.fc8, 0.01)
        if head_init_std is not None:
            gaussian_init_(self.fc6, head_init_std)
            gaussian_init_(self.fc7, head_init_std)
        if encoder_init_std is not None:
            gaussian_init_(self.encoder, encoder_init_std)

    def draw_puzzles(
        self, generators: list[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each sample's random choices, drawn in this order from its generator.

        Returns:
            label [N] long: index of the permutation in ``self.permutations``;
            corners [N, 9, 3, 2] long: (row, column) in the crop of the top-left pixel of each tile's
                colour channel (grid raster order), inside the tile's cell;
            grey [N, 9] bool: tiles to make grey.
        """
        margin = self.cell - self.tile  # free play of a tile inside its cell
        jitter = self.channel_jitter
        labels, corners, grey = [], [], []
        for g in generators:
            labels.append(torch.randint(len(self.permutations), (), generator=g))
            offset = torch.randint(0, margin + 1, (TILES, 1, 2), generator=g)  # [9, 1, 2] (row, col)
            shift = torch.randint(-jitter, jitter + 1, (TILES, 3, 2), generator=g)  # [9, 3, 2] per channel
            corners.append((offset + shift).clamp(0, margin))  # [9, 3, 2], inside the cell
            grey.append(torch.rand(TILES, generator=g) < self.grayscale_prob)  # [9]
        cell_row, cell_col = torch.meshgrid(torch.arange(GRID), torch.arange(GRID), indexing="ij")
        cell_corner = torch.stack([cell_row, cell_col], -1).view(TILES, 1, 2) * self.cell + self.origin
        return torch.stack(labels), torch.stack(corners) + cell_corner, torch.stack(grey)

    def puzzle(
        self, image: torch.Tensor, generators: list[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The tiles of each crop in grid order, ready for the trunk, and the permutation to apply.

        Args:
            image: [N, 3, S, S] normalised crops.
            generators: one per sample (``per_sample_generators``), read by ``draw_puzzles``.

        Returns:
            tiles [N, 9, 3, T, T] (raster order of the grid, each normalised), label [N] long.
        """
        label, corners, grey = self.draw_puzzles(generators)
        tiles = cut_tiles(image, corners, self.tile)  # [N, 9, 3, t, t]
        rgb = denormalize(tiles)  # [0, 1]: grey as a viewer sees it (the tile norm below is per channel)
        luma = torch.tensordot(torch.tensor(LUMA, device=rgb.device, dtype=rgb.dtype), rgb, dims=([0], [2]))
        grey_tile = grey.to(image.device)[:, :, None, None, None]  # [N, 9, 1, 1, 1]
        rgb = torch.where(grey_tile, luma[:, :, None], rgb)  # luma: [N, 9, t, t] → [N, 9, 1, t, t]
        size = (self.tile_input_size, self.tile_input_size)
        resized = F.interpolate(rgb.flatten(0, 1), size=size, mode="bilinear", align_corners=False)
        tiles = normalize_tiles(resized).unflatten(0, (len(generators), TILES))  # [N, 9, 3, T, T]
        return tiles, label.to(image.device)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        generators = per_sample_generators(batch["sample_seed"])
        tiles, label = self.puzzle(batch["image"], generators)  # [N, 9, 3, T, T], [N]
        shuffled = shuffle_tiles(tiles, self.permutations[label])  # position i: tile permutation[label][i]
        n = shuffled.shape[0]
        z = self.encoder(shuffled.flatten(0, 1))  # [N·9, 256, s, s]
        z = self.relu(self.fc6(z.flatten(1))).view(n, -1)  # [N, 9·fc6]: tiles in their shuffled order
        if self.training and self.dropout > 0:
            z = per_sample_dropout(z, generators, self.dropout)
        z = self.relu(self.fc7(z))  # [N, fc7]
        if self.training and self.dropout > 0:
            z = per_sample_dropout(z, generators, self.dropout)
        logits = self.fc8(z).float()  # [N, P]
        loss = F.cross_entropy(logits, label)
        accuracy = (logits.detach().argmax(1) == label).float().mean()
        return {"loss": loss, "accuracy": accuracy}
