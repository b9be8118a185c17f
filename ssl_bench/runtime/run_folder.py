"""One reader of a pretraining run's folder (``bench pretrain --out``), for everyone who reads one.

The layout (written by ``training/pretrain.py``)::

    config.yaml      the resolved recipe plus provenance
    checkpoint.pt    resumable state (whole method, its optimisers, RNG, step, config)
    encoder.pt       encoder weights only, a plain state dict
    metrics.jsonl    one JSON row per logged step and per sample grid
    samples/         sample grids
    memorisation.json  pretext loss / accuracy on training and held-out pool images
                       (``training/memorisation.py``; written at the end of pretraining, or by
                       ``bench memorisation``; older runs lack it)
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
import yaml

from ssl_bench.encoders import load_state_dict_strict, read_weights_file
from ssl_bench.errors import CheckpointError
from ssl_bench.methods import PretrainMethod, build_method, method_class
from ssl_bench.metrics.filters import conv1_structure
from ssl_bench.runtime.checkpoint import load_checkpoint


class RunFolder:
    """A pretraining run folder. Reading is lazy: only what is asked for is opened.

    Attributes:
        path: the folder.
    """

    CONFIG = "config.yaml"
    CHECKPOINT = "checkpoint.pt"
    ENCODER = "encoder.pt"
    METRICS = "metrics.jsonl"
    SAMPLES = "samples"
    MEMORISATION = "memorisation.json"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @classmethod
    def of_weights(cls, weights: str | Path) -> RunFolder | None:
        """The run an ``encoder.pt`` came from (its folder holds config.yaml), or None."""
        if str(weights) == "random":
            return None
        run = cls(Path(weights).parent)
        return run if run.is_run() else None

    def is_run(self) -> bool:
        return self.config_path.is_file()

    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def checkpoint_path(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def encoder_path(self) -> Path:
        return self.path / self.ENCODER

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    @property
    def samples_dir(self) -> Path:
        return self.path / self.SAMPLES

    @property
    def memorisation_path(self) -> Path:
        return self.path / self.MEMORISATION

    def memorisation(self) -> dict[str, Any] | None:
        """memorisation.json, or None where there is none (or it cannot be read)."""
        try:
            data = json.loads(self.memorisation_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    @cached_property
    def config(self) -> dict[str, Any]:
        """The resolved recipe; CheckpointError naming the file when there is none or it is unreadable."""
        try:
            config = yaml.safe_load(self.config_path.read_text())
        except FileNotFoundError:
            raise CheckpointError(f"{self.path} is not a pretraining run folder (no {self.CONFIG})") from None
        except yaml.YAMLError as e:
            raise CheckpointError(f"{self.config_path} is not valid YAML: {e}") from None
        if not isinstance(config, dict) or "method" not in config:
            raise CheckpointError(f"{self.config_path} is not a pretraining config (no 'method')")
        return config

    @property
    def method_name(self) -> str:
        return str(self.config["method"])

    @property
    def has_decoder(self) -> bool:
        """Whether the run's method can inpaint (it overrides ``PretrainMethod.inpaint``)."""
        return method_class(self.method_name).inpaint is not PretrainMethod.inpaint

    def metrics(self) -> list[dict[str, Any]]:
        """The rows of metrics.jsonl ([] when there is none); a torn line (a crash mid-write) is skipped."""
        if not self.metrics_path.is_file():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def checkpoint(self) -> dict[str, Any]:
        """checkpoint.pt, read with ``weights_only=True`` and its format checked."""
        return load_checkpoint(self.checkpoint_path)

    def load_method(self) -> PretrainMethod:
        """The whole method (encoder, decoder, heads) from checkpoint.pt, loaded strictly, in eval mode."""
        state = self.checkpoint()
        num_classes = int(self.config.get("data", {}).get("num_classes", 0) or 0)
        method = build_method(self.config, num_classes)
        load_state_dict_strict(method, state["model"], str(self.checkpoint_path))
        return method.eval()

    def load_encoder_state(self) -> dict[str, torch.Tensor]:
        """encoder.pt as a state dict (``weights_only=True``)."""
        return read_weights_file(self.encoder_path, "encoder weights")

    def learning_evidence(self, last: int = 5) -> dict[str, float]:
        """Numbers that say whether the run learnt, from its own files (issue #13):

        - ``conv1_structure``: of encoder.pt's conv1 (``metrics.filters``; about 0 for a noise init);
        - ``final_loss`` / ``final_accuracy``: the mean of the last ``last`` logged values of the pretext's
          loss / accuracy (single batches are noisy), where logged;
        - ``img_s``: the median logged pretraining throughput;
        - ``sample_psnr_db`` / ``fill_psnr_db``: the last training sample grid's hole PSNR and the mean
          fill's (``metrics.inpainting``; pool images, the training masks);
        - ``memorisation_{train,heldout}_{loss,accuracy}``: from memorisation.json, where there is one.
        """
        out: dict[str, float] = {}
        if self.encoder_path.is_file():
            state = self.load_encoder_state()
            if "conv1.weight" in state:
                out["conv1_structure"] = round(conv1_structure(state["conv1.weight"]), 4)
        rows = self.metrics()
        for key, name in (("loss", "final_loss"), ("accuracy", "final_accuracy")):
            values = [r[key] for r in rows if key in r][-last:]
            if values:
                out[name] = sum(values) / len(values)
        speeds = sorted(r["img_s"] for r in rows if "img_s" in r)
        if speeds:
            out["img_s"] = speeds[len(speeds) // 2]
        samples = [r for r in rows if "sample_psnr_db" in r]
        if samples:
            out["sample_psnr_db"] = samples[-1]["sample_psnr_db"]
            out["fill_psnr_db"] = samples[-1]["fill_psnr_db"]
        return out | memorisation_evidence(self.memorisation())


def memorisation_evidence(data: dict[str, Any] | None) -> dict[str, float]:
    """``memorisation_<side>_<loss|accuracy>`` of a memorisation.json (``{}`` for none or a skipped one)."""
    out: dict[str, float] = {}
    for side in ("train", "heldout"):
        for key in ("loss", "accuracy"):
            value = ((data or {}).get(side) or {}).get(key)
            if isinstance(value, (int, float)):
                out[f"memorisation_{side}_{key}"] = float(value)
    return out
