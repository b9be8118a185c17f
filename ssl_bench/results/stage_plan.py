"""The plan of a ``bench reproduce``: where each stage's output lives and what its cache key hashes.

Nothing here runs a stage. For a stage, the planner resolves its recipe and gathers the inputs that
determine its output (see the key table in :mod:`ssl_bench.results.reproduce`); :func:`stage_key` hashes
them. The dictionaries are hashed as built here: adding, renaming or changing a field changes the key of
every stage of that kind, so a finished reproduction runs them all again. Change them only on purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssl_bench.data.synthvoc import ensure_synthvoc, synthvoc_pool
from ssl_bench.errors import RecipeError
from ssl_bench.evaluators.runner import resolve_eval_recipe
from ssl_bench.methods import method_class
from ssl_bench.recipes import config_hash, find_recipe, load_yaml, merge
from ssl_bench.records import manifest_hash
from ssl_bench.results.code_version import code_version
from ssl_bench.results.stages import ReproduceOptions

ARCH = "caffenet"

# Each kind of stage's entry module; its code version hashes every module it imports (code_version.py).
PRETRAIN_ENTRY = "ssl_bench.training.pretrain"
EVAL_ENTRY = "ssl_bench.evaluators.runner"
FIGURE_ENTRY = "ssl_bench.results.figures"

__all__ = ["ARCH", "EVAL_ENTRY", "FIGURE_ENTRY", "PRETRAIN_ENTRY", "StagePlanner", "stage_key"]


def stage_key(inputs: dict[str, Any]) -> str:
    """A stage's cache key: the SHA-256 of the inputs that determine its output."""
    return config_hash(inputs)


class StagePlanner:
    """Each stage's folder, resolved recipe and key inputs for one reproduction's options.

    Data manifests are computed once per planner (a stat walk of the folder; ImageNet takes a while).
    """

    def __init__(self, options: ReproduceOptions) -> None:
        self.options = options
        self.stages_dir = Path(options.out) / "stages"
        self._manifests: dict[str, str] = {}

    # --- where each stage leaves its output and marker ------------------------------------------------
    def pretrain_dir(self, method: str, seed: int) -> Path:
        """The pretraining stage's bench-pretrain run folder (its marker is ``stage.json`` inside)."""
        return self.stages_dir / "pretrain" / f"{method}-s{seed}"

    def eval_marker(self, task: str, method: str, seed: int) -> Path:
        return self.stages_dir / "eval" / f"{task}-{method}-s{seed}.json"

    def figure_marker(self, name: str) -> Path:
        return self.stages_dir / "figures" / f"{name}.json"

    # --- data -------------------------------------------------------------------------------------------
    def manifest(self, root: Path) -> str:
        """Manifest hash of a data folder, once per planner."""
        key = str(Path(root).resolve())
        if key not in self._manifests:
            self._manifests[key] = manifest_hash(Path(root))
        return self._manifests[key]

    def voc_root(self, task: str) -> Path | None:
        """The task's VOC root, or None for the generated SynthVOC default."""
        root = self.options.data_voc.get(task) or self.options.data_voc.get("")
        return Path(root) if root else None

    def voc_manifest(self, task: str) -> str:
        return self.manifest(self.voc_root(task) or ensure_synthvoc())

    # --- pretraining ------------------------------------------------------------------------------------
    def pretrain_config(self, method: str, seed: int) -> dict[str, Any]:
        """Recipe (the profile's, or ``pretrain_recipes[method]``), overrides, seed and data source."""
        options = self.options
        path = options.pretrain_recipes.get(method) or find_recipe("pretrain", options.profile, method)
        config = merge(load_yaml(path), dict(options.pretrain_overrides.get(method, {})))
        config.setdefault("method", method)
        if config["method"] != method:
            raise RecipeError(f"pretraining recipe {path} names method '{config['method']}', not '{method}'")
        config["seed"] = seed
        if options.data_pretrain:
            config.setdefault("data", {})["source"] = options.data_pretrain
        return config

    def pretrain_data_manifest(self, config: dict[str, Any]) -> str | None:
        """Manifest hash of the pretraining images (None for a method that reads none)."""
        if not method_class(config["method"]).needs_data:
            return None
        source = config.get("data", {}).get("source", "synthvoc")
        if source == "synthvoc":
            return self.manifest(
                synthvoc_pool(
                    ensure_synthvoc(num_images=config["data"].get("synth_images", 2000),
                                    progress=self.options.progress),
                    config["data"].get("synth_pool"),
                    progress=self.options.progress,
                )
            )
        if source is None:
            raise RecipeError(
                f"the {self.options.profile} recipe for '{config['method']}' has no data source: "
                "pass --data-pretrain DIR"
            )
        return self.manifest(Path(source))

    def pretrain_inputs(self, method: str, seed: int) -> dict[str, Any]:
        """What a pretraining stage's key hashes; ``["config"]`` is the recipe it trains with.

        Raises:
            RecipeError: the recipe is missing, names another method, or has no data source.
        """
        config = self.pretrain_config(method, seed)
        return {
            "stage": "pretrain",
            "config": config,
            "code": code_version([PRETRAIN_ENTRY, method_class(method).__module__]),
            "data_manifest": self.pretrain_data_manifest(config),
        }

    # --- evaluation -------------------------------------------------------------------------------------
    def eval_inputs(
        self, task: str, method: str, seed: int, weights_sha256: str | None, pretrain_key: str | None
    ) -> dict[str, Any]:
        """What an evaluation stage's key hashes: its recipe, code, data, and the weights it evaluates.

        Raises:
            RecipeError: no recipe for the task (the stage then runs, to record the error).
        """
        options = self.options
        recipe = resolve_eval_recipe(
            task, options.profile, options.eval_recipes.get(task), options.eval_overrides.get(task)
        )
        return {
            "stage": "eval",
            "task": task,
            "method": method,
            "seed": seed,
            "arch": ARCH,
            "recipe": recipe,
            "code": code_version([EVAL_ENTRY]),
            "data_manifest": self.voc_manifest(task),
            "weights_sha256": weights_sha256,
            "pretrain_key": pretrain_key,
        }

    # --- figures ----------------------------------------------------------------------------------------
    def figure_inputs(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """What a figure's key hashes: its name, its inputs (keys, hashes, options) and the figure code."""
        return {"figure": name, "inputs": inputs, "code": code_version([FIGURE_ENTRY])}
