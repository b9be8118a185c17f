import pytest
import torch

from ssl_bench.encoders import create_encoder, load_encoder, pool5_size
from ssl_bench.errors import CheckpointError, RecipeError

CAFFENET_SHAPES = [(96, 3, 11, 11), (256, 48, 5, 5), (384, 256, 3, 3), (384, 192, 3, 3), (256, 192, 3, 3)]


def test_pool5_is_256x6x6_at_227():
    enc = create_encoder("caffenet")
    out = enc(torch.zeros(2, 3, 227, 227))
    assert out.shape == (2, 256, 6, 6)
    assert out[0].numel() == 9216
    assert pool5_size(227) == 6


def test_caffenet_conv_shapes_and_groups():
    enc = create_encoder("caffenet")
    assert [tuple(c.weight.shape) for c in enc.conv_layers()] == CAFFENET_SHAPES
    assert [c.groups for c in enc.conv_layers()] == [1, 2, 1, 2, 2]
    lrn = enc.lrn  # Krizhevsky et al.'s constants (the function itself: the ChannelLRN test below)
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 1.0)


def test_taps_return_named_maps_with_expected_shapes():
    enc = create_encoder("caffenet").eval()
    taps = enc(torch.randn(1, 3, 227, 227), taps=enc.taps)
    assert {k: tuple(v.shape[1:]) for k, v in taps.items()} == {
        "conv1": (96, 55, 55),
        "pool1": (96, 27, 27),
        "conv2": (256, 27, 27),
        "pool2": (256, 13, 13),
        "conv3": (384, 13, 13),
        "conv4": (384, 13, 13),
        "conv5": (256, 13, 13),
        "pool5": (256, 6, 6),
    }
    with pytest.raises(KeyError, match="fc6"):
        enc(torch.randn(1, 3, 227, 227), taps=("fc6",))


def test_tap_pool5_equals_plain_forward():
    enc = create_encoder("caffenet").eval()
    x = torch.randn(2, 3, 227, 227)
    assert torch.equal(enc(x), enc(x, taps=("pool5",))["pool5"])


def test_batch_norm_variant_and_torchvision_variant_build():
    bn = create_encoder("caffenet_bn")
    assert "bn3.running_mean" in bn.state_dict()
    tv = create_encoder("torchvision_alexnet")
    assert tv(torch.zeros(1, 3, 227, 227)).shape == (1, 256, 6, 6)


def test_unknown_encoder_fails_loudly():
    with pytest.raises(RecipeError, match="registered: caffenet"):
        create_encoder("vgg99")


def test_load_encoder_round_trip_weights_only(tmp_path):
    enc = create_encoder("caffenet")
    torch.save(enc.state_dict(), tmp_path / "encoder.pt")
    loaded = load_encoder(tmp_path / "encoder.pt")
    for k, v in enc.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


def test_load_encoder_names_missing_and_unexpected_keys(tmp_path):
    state = create_encoder("caffenet").state_dict()
    state.pop("conv5.weight")
    state["fc6.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        load_encoder(tmp_path / "bad.pt")
    assert "missing keys: conv5.weight" in str(err.value)
    assert "unexpected keys: fc6.weight" in str(err.value)
    assert "bad.pt" in str(err.value)


def test_load_encoder_rejects_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"conv1.weight": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused, it would run or build the Python object print") as e:
        load_encoder(tmp_path / "evil.pt")
    assert "weights_only" not in str(e.value)


def test_load_torchvision_alexnet_state_dict(tmp_path):
    from torchvision.models import alexnet

    torch.save(alexnet(weights=None).state_dict(), tmp_path / "tv.pt")
    enc = load_encoder(tmp_path / "tv.pt", arch="torchvision_alexnet")
    assert enc(torch.zeros(1, 3, 227, 227)).shape == (1, 256, 6, 6)


def test_random_weights_are_gaussian():
    enc = load_encoder("random")
    w = enc.conv3.weight
    assert abs(w.std().item() - 0.01) < 1e-3 and enc.conv3.bias.abs().max() == 0


@pytest.mark.parametrize("size", [2, 3, 4, 5])
def test_channel_lrn_computes_torchs_local_response_norm(size):
    """The fast LRN computes nn.LocalResponseNorm (window, edges, constants), gradients included."""
    from ssl_bench.encoders.alexnet import ChannelLRN

    g = torch.Generator().manual_seed(size)
    x = (torch.randn(3, 96, 9, 9, generator=g, dtype=torch.float64) * 20).requires_grad_()
    ref, fast = torch.nn.LocalResponseNorm(size, 1e-2, 0.75, 2.0), ChannelLRN(size, 1e-2, 0.75, 2.0)
    torch.testing.assert_close(fast(x), ref(x), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(fast, (x[:1, :8, :3, :3].detach().requires_grad_(),))
    xl = x.detach().float().contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast(xl), ref(xl), rtol=1e-5, atol=1e-6)
    assert list(fast.state_dict()) == []  # nothing new in encoder.pt


@pytest.mark.parametrize("size", [4, 5])
def test_channel_lrn_hand_written_backward_matches_autograd(size):
    """ChannelLRN's backward (its own autograd function) gives torch's LocalResponseNorm gradient, in float64
    and in channels-last float32, and tracks it within bf16 rounding under CPU autocast."""
    from ssl_bench.encoders.alexnet import ChannelLRN

    g = torch.Generator().manual_seed(size)
    x = torch.randn(2, 16, 7, 7, generator=g, dtype=torch.float64).relu() * 30
    upstream = torch.randn(x.shape, generator=g, dtype=torch.float64)
    ref, fast = torch.nn.LocalResponseNorm(size, 1e-4, 0.75, 1.0), ChannelLRN(size, 1e-4, 0.75, 1.0)

    def grad_of(layer, x, up, autocast=False):
        x = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            y = layer(x)
        y.backward(up.to(y.dtype))
        return x.grad

    torch.testing.assert_close(grad_of(fast, x, upstream), grad_of(ref, x, upstream), rtol=1e-12, atol=1e-12)
    xl, ul = (t.float().contiguous(memory_format=torch.channels_last) for t in (x, upstream))
    torch.testing.assert_close(grad_of(fast, xl, ul), grad_of(ref, xl, ul), rtol=1e-5, atol=1e-5)
    reference = grad_of(ref, x, upstream).float()
    bf16 = grad_of(fast, x.float(), upstream.float(), autocast=True).float()
    assert (bf16 - reference).abs().max() <= 0.02 * reference.abs().max()
