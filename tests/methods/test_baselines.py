import torch

from ssl_bench.methods import create_method
from ssl_bench.methods.datainit import _pre_activations


def test_datainit_gives_unit_variance_pre_activations_on_its_images():
    torch.manual_seed(0)
    method = create_method("datainit", image_size=99, num_images=16, between_layer_iterations=0)
    images = torch.rand(16, 3, 99, 99) * 4 - 2
    method.prepare([{"image": images}])
    enc = method.encoder.eval()
    for conv in enc.conv_layers():
        pre = _pre_activations(enc, conv, images) - conv.bias.view(1, -1, 1, 1)
        std = pre.transpose(0, 1).flatten(1).std(dim=1)
        assert torch.allclose(std, torch.ones_like(std), atol=1e-3), conv
        assert torch.allclose(conv.bias, torch.full_like(conv.bias, 0.1))


def test_datainit_between_layer_stage_reduces_ratio_spread():
    torch.manual_seed(0)
    method = create_method("datainit", image_size=99, num_images=16, between_layer_iterations=8)
    method.prepare([{"image": torch.randn(16, 3, 99, 99)}])
    assert method.spreads[-1] < method.spreads[0]


def test_supervised_handles_class_indices_and_multi_hot():
    torch.manual_seed(0)
    sup = create_method("supervised", num_classes=5, image_size=99, head_width=32)
    x = torch.randn(4, 3, 99, 99)
    assert sup({"image": x, "label": torch.tensor([0, 1, 2, 4])})["loss"].ndim == 0
    assert sup({"image": x, "label": torch.eye(5)[:4]})["loss"].ndim == 0


def test_random_baseline_has_no_training():
    method = create_method("random")
    assert method.trains is False and method.needs_data is False
