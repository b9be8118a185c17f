"""The semantic-inpainting net (PAPER.md §1.1): the code's architecture, its losses, its two optimisers, a
short run on SynthVOC, and how its run folder meets the evaluators."""

from __future__ import annotations

import copy
import functools
import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.data.masks import center_mask, make_mask
from ssl_bench.data.transforms import MEAN, STD
from ssl_bench.encoders import exported_encoder_state
from ssl_bench.methods import create_method
from ssl_bench.recipes import PROFILES, find_recipe, load_yaml
from ssl_bench.runtime.performance import Performance
from ssl_bench.training.optimizers import Optimizers
from ssl_bench.training.recipe import check_recipe
from tests.conftest import TINY_SYNTH_IMAGES

TINY = {"width": 4, "bottleneck_dim": 8}  # the code's layout with few channels: fast


def _batch(n: int = 4, size: int = 32, mask: str = "center", seed: int = 0) -> dict[str, torch.Tensor]:
    """Smooth images (bilinearly upsampled 4×4 noise) with the pipeline's masks."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 3, 4, 4, generator=g)
    image = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    masks = torch.stack([make_mask(mask, size, g) for _ in range(n)])  # [N, 1, S, S]
    return {"image": image, "mask": masks}


def test_the_public_codes_net_at_128_px():
    """train.lua with nBottleneck=4000: encoder 64-64-128-256-512, a 4000-d code, the 64×64 centre, and a
    64-px DCGAN discriminator."""
    net = create_method("semantic_inpainting", image_size=128)
    assert [tuple(c.weight.shape) for c in net.encoder.conv_layers()] == [
        (64, 3, 4, 4), (64, 64, 4, 4), (128, 64, 4, 4), (256, 128, 4, 4), (512, 256, 4, 4)
    ]  # fmt: skip
    assert tuple(net.bottleneck[0].weight.shape) == (4000, 512, 4, 4)
    ups = [m for m in net.decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in ups] == [512, 256, 128, 64, 3]
    assert [tuple(c.weight.shape)[:2] for c in net.discriminator.trunk.conv_layers()] == [
        (64, 3), (128, 64), (256, 128), (512, 256)
    ]  # fmt: skip
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
    assert all(m.bias is None for m in convs)  # the code zeroes every conv bias before each forward
    net.eval()
    batch = _batch(n=2, size=128)
    assert net.predict(batch["image"]).shape == (2, 3, 64, 64)
    assert net.discriminator(torch.zeros(2, 3, 64, 64)).shape == (2,)
    assert net.encode(batch["image"], batch["mask"]).shape == (2, 4000)
    assert [g.name for g in net.optimizer_groups()] == ["discriminator", "generator"]  # D steps first


def test_the_ring_weighs_ten_times_the_hole_and_the_hole_is_the_square_without_it():
    net = create_method("semantic_inpainting", image_size=128, overlap=4, **TINY)
    weights = net.center_weights[0, 0]  # [64, 64]
    assert weights[4:60, 4:60].eq(1).all() and (weights == 10).sum() == 64 * 64 - 56 * 56
    hole = net.center_hole[0, 0]  # [128, 128]: the code's 56×56 at rows/columns 36…91
    assert hole.sum() == 56 * 56 and hole[36:92, 36:92].all()
    paper = create_method("semantic_inpainting", image_size=128, overlap=7, **TINY)
    assert paper.center_hole.sum() == 50 * 50
    region_net = create_method("semantic_inpainting", image_size=32, mask="random_region", overlap=2, **TINY)
    mask = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    mask[..., 10:20, 10:20] = True
    w = region_net.l2_weights(mask)[0, 0]
    assert w[10:20, 10:20].eq(1).all() and w[8:22, 8:22].sum() == 100 + 10 * (14 * 14 - 100)
    assert w[0].eq(1).all(), "pixels away from the hole weigh 1 (the code's useOverlapPred=0 plain MSE)"


def test_l2_only_loss_is_the_codes_weighted_mse_by_hand():
    torch.manual_seed(0)
    net = create_method("semantic_inpainting", image_size=32, adversarial_weight=0, overlap=2, **TINY)
    assert net.discriminator is None and [g.name for g in net.optimizer_groups()] == ["generator"]
    batch = _batch(n=2, size=32)
    # By hand: the inner 12×12 of the centre 16×16 filled with the fill value, the original in [-1, 1].
    visible = batch["image"].clone()
    visible[:, :, 10:22, 10:22] = net.fill.view(3, 1, 1)
    prediction = net.predict(visible)  # [2, 3, 16, 16]
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    original = (batch["image"] * std + mean).clamp(0, 1) * 2 - 1
    weights = torch.full((16, 16), 10.0)
    weights[2:14, 2:14] = 1.0
    expected = (weights * (prediction - original[:, :, 8:24, 8:24]) ** 2).sum() / (2 * 3 * 16 * 16)
    out = net(batch)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(out) == {"loss", "l2"}


def test_the_discriminator_steps_first_and_the_generator_learns_from_the_updated_one():
    """D's step: its loss on the original and the (detached) prediction, at 0.1× the lr; G's step: a fresh
    forward through the updated D. Each optimiser gets its own loss's gradient only."""
    torch.manual_seed(0)
    net = create_method("semantic_inpainting", image_size=32, adversarial_weight=0.5, **TINY)
    twin = copy.deepcopy(net)
    batch = _batch(size=32)
    optimizers = Optimizers(net, lambda p: torch.optim.SGD(p, lr=0.1))
    optimizers.set_lr(0.1)
    assert [o.param_groups[0]["lr"] for o in optimizers.optimizers] == [pytest.approx(0.01), 0.1]
    output = optimizers.step(net, batch)
    # By hand on the twin: D's gradient and SGD step, then G's gradient with the updated D.
    d_params, g_params = (g.params for g in twin.optimizer_groups())
    d_grads = torch.autograd.grad(twin(batch, group="discriminator")["loss_discriminator"], d_params)
    before = torch.autograd.grad(twin(batch, group="generator")["loss"], g_params)  # D not yet updated
    with torch.no_grad():
        for p, g in zip(d_params, d_grads, strict=True):
            p -= 0.01 * g
    g_grads = torch.autograd.grad(twin(batch, group="generator")["loss"], g_params)
    d_net, g_net = (g.params for g in net.optimizer_groups())
    for p, expected in zip((*d_net, *g_net), (*d_grads, *g_grads), strict=True):
        scale = expected.abs().max()
        assert scale > 0 and (p.grad - expected).abs().max() <= 1e-4 * scale  # float summation order only
    changed = any(not torch.allclose(a, b, rtol=1e-3, atol=0) for a, b in zip(g_grads, before, strict=True))
    assert changed, "D's update leaves G's gradient as it was: the test could not tell the orders apart"
    logged = {"loss_discriminator", "d_accuracy_real", "d_accuracy_fake", "loss", "l2", "adversarial"}
    assert set(output) == logged


def test_the_joint_losses_and_discriminator_accuracies_are_sane_numbers():
    torch.manual_seed(0)
    net = create_method("semantic_inpainting", image_size=32, **TINY)
    batch = _batch(size=32)
    d_out, g_out = net(batch, group="discriminator"), net(batch, group="generator")
    assert set(d_out) == {"loss_discriminator", "d_accuracy_real", "d_accuracy_fake"}
    assert set(g_out) == {"loss", "l2", "adversarial"} and set(net(batch)) == set(g_out)
    weighted_l2 = (g_out["loss"] - 0.001 * g_out["adversarial"]) / 0.999  # ring pixels weigh 10, hole 1
    assert g_out["l2"] < weighted_l2 < 10 * g_out["l2"]
    assert all(0 <= d_out[k].item() <= 1 for k in ("d_accuracy_real", "d_accuracy_fake"))
    assert 0 < d_out["loss_discriminator"].item() < 10 and math.isfinite(g_out["adversarial"].item())
    with pytest.raises(ValueError, match="no optimiser 'critic'; this net has discriminator, generator"):
        net(batch, group="critic")


def test_inpaint_fills_the_whole_hole_and_keeps_every_visible_pixel():
    """The evaluator's hole is hidden entirely (the ring too): what the net pastes does not depend on the
    original's pixels there."""
    torch.manual_seed(0)
    net = create_method("semantic_inpainting", image_size=32, **TINY).eval()
    batch = _batch(n=2, size=32)
    mask = center_mask(32).expand(2, 1, 32, 32)  # the inpaint task's hole: the 16×16 centre
    out = net.inpaint(batch["image"], mask)
    visible = ~mask.expand_as(out)
    assert torch.equal(out[visible], batch["image"][visible])
    other = torch.where(mask, torch.randn_like(batch["image"]), batch["image"])
    assert torch.equal(net.inpaint(other, mask), out)
    assert not torch.equal(out[~visible], batch["image"][~visible])


def test_region_masks_predict_the_whole_image():
    torch.manual_seed(0)
    net = create_method("semantic_inpainting", image_size=64, mask="random_region", **TINY)
    batch = _batch(n=2, size=64, mask="random_region")
    assert net.predict(batch["image"]).shape == (2, 3, 64, 64)
    assert len(net.discriminator.trunk.taps) == 4  # a 64-px DCGAN discriminator on the whole image
    out = net.eval().inpaint(batch["image"], batch["mask"])
    visible = ~batch["mask"].expand_as(out)
    assert torch.equal(out[visible], batch["image"][visible])


def test_a_fixed_seed_gives_identical_steps():
    def two_steps() -> dict[str, torch.Tensor]:
        torch.manual_seed(3)
        net = create_method("semantic_inpainting", image_size=32, **TINY)
        optimizers = Optimizers(net, lambda p: torch.optim.Adam(p, lr=2e-3, betas=(0.5, 0.999)))
        for seed in (0, 1):
            optimizers.step(net, _batch(size=32, seed=seed))
        return net.state_dict()

    a, b = two_steps(), two_steps()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_both_steps_run_under_the_runs_bf16_autocast():
    """The loop's autocast (``Performance.autocast``, bf16 on the GPU path) wraps each optimiser's forward;
    weights and losses stay float32."""

    def one_step(amp: bool) -> tuple[dict[str, torch.Tensor], torch.nn.Module]:
        torch.manual_seed(0)
        net = create_method("semantic_inpainting", image_size=32, **TINY)
        perf = Performance(amp=amp, channels_last=False, compile=False, fused_adam=False)
        optimizers = Optimizers(net, lambda p: torch.optim.Adam(p, lr=2e-3, betas=(0.5, 0.999)))
        autocast = functools.partial(perf.autocast, torch.device("cpu"))
        return optimizers.step(net, _batch(size=32), autocast), net

    (fp32, _), (bf16, net) = one_step(False), one_step(True)
    assert set(bf16) == set(fp32) and all(torch.isfinite(v).all() for v in bf16.values())
    assert bf16["loss"].dtype == bf16["loss_discriminator"].dtype == torch.float32
    for key in ("loss", "loss_discriminator"):
        assert bf16[key] != fp32[key], f"{key}: the same in bf16 as in fp32: no autocast"
        assert bf16[key].item() == pytest.approx(fp32[key].item(), rel=0.05)
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_options_the_alexnet_encoder_and_the_channel_wise_bottleneck():
    alexnet = create_method("semantic_inpainting", image_size=128, encoder="caffenet", **TINY)
    state = exported_encoder_state(alexnet.encoder, fold_bn=False)
    assert sorted(state) == sorted(f"conv{i}.{p}" for i in range(1, 6) for p in ("weight", "bias"))
    assert alexnet.eval().predict(torch.zeros(1, 3, 128, 128)).shape == (1, 3, 64, 64)
    channel_wise = create_method("semantic_inpainting", image_size=128, bottleneck="channel_wise", width=4)
    assert channel_wise.bottleneck[0].fc.weight.numel() == 32 * 4**4  # 8w maps of 4×4: (8w)·4⁴ weights
    assert channel_wise.eval().encode(torch.zeros(1, 3, 128, 128), center_mask(128)[None]).shape == (1, 512)
    for bad in ({"image_size": 99}, {"mask": "none"}, {"encoder": "vgg"}, {"adversarial_weight": 1.0},
                {"mask_options": {"area": 0.3}}, {"overlap": 40}):  # fmt: skip
        with pytest.raises(ValueError):
            create_method("semantic_inpainting", **{"image_size": 128, **TINY, **bad})


@pytest.mark.parametrize("profile", PROFILES)
def test_the_shipped_recipes_are_valid(profile):
    path = find_recipe("pretrain", profile, "semantic_inpainting")
    recipe = check_recipe(load_yaml(path), str(path))
    assert recipe.data.image_size == 128 and recipe.model["mask"] == "center"
    assert tuple(recipe.train.betas) == (0.5, 0.999)  # Adam β1 = 0.5, as the code


# ------------------------------------------------------------------------------------------------------
# A short run on SynthVOC, as a user runs it

SMALL_RUN = ["--set", "model.width=8", "--set", "model.bottleneck_dim=64", "--batch-size", "8", "--workers",
             "0", "--no-progress", "--set", f"data.synth_images={TINY_SYNTH_IMAGES}"]  # fmt: skip


@pytest.fixture(scope="module")
def smoke_run(synth_cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("semantic") / "run"
    args = ["pretrain", "--method", "semantic_inpainting", "--profile", "smoke", "--steps", "12", *SMALL_RUN]
    assert main([*args, "--set", "train.log_every=1", "--sample-every", "12", "--out", str(out)]) == 0
    return out


def test_smoke_recipe_trains_both_networks_without_collapse(smoke_run):
    rows = [json.loads(x) for x in (smoke_run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 13))
    for key in ("loss", "l2", "adversarial", "loss_discriminator"):
        assert all(math.isfinite(r[key]) and r[key] >= 0 for r in steps), key
    assert all(r["lr"] == 0.002 for r in steps)
    perfect = [r["d_accuracy_real"] == 1 and r["d_accuracy_fake"] == 1 for r in steps]
    assert not all(perfect), "the discriminator is right on every image at every step: it has collapsed"
    assert any(r["d_accuracy_fake"] < 1 or r["d_accuracy_real"] < 1 for r in steps[-4:])
    grid = [r for r in rows if "sample_psnr_db" in r]
    assert len(grid) == 1 and (smoke_run / "samples" / "step_000012.png").is_file()
    state = torch.load(smoke_run / "checkpoint.pt", weights_only=True)
    assert sorted(state["optimizer"]) == ["discriminator", "generator"]
    assert state["optimizer"]["discriminator"]["param_groups"][0]["lr"] == pytest.approx(2e-4)


def test_a_dcgan_encoder_pt_is_refused_by_the_caffenet_evaluators(smoke_run, tmp_path, capsys):
    """encoder.pt is the DCGAN encoder's (conv1…conv5, BN); a CaffeNet evaluator names the mismatch."""
    weights = str(smoke_run / "encoder.pt")
    code = main(["eval", "--task", "knn", "--weights", weights, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "do not fit CaffeNetEncoder" in err and "shape mismatches: conv1.weight" in err
    assert not (tmp_path / "r").exists()


def test_the_inpaint_evaluator_rebuilds_the_run_with_its_decoder(smoke_run):
    from ssl_bench.evaluators.inpainting import load_inpainting_model

    method, config = load_inpainting_model(SimpleNamespace(weights=str(smoke_run / "encoder.pt")))
    assert config["method"] == "semantic_inpainting" and not method.training
    image = torch.randn(2, 3, 128, 128)
    mask = center_mask(128).expand(2, 1, 128, 128)
    out = method.inpaint(image, mask)
    assert torch.equal(out[~mask.expand_as(out)], image[~mask.expand_as(image)])


def test_bench_eval_inpaint_evaluates_the_run_itself(smoke_run, synth_voc_root, tmp_path, capsys):
    """The inpaint task rebuilds the run (DCGAN encoder, decoder): --arch's CaffeNet is never asked to hold
    its encoder.pt, and the record has the network's row beside every baseline's."""
    args = ["eval", "--task", "inpaint", "--data", str(synth_voc_root), "--no-progress", "--out",
            str(tmp_path / "records"), "--set", "workers=0", "--set", "max_test_images=4"]  # fmt: skip
    code = main([*args, "--weights", str(smoke_run / "encoder.pt")])
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, record.get("error")
    rows = ("", "nn_", "nn_hog_", "telea_", "ns_", "biharmonic_", "fill_")  # the network, then the baselines
    metrics = ("l1_pct", "l2_pct", "psnr_db", "sharpness")
    assert set(record["metrics"]) == {f"{row}{m}" for row in rows for m in metrics}
    assert math.isfinite(record["metrics"]["psnr_db"]) and record["metrics"]["psnr_db"] > 0
    extra = record["extra"]
    assert extra["model"] == "semantic_inpainting (12 steps)" and extra["image_size"] == 128
    broken = tmp_path / "broken"
    shutil.copytree(smoke_run, broken)
    state = torch.load(broken / "checkpoint.pt", weights_only=True)
    state["model"].pop("decoder.0.weight")
    torch.save(state, broken / "checkpoint.pt")
    code = main([*args, "--weights", str(broken / "encoder.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "decoder.0.weight" in err, err


@pytest.mark.parametrize("profile", ["smoke", "mini", "paper"])
def test_the_l2_only_twin_recipe_differs_only_in_the_adversarial_loss(profile):
    """semantic_inpainting_l2 is the joint net's comparison net: same generator, data and budget."""
    joint = load_yaml(find_recipe("pretrain", profile, "semantic_inpainting"))
    twin = load_yaml(find_recipe("pretrain", profile, "semantic_inpainting_l2"))
    assert twin["method"] == "semantic_inpainting_l2" and twin["model"]["adversarial_weight"] == 0
    for recipe in (joint, twin):
        recipe.pop("method")
        recipe["model"].pop("adversarial_weight")
    assert twin == joint


def test_the_l2_only_twin_has_no_discriminator_and_refuses_an_adversarial_loss():
    twin = create_method("semantic_inpainting_l2", width=8, bottleneck_dim=16)
    assert twin.discriminator is None and [g.name for g in twin.optimizer_groups()] == ["generator"]
    with pytest.raises(ValueError, match="semantic_inpainting_l2 is the L2-only net"):
        create_method("semantic_inpainting_l2", adversarial_weight=0.001)


def test_layer_redraw_hook_covers_every_conv_and_draws_from_the_codes_init():
    """Layer re-randomisation's hooks: the encoder's convs, the code, the decoder's up-convs; N(0, 0.02²)."""
    torch.manual_seed(0)
    net = create_method("semantic_inpainting", image_size=32, **TINY)
    layers = net.inpainting_layers()
    assert list(layers) == ["conv1", "conv2", "conv3", "bottleneck", "deconv1", "deconv2", "deconv3"]
    assert layers["bottleneck"] is net.bottleneck[0] and layers["deconv3"].out_channels == 3
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.redraw_(layers["deconv1"], torch.Generator().manual_seed(5))
    weight = layers["deconv1"].weight
    assert torch.equal(weight, torch.randn(weight.shape, generator=torch.Generator().manual_seed(5)) * 0.02)
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"decoder.0.weight"}  # deconv1 is the head, the decoder's first module; nothing else
