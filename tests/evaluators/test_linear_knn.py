"""Frozen-feature evaluators: the linear SVM probe (``cls-linear``) and weighted kNN (``knn``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import ssl_bench.evaluators.features as features
from ssl_bench.encoders import create_encoder
from ssl_bench.evaluators.features import tap_features
from ssl_bench.evaluators.knn import knn_scores
from ssl_bench.evaluators.linear import choose_costs, svm_scores
from ssl_bench.metrics import mean_ap, voc_classification_ap
from tests.evaluators.test_classification import check_classification_record, refused, run_eval

# 99-px centre crops of the session's tiny SynthVOC (tests/conftest.py): pool5 is 256×2×2.
TINY_FEATURES = ["image_size=99", "workers=0", "batch_size=16"]
TINY_LINEAR = [*TINY_FEATURES, "costs=[0.01, 1.0]"]
TINY = {"cls-linear": TINY_LINEAR, "knn": TINY_FEATURES}


def brute_force_knn(train: np.ndarray, labels: np.ndarray, test: np.ndarray, k: int, weight) -> np.ndarray:
    """The definition in numpy: cosine similarities, top k, weighted votes of the labels present."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    scores = np.zeros((len(test), labels.shape[1]))
    for m, row in enumerate(test @ train.T):
        for j in np.argsort(-row)[:k]:
            scores[m] += weight(row[j]) * (labels[j] == 1)
    return scores


@pytest.mark.parametrize("weighting", ["exp", "plain"])
def test_knn_matches_brute_force(weighting: str) -> None:
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(200, 32)), rng.normal(size=(25, 32))
    labels = rng.choice([-1, 0, 1], size=(200, 20), p=[0.8, 0.05, 0.15]).astype(np.int8)
    weight = (lambda s: np.exp(s / 0.07)) if weighting == "exp" else (lambda s: s)
    got = knn_scores(train, labels, test, k=10, temperature=0.07, weighting=weighting)
    np.testing.assert_allclose(got, brute_force_knn(train, labels, test, 10, weight), rtol=1e-4, atol=1e-6)


def test_knn_on_clustered_features_is_perfect() -> None:
    # two well-separated clusters, one per class: every test image's neighbours share its label
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(2, 16)) * 10
    cluster = np.repeat([0, 1], 30)
    train = centres[cluster] + rng.normal(size=(60, 16))
    test = centres[cluster[::3]] + rng.normal(size=(20, 16))
    labels = -np.ones((60, 20), dtype=np.int8)
    labels[cluster == 0, 0] = labels[cluster == 1, 1] = 1
    test_labels = -np.ones((20, 20), dtype=np.int8)
    test_labels[cluster[::3] == 0, 0] = test_labels[cluster[::3] == 1, 1] = 1
    ap = voc_classification_ap(knn_scores(train, labels, test, k=5), test_labels, "area")
    assert mean_ap(ap) == 1.0


def test_svm_separates_separable_classes() -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice([-1, 1], size=(80, 20)).astype(np.int8)
    x = labels.astype(float) + 0.3 * rng.normal(size=(80, 20))  # dimension c says class c
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    scores, untrained = svm_scores(
        x[:40], labels[:40], x[40:], np.ones(20), difficult_as_negative=False, max_iter=2000
    )
    assert not untrained
    assert mean_ap(voc_classification_ap(scores, labels[40:], "area")) > 0.95


def test_cost_choice_takes_the_best_and_falls_back_to_the_middle() -> None:
    ap = np.array([[0.5, 0.7, 0.7], [np.nan, np.nan, np.nan], [0.9, np.nan, 0.1]])
    assert choose_costs(ap, (0.1, 1.0, 10.0)).tolist() == [1.0, 1.0, 0.1]


def test_big_taps_are_pooled_to_the_dimension_bound() -> None:
    encoder = create_encoder("caffenet").eval()
    x = torch.randn(2, 3, 99, 99)
    with torch.no_grad():
        assert tap_features(encoder, x, "pool5", 9216).shape == (2, 256 * 2 * 2)  # fits: kept as is
        conv3 = tap_features(encoder, x, "conv3", 9216)  # 384×5×5 = 9600 > 9216 → 384×4×4
    assert conv3.shape == (2, 384 * 4 * 4)


# ---------------------------------------------------------------------------------------- end to end


def test_linear_probe_end_to_end(synth_voc_root: Path, tmp_path: Path) -> None:
    code, record = run_eval("cls-linear", "random", synth_voc_root, tmp_path, TINY_LINEAR)
    assert code == 0
    check_classification_record(record, "area")
    extra = record["extra"]
    assert extra["layer"] == "pool5" and extra["feature_dim"] == 1024 and extra["trunk_frozen"]
    assert set(extra["chosen_costs"].values()) <= {0.01, 1.0}


def test_linear_probe_chooses_costs_on_val(synth_voc_root: Path, tmp_path: Path) -> None:
    code, record = run_eval(
        "cls-linear", "random", synth_voc_root, tmp_path, [*TINY_LINEAR, "cost_selection=val", "layer=conv5"]
    )
    assert code == 0
    check_classification_record(record, "area")
    assert record["extra"]["cost_selection"] == "val" and record["extra"]["layer"] == "conv5"


def test_knn_end_to_end(synth_voc_root: Path, tmp_path: Path) -> None:
    code, record = run_eval("knn", "random", synth_voc_root, tmp_path, [*TINY_FEATURES, "k=5"])
    assert code == 0
    check_classification_record(record, "area")
    assert record["extra"]["k"] == 5 and record["extra"]["trunk_frozen"]


@pytest.mark.parametrize("task", ["cls-linear", "knn"])
@pytest.mark.parametrize("tamper", ["weights", "train_mode"])
def test_frozen_trunk_check_fires(
    task: str, tamper: str, synth_voc_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = features.tap_features

    def tampering(encoder: torch.nn.Module, x: torch.Tensor, layer: str, max_dim: int) -> torch.Tensor:
        if tamper == "weights":
            with torch.no_grad():
                encoder.conv5.bias.add_(1e-3)
        else:
            encoder.train()
        return original(encoder, x, layer, max_dim)

    monkeypatch.setattr(features, "tap_features", tampering)
    code, record = run_eval(task, "random", synth_voc_root, tmp_path, TINY[task])
    assert code == 1 and record["status"] == "error"
    expected = (
        "frozen trunk changed during evaluation: conv5.bias" if tamper == "weights" else "left eval() mode"
    )
    assert record["error"].startswith("AssertionError") and expected in record["error"]


@pytest.mark.parametrize("task", ["cls-linear", "knn"])
def test_refuses_overlapping_train_and_test(task: str, synth_voc_root: Path, tmp_path: Path) -> None:
    code, record = run_eval(task, "random", synth_voc_root, tmp_path, [*TINY[task], "test_split=train"])
    assert code == 2 and "also in the training list" in record["error"]


def test_linear_probe_refuses_weights_with_wrong_keys(synth_voc_root: Path, tmp_path: Path, capsys) -> None:
    state = create_encoder("caffenet").state_dict()
    del state["conv3.bias"]
    torch.save(state, tmp_path / "encoder.pt")
    weights, out = tmp_path / "encoder.pt", tmp_path / "runs"
    err = refused("cls-linear", weights, synth_voc_root, out, TINY_LINEAR, capsys)
    assert "missing keys: conv3.bias" in err


def test_image_features_are_the_taps_of_the_frozen_encoder() -> None:
    """The t-SNE figure's entry point: in-memory images, any batch size, the same numbers as a direct pass."""
    torch.manual_seed(0)
    encoder = create_encoder("caffenet").train()
    x = torch.randn(5, 3, 99, 99)
    got = features.image_features(encoder, x, "pool5", batch_size=2)
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    with torch.no_grad():
        expected = encoder(x).flatten(1).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
