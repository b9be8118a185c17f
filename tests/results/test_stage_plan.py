"""The stage planner: the same inputs give the same key, a changed recipe value a new one; nothing runs."""

from __future__ import annotations

from pathlib import Path

from ssl_bench.recipes import config_hash
from ssl_bench.records import manifest_hash
from ssl_bench.results.code_version import code_version
from ssl_bench.results.stage_plan import EVAL_ENTRY, FIGURE_ENTRY, PRETRAIN_ENTRY, StagePlanner, stage_key
from ssl_bench.results.stages import ReproduceOptions
from tests.results import fakes  # noqa: F401 - registers the fake-cls task

RANDOM = "method: random\nmodel: {encoder: caffenet, std: 0.01}\ndata: {image_size: 99}\ntrain: {}\n"


def planner(tmp_path: Path, **kw) -> StagePlanner:
    """A fresh planner (no manifest cache) over recipe files in ``tmp_path/recipes``."""
    recipes, voc = tmp_path / "recipes", tmp_path / "voc"
    voc.mkdir(exist_ok=True)
    (voc / "image.jpg").write_bytes(b"not really an image")
    options = ReproduceOptions(
        out=tmp_path / "results",
        data_voc={"": voc},
        pretrain_recipes={"random": recipes / "random.yaml"},
        eval_recipes={"fake-cls": recipes / "fake-cls.yaml"},
        **kw,
    )
    return StagePlanner(options)


def write_recipes(tmp_path: Path, random: str = RANDOM, fake_cls: str = "offset: 0.0\n") -> None:
    (tmp_path / "recipes").mkdir(exist_ok=True)
    (tmp_path / "recipes" / "random.yaml").write_text(random)
    (tmp_path / "recipes" / "fake-cls.yaml").write_text(fake_cls)


def keys(plan: StagePlanner) -> dict[str, str]:
    pretrain = stage_key(plan.pretrain_inputs("random", 0))
    return {
        "pretrain": pretrain,
        "eval": stage_key(plan.eval_inputs("fake-cls", "random", 0, "ab" * 32, pretrain)),
        "figure": stage_key(plan.figure_inputs("loss_curves", {"runs": {"random": pretrain}})),
    }


def test_same_inputs_give_the_same_keys_and_nothing_runs(tmp_path):
    write_recipes(tmp_path)
    first, again = keys(planner(tmp_path)), keys(planner(tmp_path))
    assert first == again and len(set(first.values())) == 3
    assert not (tmp_path / "results").exists()  # planning writes no stage output, marker or record


def test_the_keys_hash_the_same_dictionaries_as_before(tmp_path):
    """The key inputs as the reproduction hashed them before the planner existed: a finished reproduction
    stays cached across the refactor (changing these dictionaries reruns every stage of that kind)."""
    write_recipes(tmp_path)
    plan = planner(tmp_path)
    config = {"method": "random", "model": {"encoder": "caffenet", "std": 0.01}, "data": {"image_size": 99},
              "train": {}, "seed": 0}  # fmt: skip
    pretrain = config_hash({
        "stage": "pretrain", "config": config,
        "code": code_version([PRETRAIN_ENTRY, "ssl_bench.methods.random_init"]), "data_manifest": None,
    })  # fmt: skip
    assert stage_key(plan.pretrain_inputs("random", 0)) == pretrain
    eval_inputs = plan.eval_inputs("fake-cls", "random", 1, "ab" * 32, pretrain)
    assert stage_key(eval_inputs) == config_hash({
        "stage": "eval", "task": "fake-cls", "method": "random", "seed": 1, "arch": "caffenet",
        "recipe": {"offset": 0.0}, "code": code_version([EVAL_ENTRY]),
        "data_manifest": manifest_hash(tmp_path / "voc"), "weights_sha256": "ab" * 32,
        "pretrain_key": pretrain,
    })  # fmt: skip
    inputs = {"runs": {"random": pretrain}}
    assert stage_key(plan.figure_inputs("loss_curves", inputs)) == config_hash(
        {"figure": "loss_curves", "inputs": inputs, "code": code_version([FIGURE_ENTRY])}
    )


def test_a_changed_recipe_value_changes_only_the_keys_that_depend_on_it(tmp_path):
    write_recipes(tmp_path)
    before = keys(planner(tmp_path))

    write_recipes(tmp_path, fake_cls="offset: 0.1\n")
    after = keys(planner(tmp_path))
    assert after["eval"] != before["eval"] and after["pretrain"] == before["pretrain"]

    write_recipes(tmp_path, random=RANDOM.replace("0.01", "0.02"))
    after = keys(planner(tmp_path))
    assert after["pretrain"] != before["pretrain"] and after["eval"] != before["eval"]  # eval hashes it
    assert after["figure"] != before["figure"]


def test_overrides_and_seed_change_the_pretraining_key(tmp_path):
    write_recipes(tmp_path)
    base = stage_key(planner(tmp_path).pretrain_inputs("random", 0))
    assert stage_key(planner(tmp_path).pretrain_inputs("random", 1)) != base
    overridden = planner(tmp_path, pretrain_overrides={"random": {"model": {"std": 0.02}}})
    assert stage_key(overridden.pretrain_inputs("random", 0)) != base
