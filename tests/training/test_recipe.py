"""The typed pretraining recipe: every shipped recipe is valid, and a bad key or value is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssl_bench.errors import RecipeError
from ssl_bench.methods import PretrainMethod, available_methods, method_class
from ssl_bench.recipes import PROFILES, find_recipe, load_yaml, merge
from ssl_bench.training.recipe import (
    MIN_IMAGE_SIZE,
    Override,
    apply_overrides,
    check_recipe,
    model_options_class,
    strip_resolved,
)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("method", ["autoencoder", "context_encoder", "datainit", "random", "supervised"])
def test_every_shipped_recipe_is_valid(profile: str, method: str) -> None:
    path = find_recipe("pretrain", profile, method)
    recipe = check_recipe(load_yaml(path), str(path))
    assert recipe.method == method
    assert set(load_yaml(path).get("model") or {}) <= set(recipe.model)  # nothing dropped


@pytest.mark.parametrize("method", available_methods())
def test_model_keys_are_the_constructor_options(method: str) -> None:
    fields = set(model_options_class(method).__dataclass_fields__)
    assert "encoder" in fields and not fields & {"image_size", "num_classes"}  # those come from the data


def _smoke(**sections: dict) -> dict:
    return merge(load_yaml(find_recipe("pretrain", "smoke", "context_encoder")), sections)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train": {"lr": "abc"}}, r"lr='abc' in the train section of here is not valid: expected float"),
        ({"train": {"lrr": 1}}, r"unknown key 'lrr' .*did you mean 'lr'.*; valid keys: steps, batch_size"),
        ({"model": {"encodr": "x"}}, r"key 'encodr' .*method 'context_encoder'.*did you mean 'encoder'"),
        ({"model": {"overlap": 1.5}}, r"overlap=1.5 .* expected int"),
        ({"model": {"image_size": 99}}, r"model.image_size in here: not a model option; it comes from data"),
        ({"model": {"mask_options": {"covrage": 0.2}}}, r"mask_options.covrage'.*mean 'coverage'"),
        ({"data": {"image_size": MIN_IMAGE_SIZE - 1}}, rf"image_size={MIN_IMAGE_SIZE - 1} .* least 67"),
        ({"train": {"steps": 0}}, r"train.steps=0 in here: must be at least 1"),
        ({"train": {"checkpoint_every": -5}}, r"train.checkpoint_every=-5 .* 0 \(at the end only\)"),
        ({"bogus": {"key": 3}}, r"recipe key 'bogus' in here; valid keys: method, seed, model, data, train"),
        ({"method": "contxt_encoder"}, r"method 'contxt_encoder' in here \(did you mean 'context_encoder'"),
    ],
)  # fmt: skip
def test_a_bad_key_or_value_is_named(change: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        check_recipe(_smoke(**change), "here")


def test_overrides_are_named_by_the_flag_or_set_item_that_gave_them() -> None:
    recipe = load_yaml(find_recipe("pretrain", "smoke", "context_encoder"))
    cases = [
        (Override(("train", "steps"), -1, "--steps"), r"^--steps -1: must be at least 1$"),
        (Override(("train", "lr"), "abc", "--set train.lr=abc"), r"lr='abc' in --set train.lr=abc"),
        (Override(("bogus", "key"), 3, "--set bogus.key=3"), r"recipe section 'bogus' in --set bogus"),
        (Override(("train",), 3, "--set train=3"), r"'train' is a section"),
        (Override(("seed",), "x", "--set seed=x"), r"seed must be a whole number"),
    ]
    for override, message in cases:
        with pytest.raises(RecipeError, match=message):
            apply_overrides(recipe, [override])
    merged = apply_overrides(recipe, [Override(("model", "mask_options", "coverage"), 0.2, "--set")])
    assert merged["model"]["mask_options"] == {"coverage": 0.2} and merged["model"]["mask"] == "random_region"
    # mask options are checked against the mask the run will use, whichever --set comes first
    block = [
        Override(("model", "mask_options", "num_blocks"), 1, "--set b"),
        Override(("model", "mask"), "random_block", "--set a"),
    ]
    for overrides in (block, block[::-1]):
        merged = apply_overrides(recipe, overrides)
        assert merged["model"]["mask"] == "random_block" and merged["model"]["mask_options"] == {
            "num_blocks": 1
        }
    with pytest.raises(
        RecipeError, match=r"model.mask_options.num_blocks' in --set b for mask 'random_region'"
    ):
        apply_overrides(recipe, block[:1])


def test_a_method_needs_its_schedule() -> None:
    with pytest.raises(RecipeError, match=r"train.steps is missing in here: method 'context_encoder' needs"):
        check_recipe({"method": "context_encoder", "train": {"lr": 1e-4, "batch_size": 4}}, "here")
    check_recipe({"method": "random"}, "here")  # trains nothing, reads no data


def test_a_saved_config_reads_back_as_its_recipe(tmp_path: Path) -> None:
    config = check_recipe(_smoke(), "here").to_config()
    saved = {**config, "provenance": {"git_commit": "abc"}}
    saved["data"] = {**config["data"], "resolved_root": "/x", "num_images": 3, "num_classes": 0}
    assert strip_resolved(saved) == config
    assert check_recipe(saved, "config.yaml").to_config() == config


def test_a_plug_in_taking_any_options_is_not_second_guessed() -> None:
    class AnyOptions(PretrainMethod):
        trains = needs_data = False

        def __init__(self, **options: object) -> None:
            super().__init__()

    from ssl_bench.methods.registry import _METHODS

    _METHODS["any-options-test"] = AnyOptions
    try:
        assert model_options_class("any-options-test") is None
        assert check_recipe({"method": "any-options-test", "model": {"x": 1}}, "here").model == {"x": 1}
    finally:
        del _METHODS["any-options-test"]
        model_options_class.cache_clear()
    assert method_class("context_encoder")  # the registry is as it was


def test_every_mini_method_that_reads_data_pretrains_on_the_same_pool_and_budget():
    """Fair comparison: one pool (issue #22's 12,800 SynthVOC images), one crop budget for every table row."""
    rows = ["context_encoder", "autoencoder", "supervised", "rotation", "jigsaw", "colorization",
            "deepcluster", "relative_position"]  # fmt: skip
    recipes = [load_yaml(find_recipe("pretrain", "mini", m)) for m in rows]
    assert {r["data"]["source"] for r in recipes} == {"synthvoc"}
    assert {r["data"]["synth_pool"] for r in recipes} == {12800}
    budgets = {(r["train"]["steps"], r["train"]["batch_size"], r["data"]["image_size"]) for r in recipes}
    assert budgets == {(2000, 32, 128)}
    assert load_yaml(find_recipe("pretrain", "mini", "datainit"))["data"]["synth_pool"] == 12800
