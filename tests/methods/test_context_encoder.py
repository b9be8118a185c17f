import pytest
import torch

from ssl_bench.data.masks import make_mask
from ssl_bench.errors import RecipeError
from ssl_bench.methods import available_methods, create_method
from ssl_bench.methods.context_encoder import ChannelWiseFC, GroupedFC
from ssl_bench.methods.losses import masked_reconstruction_loss


def test_channel_wise_layer_has_m_n4_weights():
    layer = ChannelWiseFC(256, 6)
    assert layer.fc.weight.numel() == 256 * 6**4 == 331_776
    ce = create_method("context_encoder", image_size=227)
    assert ce.channel_fc.fc.weight.numel() == 331_776


def test_channel_wise_layer_connects_each_map_only_to_itself():
    layer = ChannelWiseFC(4, 3).eval()
    x = torch.randn(1, 4, 3, 3, requires_grad=True)
    y = layer(x)  # [1, 4, 3, 3]
    y[0, 2].sum().backward()
    grad_per_map = x.grad[0].abs().sum(dim=(1, 2))
    assert grad_per_map[2] > 0
    assert torch.all(grad_per_map[[0, 1, 3]] == 0)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
def test_grouped_fc_is_the_grouped_convolution(bias, channels_last):
    """The batched-matrix-product layer computes the authors' grouped convolution: same output, same gradients
    of input, weight and bias, same state-dict keys and shapes."""
    torch.manual_seed(0)
    layer = GroupedFC(5, 5 * 9, kernel_size=3, groups=5, bias=bias)
    conv = torch.nn.Conv2d(5, 5 * 9, kernel_size=3, groups=5, bias=bias)
    conv.load_state_dict(layer.state_dict(), strict=True)
    x = torch.randn(4, 5, 3, 3, dtype=torch.float64)
    layer, conv = layer.double(), conv.double()
    if channels_last:
        layer, conv = layer.to(memory_format=torch.channels_last), conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = layer(xa), conv(xb)
    assert ya.shape == yb.shape == (4, 45, 1, 1)
    torch.testing.assert_close(ya, yb)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(layer.weight.grad, conv.weight.grad)
    if bias:
        torch.testing.assert_close(layer.bias.grad, conv.bias.grad)


def test_grouped_fc_tracks_the_convolution_under_bf16_autocast():
    torch.manual_seed(0)
    layer = GroupedFC(8, 8 * 36, kernel_size=6, groups=8)
    x = torch.randn(4, 8, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    reference = torch.nn.functional.conv2d(x, layer.weight, layer.bias, groups=8)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), reference, rtol=2e-2, atol=2e-2)


def test_grouped_fc_names_a_wrong_input_shape():
    with pytest.raises(ValueError, match=r"GroupedFC expects \[N, 4"):
        GroupedFC(4, 4 * 9, kernel_size=3, groups=4)(torch.zeros(1, 4, 4, 4))


def test_output_covers_the_input_image():
    ce = create_method("context_encoder", image_size=227).eval()
    out = ce.reconstruct(torch.zeros(1, 3, 227, 227))
    assert out.shape == (1, 3, 227, 227)


def _batch(n=4, size=99, mask="random_region", seed=0):
    """Smooth images (bilinearly upsampled 4×4 noise): the hole is predictable from its context."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 3, 4, 4, generator=g)
    image = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    masks = torch.stack([make_mask(mask, size, g) for _ in range(n)])
    return {"image": image, "mask": masks}


def test_loss_ignores_pixels_outside_the_hole():
    torch.manual_seed(0)
    ce = create_method("context_encoder", image_size=99)
    batch = _batch()
    # Visible pixels are the network's input, so change only the *target* outside the hole: the loss
    # must not see it.
    out = ce.reconstruct(batch["image"].masked_fill(batch["mask"], 0.0))
    target2 = torch.where(batch["mask"], batch["image"], torch.randn_like(batch["image"]))
    a = masked_reconstruction_loss(out, batch["image"], batch["mask"])
    b = masked_reconstruction_loss(out, target2, batch["mask"])
    assert torch.allclose(a, b)


def test_a_context_encoder_step_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    ce = create_method("context_encoder", image_size=99)
    batch = _batch(n=8)
    opt = torch.optim.Adam(ce.parameters(), lr=1e-3, betas=(0.5, 0.999))
    losses = []
    for _ in range(20):
        loss = ce(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert ce(batch)["loss"].item() < losses[0]  # one step already helps …
    assert min(losses[-5:]) < 0.8 * losses[0]  # … and a few steps help a lot


def test_inpaint_keeps_visible_pixels():
    ce = create_method("context_encoder", image_size=99).eval()
    batch = _batch(n=2)
    out = ce.inpaint(batch["image"], batch["mask"])
    visible = ~batch["mask"].expand_as(out)
    assert torch.equal(out[visible], batch["image"][visible])


def test_autoencoder_refuses_masks_and_reconstructs_everything():
    with pytest.raises(ValueError, match="no mask"):
        create_method("autoencoder", mask="center")
    ae = create_method("autoencoder", image_size=99)
    assert ae.mask_type == "none"


@pytest.mark.parametrize("name", available_methods())
def test_every_registered_method_builds_with_caffenet_encoder(name):
    options = {"image_size": 99}
    if name == "supervised":
        options["num_classes"] = 20
    if name.startswith("semantic_inpainting"):  # a DCGAN encoder by default (PAPER.md §1.1), 4·2^k px
        options.update(image_size=128, encoder="caffenet", width=8, bottleneck_dim=32)
    method = create_method(name, **options)
    assert [tuple(c.weight.shape) for c in method.encoder.conv_layers()][0] == (96, 3, 11, 11)


def test_unknown_method_and_option_fail_loudly():
    with pytest.raises(RecipeError, match="registered: autoencoder"):
        create_method("no_such_method")
    with pytest.raises(RecipeError, match="bogus"):
        create_method("context_encoder", bogus=1)


def test_layer_redraw_hook_gives_the_encoders_convs_a_fresh_he_normal_draw():
    """The hooks layer re-randomisation uses (``PretrainMethod.inpainting_layers`` / ``redraw_``)."""
    torch.manual_seed(0)
    net = create_method("context_encoder", image_size=99)
    layers = net.inpainting_layers()
    assert list(layers) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert layers["conv1"] is net.encoder.conv1
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.redraw_(layers["conv2"], torch.Generator().manual_seed(3))
    weight = net.encoder.conv2.weight  # [256, 48, 5, 5]: CaffeNet's two groups, fan-in 48·5·5
    he_std = (2.0 / (48 * 25)) ** 0.5
    expected = torch.randn(weight.shape, generator=torch.Generator().manual_seed(3)) * he_std
    assert torch.equal(weight, expected) and not net.encoder.conv2.bias.any()
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    assert "encoder.conv2.weight" in changed <= {"encoder.conv2.weight", "encoder.conv2.bias"}  # nothing else


@pytest.mark.parametrize("name", ["context_encoder", "autoencoder"])
def test_paper_recipe_drops_out_on_the_channel_wise_layer_only(name):
    """PAPER.md §1.2: dropout 0.5 on the channel-wise fully connected layer, no other dropout in the net."""
    from ssl_bench.recipes import find_recipe, load_yaml

    model_options = load_yaml(find_recipe("pretrain", "paper", name))["model"]
    net = create_method(name, image_size=99, **model_options)
    dropouts = {n: m.p for n, m in net.named_modules() if isinstance(m, torch.nn.Dropout)}
    assert dropouts == {"channel_fc.dropout": 0.5}
    x = torch.rand(2, 256, 2, 2)
    net.train()
    assert not torch.equal(net.channel_fc(x), net.channel_fc(x))  # drawn afresh while training
    net.eval()
    assert torch.equal(net.channel_fc(x), net.channel_fc(x))
