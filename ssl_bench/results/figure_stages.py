"""The figure stages of ``bench reproduce``: the figures the pretrained methods allow, each with its inputs.

Each figure is one cached stage (``Reproduction.figure``: drawn again only when its inputs or the figure
code change); the drawing itself is :mod:`ssl_bench.results.figures`'.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ssl_bench.data.synthvoc import ensure_synthvoc
from ssl_bench.methods import method_class
from ssl_bench.results import figures as F
from ssl_bench.results.stage_plan import StagePlanner
from ssl_bench.results.stages import PretrainOutcome, ReproduceOptions
from ssl_bench.runtime.run_folder import RunFolder

# Figure sizes: enough to read, small enough for the smoke budget (t-SNE of 300 points ≈ 10 s per encoder).
FIGURE_OPTIONS = {"inpaint_images": 6, "tsne_images": 300, "layer_images": 64, "layer_draws": 3,
                  "layer_output_images": 4, "seed": 0}  # fmt: skip

# A figure stage: figure(name, its inputs, draw(path)).
FigureStage = Callable[[str, dict[str, Any], Callable[[Path], Any]], Any]


class FigureStages:
    """Every figure that the pretrained methods allow, one stage each, from their runs and the table.

    Args:
        figure: runs one figure stage (``Reproduction.figure``).
        plan: the reproduction's stage planner (data root and manifest).
        options: the reproduction's options (tasks, device, progress).
    """

    def __init__(self, figure: FigureStage, plan: StagePlanner, options: ReproduceOptions) -> None:
        self.figure, self.plan, self.options = figure, plan, options

    def draw(
        self, pretrained: dict[str, PretrainOutcome], table_csv: str, metrics: dict[str, Any]
    ) -> None:
        """Every figure that the pretrained methods allow (one stage each), from their runs and the table."""
        ok = {m: p for m, p in pretrained.items() if p.error is None and p.weights is not None}
        runs = {m: p.run for m, p in ok.items()}
        weights = {m: p.weights for m, p in ok.items()}
        keys = {m: p.key for m, p in ok.items()}
        shas = {m: p.weights_sha256 for m, p in ok.items()}
        voc = self.plan.voc_root("") or ensure_synthvoc()
        data = self.plan.manifest(voc)
        opt, device, progress = FIGURE_OPTIONS, self.options.device or "cpu", self.options.progress
        self.figure(
            "results_bars",
            {"table": table_csv, "tasks": list(self.options.tasks)},
            lambda p: F.table_bars(_frame(table_csv), p, self.options.tasks, metrics),
        )
        self.figure("loss_curves", {"runs": keys}, lambda p: F.loss_curves(runs, p))
        self.figure("conv1_filters", {"weights": shas}, lambda p: F.conv1_filters(weights, p))
        baselines = list(F.GRID_BASELINES)
        self.figure(
            "inpainting_examples",
            {"runs": keys, "data": data, "n": opt["inpaint_images"], "baselines": baselines},
            lambda p: F.inpainting_examples(runs, voc, p, opt["inpaint_images"], device, baselines),
        )
        self._tsne(runs, weights, keys, shas, voc, data)
        gans = {m: r for m, r in runs.items()
                if any("loss_discriminator" in x for x in RunFolder(r).metrics())}  # fmt: skip
        if gans:
            self.figure("gan_curves", {"runs": {m: keys[m] for m in gans}}, lambda p: F.gan_curves(gans, p))
        self.figure(
            "layer_randomisation",
            {"runs": keys, "data": data, "n": opt["layer_images"], "draws": opt["layer_draws"]},
            lambda p: F.layer_randomisation(
                runs, voc, p, opt["layer_images"], opt["layer_draws"], opt["seed"], device, progress
            ),
        )
        for method, run in runs.items():
            if RunFolder(run).has_decoder:
                self.figure(
                    f"layer_outputs_{method}",
                    {"run": keys[method], "data": data, "n": opt["layer_output_images"], "seed": opt["seed"]},
                    lambda p, run=run: F.layer_randomisation_outputs(
                        run, voc, p, opt["layer_output_images"], opt["seed"], device
                    ),
                )

    def _tsne(
        self,
        runs: dict[str, Path],
        weights: dict[str, Path | None],
        keys: dict[str, str | None],
        shas: dict[str, str | None],
        voc: Path,
        data: str,
    ) -> None:
        """t-SNE of pool5 features (CaffeNet encoders) and of the semantic-inpainting nets' bottleneck."""
        opt, device, progress = FIGURE_OPTIONS, self.options.device or "cpu", self.options.progress
        if any(not _dcgan_encoder(run) for run in runs.values()):  # pool5 needs a CaffeNet encoder
            self.figure(
                "tsne_pool5",
                {"weights": shas, "data": data, "n": opt["tsne_images"], "seed": opt["seed"]},
                lambda p: F.tsne_pool5(
                    weights, voc, p, opt["tsne_images"], seed=opt["seed"], device=device, progress=progress
                ),
            )
        coders = {m: r for m, r in runs.items() if hasattr(method_class(m), "encode")}
        if coders:  # the semantic-inpainting nets' bottleneck code
            self.figure(
                "tsne_code",
                {"runs": {m: keys[m] for m in coders}, "data": data, "n": opt["tsne_images"],
                 "seed": opt["seed"]},  # fmt: skip
                lambda p: F.tsne_code(coders, voc, p, opt["tsne_images"], opt["seed"], device, progress),
            )


def _dcgan_encoder(run: Path) -> bool:
    """Whether a pretraining run's encoder is a DCGAN's (the semantic-inpainting net's default), not a
    CaffeNet with a pool5."""
    return RunFolder(run).config.get("model", {}).get("encoder") == "dcgan"


def _frame(csv_text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(csv_text))

