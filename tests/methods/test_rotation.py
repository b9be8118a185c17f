from itertools import repeat

import pytest
import torch
import torch.nn.functional as F

from ssl_bench.methods import create_method
from ssl_bench.methods.rotation import all_rotations
from tests.methods.steps import take_steps

SIZE = 67  # the smallest CaffeNet input: pool5 1×1, fast


def _upright_batch(n=4, size=SIZE, seed=0):
    """Noisy images with a dark "ground" at the bottom: their rotation is visible, as in SynthVOC."""
    g = torch.Generator().manual_seed(seed)
    image = 0.3 * torch.randn(n, 3, size, size, generator=g)
    image[:, :, size // 2 :] -= 1.0
    return {"image": image, "index": torch.arange(n), "sample_seed": torch.arange(n) + 100}


def test_input_k_is_the_image_turned_k_quarter_turns_counter_clockwise_with_label_k():
    images = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)  # no symmetry at all
    inputs, labels = all_rotations(images)
    assert inputs.shape == (8, 3, 5, 5)
    assert labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    for i in range(2):
        for k in range(4):
            assert torch.equal(inputs[4 * i + k], torch.rot90(images[i], k, dims=(1, 2)))
    # Counter-clockwise as seen on screen: label 1 brings the top-right pixel to the top-left corner.
    assert inputs[1, 0, 0, 0] == images[0, 0, 0, -1]
    assert torch.equal(inputs[2], images[0].flip(1, 2))  # 180°: upside down and mirrored
    assert torch.equal(inputs[3], images[0].transpose(1, 2).flip(2))  # 270°: a quarter turn clockwise


def test_the_method_classifies_exactly_those_inputs_against_those_labels():
    torch.manual_seed(0)
    method = create_method("rotation", image_size=SIZE, head_width=16)
    batch = _upright_batch(n=2)
    seen = {}
    method.encoder.register_forward_pre_hook(lambda m, args: seen.update(inputs=args[0]))
    method.head.register_forward_hook(lambda m, args, out: seen.update(logits=out))
    out = method(batch)
    inputs, labels = all_rotations(batch["image"])
    assert torch.equal(seen["inputs"], inputs)
    assert torch.allclose(out["loss"], F.cross_entropy(seen["logits"], labels))
    assert out["accuracy"] == (seen["logits"].argmax(1) == labels).float().mean()


def test_non_square_images_are_refused():
    with pytest.raises(ValueError, match="square"):
        all_rotations(torch.zeros(1, 3, 67, 80))


def test_a_few_steps_on_a_fixed_batch_lower_the_loss_and_raise_the_accuracy():
    torch.manual_seed(0)
    method = create_method("rotation", image_size=SIZE, head_width=64)
    batch = _upright_batch()
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-4)
    losses = [s["loss"] for s in take_steps(method, optimizer, repeat(batch, 8))]
    final = method(batch)
    assert final["loss"].item() < 0.5 * losses[0]
    assert final["accuracy"].item() > 0.5  # chance is 0.25


def _losses_of_three_steps(seed: int) -> list[float]:
    torch.manual_seed(seed)
    method = create_method("rotation", image_size=SIZE, head_width=32)
    opt = torch.optim.SGD(method.parameters(), lr=1e-3, momentum=0.9)
    return [s["loss"] for s in take_steps(method, opt, repeat(_upright_batch(), 3))]


def test_the_same_seed_gives_the_same_steps():
    assert _losses_of_three_steps(0) == _losses_of_three_steps(0)


def test_the_loss_is_per_sample_a_batch_is_the_mean_of_its_halves():
    """What makes DDP (each process a half) equal to one process (without batch norm)."""
    torch.manual_seed(0)
    method = create_method("rotation", image_size=SIZE, head_width=32)
    batch = _upright_batch(n=4)
    halves = [{k: v[:2] for k, v in batch.items()}, {k: v[2:] for k, v in batch.items()}]
    whole = method(batch)
    parts = [method(h) for h in halves]
    assert torch.allclose(whole["loss"], (parts[0]["loss"] + parts[1]["loss"]) / 2, rtol=1e-5, atol=1e-6)
    assert torch.allclose(whole["accuracy"], (parts[0]["accuracy"] + parts[1]["accuracy"]) / 2)
