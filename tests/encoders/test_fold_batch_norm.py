"""Folding a caffenet_bn encoder's batch norms into its convs: a plain CaffeNet computing the same."""

from __future__ import annotations

import pytest
import torch

from ssl_bench.encoders import (
    CaffeNetEncoder,
    exported_encoder_state,
    fold_batch_norm,
    load_state_dict_strict,
)
from ssl_bench.errors import RecipeError


def _trained_bn_encoder() -> CaffeNetEncoder:
    torch.manual_seed(0)
    enc = CaffeNetEncoder(batch_norm=True)
    with torch.no_grad():  # statistics and affine values as after training (not the identity defaults)
        for i in range(1, 6):
            bn = getattr(enc, f"bn{i}")
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 4.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return enc.eval()


def test_folded_plain_caffenet_matches_the_bn_net_in_eval_mode() -> None:
    enc = _trained_bn_encoder()
    plain = fold_batch_norm(enc).eval()
    assert not plain.batch_norm
    x = torch.randn(2, 3, 99, 99)
    with torch.no_grad():
        want, got = enc(x), plain(x)
    # LRN (α = 1e-4) is the only difference: relative error ~1e-4, far below the features' scale
    assert torch.allclose(got, want, rtol=2e-3, atol=2e-3 * float(want.abs().max()))
    assert not torch.allclose(got, CaffeNetEncoder()(x), atol=1e-3)  # not a fresh net that happens to agree


def test_exported_state_loads_strictly_into_plain_caffenet() -> None:
    state = exported_encoder_state(_trained_bn_encoder(), fold_bn=True)
    assert not any(k.startswith("bn") for k in state)
    load_state_dict_strict(CaffeNetEncoder(), state, "folded")
    assert set(exported_encoder_state(_trained_bn_encoder(), fold_bn=False)) > set(state)


def test_folding_a_plain_encoder_is_refused() -> None:
    with pytest.raises(RecipeError, match="caffenet_bn"):
        exported_encoder_state(CaffeNetEncoder(), fold_bn=True)
    with pytest.raises(ValueError, match="caffenet_bn"):
        fold_batch_norm(CaffeNetEncoder())
