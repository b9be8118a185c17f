"""Jigsaw puzzles (Noroozi & Favaro 2016): tiles, permutations, labels, learning, seeds, per-sample loss."""

from __future__ import annotations

import itertools
import math
from itertools import repeat

import pytest
import torch

from ssl_bench.methods import create_method
from ssl_bench.methods.base import per_sample_generators
from ssl_bench.methods.jigsaw import (
    cut_tiles,
    hamming_distances,
    max_hamming_permutations,
    shuffle_tiles,
)
from tests.methods.steps import take_steps

# Small and fast: 99-px crops (33-px cells, 28-px tiles, resized to 67 px), narrow heads.
SMALL = {"image_size": 99, "encoder": "caffenet", "fc6_width": 32, "fc7_width": 64, "num_permutations": 10}


def _batch(n: int = 4, size: int = 99, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 3, size, size, generator=g), "sample_seed": torch.arange(n) + 100 * seed}


def _off_diagonal(distances: torch.Tensor) -> torch.Tensor:
    return distances[~torch.eye(len(distances), dtype=torch.bool)]


@pytest.mark.parametrize(("size", "tile", "trunk"), [(225, 64, 128), (128, 36, 72), (99, 28, 67)])
def test_tiles_keep_the_papers_proportions_and_fit_the_caffenet_trunk(size, tile, trunk):
    method = create_method("jigsaw", **{**SMALL, "image_size": size})
    assert (method.cell, method.tile, method.tile_input_size) == (size // 3, tile, trunk)


def test_each_tile_is_cut_inside_its_own_cell():
    method = create_method("jigsaw", **SMALL)
    cell, tile = method.cell, method.tile  # 33, 28
    label, corners, grey = method.draw_puzzles(per_sample_generators(torch.arange(6)))
    assert label.shape == (6,) and corners.shape == (6, 9, 3, 2) and grey.shape == (6, 9)
    row, col = torch.div(torch.arange(9), 3, rounding_mode="floor"), torch.arange(9) % 3
    low = torch.stack([row, col], -1)[None, :, None, :] * cell  # [1, 9, 1, 2]
    assert (corners >= low).all() and (corners + tile <= low + cell).all()
    # an image whose cell k holds the value k: tile k holds only k (channels jittered, still in the cell)
    cells = torch.arange(9.0).view(1, 1, 3, 3).repeat_interleave(cell, 2).repeat_interleave(cell, 3)
    tiles = cut_tiles(cells.expand(6, 3, -1, -1), corners, tile)  # [6, 9, 3, 28, 28]
    assert torch.equal(tiles, torch.arange(9.0).view(1, 9, 1, 1, 1).expand_as(tiles))


def test_the_trunk_sees_the_tiles_shuffled_by_the_labels_permutation():
    method = create_method("jigsaw", **{**SMALL, "num_permutations": 100})
    batch = _batch()
    seen = []
    method.encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    logits = []
    method.fc8.register_forward_hook(lambda module, args, out: logits.append(out))
    loss = method(batch)["loss"]

    tiles, label = method.puzzle(batch["image"], per_sample_generators(batch["sample_seed"]))
    order = method.permutations[label]  # [4, 9]: position i shows tile order[:, i]
    shuffled = seen[0].view(tiles.shape)  # [4, 9, 3, 67, 67]
    assert torch.equal(shuffled, shuffle_tiles(tiles, order))
    assert not torch.equal(shuffled, tiles)
    # the inverse of the label's permutation puts every tile back in its cell
    assert torch.equal(shuffle_tiles(shuffled, order.argsort(1)), tiles)
    # and the loss is the cross-entropy against that label
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits[0], label))
    # every tile reaches the trunk normalised (mean 0, std 1 per channel)
    assert torch.allclose(shuffled.mean((-2, -1)), torch.zeros(4, 9, 3), atol=1e-4)
    assert torch.allclose(shuffled.std((-2, -1), unbiased=False), torch.ones(4, 9, 3), atol=1e-3)


def test_grey_tiles_have_equal_channels():
    method = create_method("jigsaw", **{**SMALL, "grayscale_prob": 0.5})
    generators = per_sample_generators(torch.arange(4))
    _, _, grey = method.draw_puzzles(generators)
    tiles, _ = method.puzzle(_batch()["image"], per_sample_generators(torch.arange(4)))
    equal_channels = (tiles[:, :, :1] == tiles).all(2)  # [4, 9, 67, 67]
    same = equal_channels.flatten(2).all(2)  # [4, 9]
    assert grey.any() and not grey.all()
    assert torch.equal(same, grey)


def _greedy_reference(first: tuple[int, ...], count: int, pieces: int, criterion: str) -> list[tuple]:
    """Algorithm 1 written plainly: add the permutation farthest from the chosen ones (first of ties)."""
    chosen = [first]
    while len(chosen) < count:
        rest = [p for p in itertools.permutations(range(pieces)) if p not in chosen]

        def spread(p: tuple[int, ...]) -> int:
            distances = [sum(a != b for a, b in zip(p, q, strict=True)) for q in chosen]
            return sum(distances) if criterion == "mean" else min(distances)

        chosen.append(max(rest, key=spread))
    return chosen


@pytest.mark.parametrize("criterion", ["mean", "min"])
def test_permutation_set_is_the_greedy_maximal_hamming_selection(criterion):
    perms = max_hamming_permutations(12, pieces=5, criterion=criterion, seed=3)
    assert perms.shape == (12, 5)
    reference = _greedy_reference(tuple(perms[0].tolist()), 12, 5, criterion)
    assert [tuple(p) for p in perms.tolist()] == reference
    assert torch.equal(perms, max_hamming_permutations(12, pieces=5, criterion=criterion, seed=3))
    assert not torch.equal(perms, max_hamming_permutations(12, pieces=5, criterion=criterion, seed=4))


def test_min_criterion_reaches_the_largest_possible_minimal_distance():
    # n permutations of n tiles can differ pairwise everywhere (a Latin square) and greedy finds it
    for pieces in (4, 9):
        perms = max_hamming_permutations(pieces, pieces=pieces, criterion="min", seed=0)
        assert _off_diagonal(hamming_distances(perms)).min() == pieces
    perms = max_hamming_permutations(30, criterion="min", seed=0)
    assert _off_diagonal(hamming_distances(perms)).min() >= 7


def test_the_papers_set_of_1000_permutations():
    perms = create_method("jigsaw", **{**SMALL, "num_permutations": 1000}).permutations  # [1000, 9]
    assert perms.shape == (1000, 9)
    assert torch.equal(perms.sort(1).values, torch.arange(9).expand(1000, 9))  # each row a permutation
    assert len({tuple(p) for p in perms.tolist()}) == 1000  # no duplicates
    distances = _off_diagonal(hamming_distances(perms))
    assert distances.min() >= 2 and distances.float().mean() >= 8.0


def _train(steps: int, seed: int = 0, **options) -> list[float]:
    torch.manual_seed(seed)
    method = create_method("jigsaw", **{**SMALL, **options})
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    return [s["loss"] for s in take_steps(method, optimizer, repeat(_batch(), steps))]


def test_loss_falls_on_a_fixed_batch():
    losses = _train(12, dropout=0.0)
    assert abs(losses[0] - math.log(10)) < 0.3  # fc8 ~ N(0, 0.01²): the puzzle starts near chance
    assert losses[-1] < 0.5 * losses[0], losses


def test_same_seed_gives_identical_steps():
    first = _train(2)
    assert _train(2) == first
    assert _train(2, seed=1) != first


def test_loss_is_per_sample_batch_equals_mean_of_halves():
    torch.manual_seed(0)
    method = create_method("jigsaw", **SMALL)  # dropout on: its masks are drawn per sample too
    batch = _batch()
    whole = method(batch)
    halves = [method({k: v[i : i + 2] for k, v in batch.items()}) for i in (0, 2)]
    assert torch.allclose(whole["loss"], (halves[0]["loss"] + halves[1]["loss"]) / 2, atol=1e-5)
    assert torch.allclose(whole["accuracy"], (halves[0]["accuracy"] + halves[1]["accuracy"]) / 2)
