"""``results/REPORT.md``: the reproduced table, the paper's numbers, the figures and how they were made.

Written from the records and stage markers only, and without timestamps or cached/ran flags, so the same
records give the same report byte for byte (a re-run that reuses every stage rewrites an identical file).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ssl_bench.atomic import atomic_write_text
from ssl_bench.errors import RecipeError
from ssl_bench.methods import method_class
from ssl_bench.results.report_tables import inpainting_table, learning_evidence
from ssl_bench.results.stages import ReproduceOptions, StageResult
from ssl_bench.results.table import ResultsTable, format_duration, read_paper_csv, render, to_markdown

FIGURES = (
    (
        "results_bars",
        "Results as bars",
        "Mean ± 95% CI over evaluation seeds per task and method; × marks the paper's number where the "
        "metric "
        "is the same.",
    ),
    (
        "inpainting_examples",
        "Inpainting examples",
        "Centre hole (¼ of the image) on held-out test images: masked input, each inpainting method's output "
        "(prediction pasted into the hole), the classic inpainters' (OpenCV Telea and Navier–Stokes, "
        "scikit-image biharmonic), original.",
    ),
    (
        "conv1_filters",
        "conv1 filters",
        "The 96 first-layer filters of each encoder, each scaled to its own range; each title gives their "
        "structure, the mean correlation between neighbouring weights of a filter (about 0 for a Gaussian "
        "init, high for smooth edges and colour blobs).",
    ),
    (
        "tsne_pool5",
        "t-SNE of pool5 features",
        "Held-out test images embedded by t-SNE (after PCA to 50 dimensions), coloured by their largest "
        "object's "
        "class.",
    ),
    (
        "loss_curves",
        "Pretraining curves",
        "Training loss per logged step (metrics.jsonl); for inpainting methods also the hole L2 of the fixed "
        "sample batch against the mean fill.",
    ),
    (
        "layer_randomisation",
        "Layer randomisation",
        "One layer at a time re-drawn from its initial distribution (encoder conv1…conv5; for the "
        "semantic-inpainting net also its bottleneck and decoder up-convs), everything else trained: the "
        "centre-hole L2 error on held-out images (mean ± std over draws); dashed: the mean fill.",
    ),
    (
        "tsne_code",
        "t-SNE of the bottleneck code",
        "The semantic-inpainting net's code (the 4000-d layer the decoder reads) of held-out test images "
        "with the centre hole filled, embedded by t-SNE (after PCA to 50 dimensions), coloured by their "
        "largest object's class.",
    ),
    (
        "gan_curves",
        "Generator and discriminator",
        "Runs with a discriminator: the generator's joint loss and its L2 and adversarial terms, the "
        "discriminator's loss, and its accuracy on original regions and on the generator's fills (0.5: it "
        "cannot tell them apart).",
    ),
)
# Per run with a decoder, ``figures/layer_outputs_<method>.png``: the layer-randomisation fills as images.
LAYER_OUTPUTS_CAPTION = (
    "One layer at a time re-drawn (one draw): the fills of the same held-out images, with the hole L2 error "
    "of these images in each row's label."
)


def _table_command(out: Path, options: ReproduceOptions) -> str:
    parts = [
        "bench",
        "table",
        "--results",
        str(out / "runs"),
        "--profile",
        options.profile,
        "--tasks",
        *options.tasks,
        "--methods",
        *options.methods,
        "--seeds",
        str(options.seeds),
    ]
    return shlex.join(parts)


def reference_tables() -> str:
    """The paper's Table 2 and the later AlexNet rows, from results/paper/*.csv."""
    lines = []
    try:
        t2 = read_paper_csv("table2.csv")
        cols = ["method", "supervision", "pretraining_time", "cls", "det", "seg", "note"]
        lines += [
            "Pathak et al. 2016, Table 2 (`results/paper/table2.csv`; cls = scikit-learn AP via "
            "Krähenbühl's code, det = VOC07 11-point AP, seg = mean IU):",
            "",
            to_markdown(t2[cols]),
            "",
        ]
        later = read_paper_csv("later_rows.csv")
        cols = ["method", "rescaled", "cls", "det", "seg", "method_citation", "note"]
        lines += ["Later AlexNet rows (`results/paper/later_rows.csv`):", "", to_markdown(later[cols]), ""]
        t1 = read_paper_csv("table1.csv")
        cols = ["method", "dataset", "l1_pct", "l2_pct", "psnr_db", "note"]
        lines += [
            "Pathak et al. 2016, Table 1 (`results/paper/table1.csv`; semantic inpainting, mean L1 %, "
            "mean L2 %, PSNR dB over the centre hole):",
            "",
            to_markdown(t1[cols]),
            "",
        ]
    except (OSError, KeyError) as e:
        lines.append(f"(paper reference tables unavailable: {e})")
    return "\n".join(lines)


def _layer_numbers(out: Path) -> str:
    path = out / "figures" / "layer_randomisation.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return ""
    rows = []
    for method, entry in data.get("methods", {}).items():
        row = {"method": method, "trained": f"{entry['trained']:.2f}"}
        for layer, v in entry.get("layers", {}).items():
            row[layer] = f"{v['mean']:.2f} ± {v['std']:.2f}"
        row["mean fill"] = f"{entry['mean_fill']:.2f}"
        rows.append(row)
    if not rows:
        return ""
    return (
        f"Centre-hole L2 error (%), {data.get('num_images')} held-out images, {data.get('draws')} draws per "
        f"layer:\n\n{to_markdown(pd.DataFrame(rows).fillna(''))}\n"
    )


def stage_rate(record: dict[str, Any]) -> str:
    """A stage record's img/s as shown: an evaluation's training images per second, a pretraining run's
    median logged rate ("" where it has none)."""
    rate = record.get("images_per_s") or (record.get("metrics") or {}).get("img_s")
    return f"{rate:.1f}" if isinstance(rate, int | float) and rate > 0 else ""


def provenance_lines(used: Sequence[dict[str, Any]]) -> list[str]:
    """The code (git commits, package versions) and devices of the records a report uses."""
    commits = sorted({str(r.get("git_commit")) for r in used if r.get("git_commit")})
    devices = sorted({str(r.get("device")) for r in used if r.get("device")})
    versions = next((r.get("versions") for r in used if r.get("versions")), {})
    return [
        f"- Code: git {', '.join(commits) or 'unknown'}; "
        + ", ".join(f"{k} {v}" for k, v in sorted((versions or {}).items()))
        + ".",
        f"- Device: {'; '.join(devices) or 'unknown'}.",
    ]


def _stage_table(results: Sequence[StageResult], records: dict[str, dict[str, Any]]) -> str:
    """Stages with their outcome, and the wall time and img/s stored in their record (stable across re-runs;
    img/s: an evaluation's training images per second, a pretraining run's median logged rate)."""
    rows = []
    for r in results:
        rec = records.get(r.record_id or "", {})
        wall = rec.get("wall_s")
        rows.append(
            {
                "stage": f"{r.kind} {r.name}",
                "outcome": "ok" if r.status in ("cached", "ran") else r.status,
                "record": r.record_id or "",
                "wall time": format_duration(wall) if wall else "",
                "img/s": stage_rate(rec),
                "error": (r.error or "")[:120],
            }
        )
    return to_markdown(pd.DataFrame(rows)) if rows else "(no stages)"


def write_report(
    out: Path,
    table: ResultsTable,
    options: ReproduceOptions,
    results: Sequence[StageResult],
    records: Sequence[dict[str, Any]],
) -> Path:
    """Write ``<out>/REPORT.md`` linking the table files and figures; returns its path."""
    out = Path(out)
    by_id = {str(r.get("id")): r for r in records}
    used = [by_id[r.record_id] for r in results if r.record_id in by_id]
    lines = [
        *_header(out, options, used),
        *profile_note(options.profile),
        *_results_section(table, results),
        *evidence_section(records, options.methods),
        *table1_section(records, options.methods),
        "## The paper's numbers",
        "",
        reference_tables(),
        *_figures_section(out),
        "## Stages",
        "",
        "Each stage is cached on a hash of its inputs (recipe, code, weights, data manifest); see "
        "`ssl_bench/results/reproduce.py`.",
        "",
        _stage_table(results, by_id),
        "",
    ]
    path = out / "REPORT.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def _header(out: Path, options: ReproduceOptions, used: Sequence[dict[str, Any]]) -> list[str]:
    """Title, the commands, and the seeds, data, code and device of the records the report uses."""
    synth = any((r.get("data") or {}).get("synthvoc") for r in used)
    seeds = ", ".join(map(str, options.seed_list()))
    policy = (
        f"each method pretrained once per seed (seeds {seeds}), so the intervals include "
        "pretraining variance"
        if options.pretrain_per_seed
        else "each method pretrained once (seed 0) and evaluated with seeds "
        f"{seeds}: the intervals measure evaluation (fine-tuning) variance only, not "
        "pretraining variance (pretraining per seed would triple the smoke budget's pretraining time; "
        "`--pretrain-per-seed` does it)"
    )
    return [
        f"# Reproduction: Context Encoders (Pathak et al., CVPR 2016) — `{options.profile}` profile",
        "",
        f"Made by: `{options.command or 'bench reproduce --profile ' + options.profile}`  ",
        f"Table only, from the same records: `{_table_command(out, options)}`",
        "",
        f"- Seeds: {policy}.",
        f"- Data: {'SynthVOC, the generated VOC-layout dataset (pretraining on its unlabelled pool)' if synth else 'as given by --data-voc / --data-pretrain'}.",  # noqa: E501
        *provenance_lines(used),
        "",
    ]


def profile_note(profile: str) -> list[str]:
    """What the smoke and mini profiles' numbers can and cannot show ([] for the paper profile)."""
    if profile == "smoke":
        return [
            "> The smoke profile checks the whole pipeline in under an hour on 2 CPU cores: minutes of "
            "pretraining on SynthVOC instead of 14 hours on ImageNet, shortened evaluation schedules. "
            "Its numbers are NOT comparable to the paper's; the paper column is there to show the "
            "protocol and the metric each number must be compared in.",
            "",
        ]
    if profile == "mini":
        return [
            "> The mini profile is the paper's comparison in miniature on 2 CPU cores: every trained method "
            "gets the same budget (`pretrain/mini/`: 2,000 steps × 32 crops of 128 px on SynthVOC's pool for "
            "the feature-learning methods (12,800 images: the dataset's own 1,000 and 11,800 drawn beyond "
            "it by the same generator, `data.synth_pool`), batch norm while training folded into a plain "
            "CaffeNet; 1,200 steps for the semantic-inpainting net and its L2-only twin), and every encoder "
            "the same evaluation recipes (`eval/mini/`). Its numbers are NOT comparable to the paper's; what "
            "it can show is whether the encoders learnt (next section) and how the methods order under one "
            "budget.",
            "",
        ]
    return []


def _results_section(table: ResultsTable, results: Sequence[StageResult]) -> list[str]:
    """The table, its files, and the stages that failed."""
    lines = [
        "## Results",
        "",
        render(table, "markdown"),
        "Files: [table.md](table.md) · [table.csv](table.csv) (numbers and record ids) · "
        "[table.tex](table.tex) · [table.manifest.json](table.manifest.json) (the records behind every "
        "cell).",
        "",
    ]
    failed = [r for r in results if r.status in ("failed", "blocked")]
    if failed:
        lines += ["### Failed stages", ""]
        lines += [f"- `{r.kind} {r.name}`: {r.error}" for r in failed] + [""]
    return lines


def evidence_section(
    records: Sequence[dict[str, Any]], methods: Sequence[str], figures: bool = True
) -> list[str]:
    """"Did pretraining learn?": the learning-evidence table and how each column is measured (``figures``:
    the report has a Figures section with the curves)."""
    evidence = learning_evidence(records, methods)
    if not evidence:
        return []
    unmeasured = _without_heldout_measure(methods)
    curves = " The curves are under Figures." if figures else ""
    return [
        "## Did pretraining learn?",
        "",
        "Mean ± 95% CI over seeds, computed by the suite from each run (`RunFolder.learning_evidence`, "
        "the `inpaint` evaluator). conv1 structure: the mean correlation between neighbouring weights "
        "of a conv1 filter (`ssl_bench.metrics.filters`): about 0 for a Gaussian init (the random row), "
        "high for smooth edge and colour-blob filters. Loss and accuracy: the mean of the last 5 "
        "logged batches of the pretext task. Hole PSNR (`ssl_bench.metrics.inpainting`): the training "
        "sample grid (pool images, training masks) and held-out test images with the centre hole, each "
        "against the mean fill of the same holes. Memorisation (`ssl_bench/training/memorisation.py`, "
        "issue #22): the pretext's own loss and accuracy, in eval mode, on 64 pool images the run "
        "trained on and on 64 held-out pool images no run has seen (drawn by SynthVOC's generator "
        "beyond the dataset), the same masks and seeds on both sides; a held-out loss far above the "
        "train loss means the pretext memorised its pool (runs made before: `bench memorisation "
        "RUN_DIR`)."
        + (f" No memorisation measure for {', '.join(unmeasured)}: its pretext targets exist only for "
           "the pool images it trained on (`heldout_pretext = False`)." if unmeasured else "")
        + curves,
        "",
        evidence,
        "",
    ]


def _without_heldout_measure(methods: Sequence[str]) -> list[str]:
    """The methods that train but whose pretext cannot score a held-out image (``heldout_pretext``)."""
    names = []
    for name in methods:
        try:
            cls = method_class(name)
        except RecipeError:  # records of a method this installation does not register
            continue
        if cls.trains and not cls.heldout_pretext:
            names.append(name)
    return names


def table1_section(records: Sequence[dict[str, Any]], methods: Sequence[str]) -> list[str]:
    """"Table 1: inpainting": the inpainting table and what it can be compared with."""
    table1 = inpainting_table(records, methods)
    if not table1:
        return []
    return [
        "## Table 1: inpainting",
        "",
        "The `inpaint` evaluator: every row on the same held-out images and the same centre hole (¼ of "
        "the image), scored alike (`ssl_bench.metrics.inpainting`: hole pixels only, 8-bit images in "
        "[0, 1], mean L1 and L2 in %, PSNR the mean over images). Mean ± 95% CI over records; a "
        "baseline evaluated on the same images by several records counts once. The paper's numbers "
        "(`results/paper/table1.csv`) are for its semantic-inpainting net on Paris StreetView at 128 px: "
        "comparable only with a `semantic_inpainting` run evaluated on a Paris StreetView folder.",
        "",
        table1,
        "",
    ]


def _figures_section(out: Path) -> list[str]:
    """Each figure under ``<out>/figures`` with its caption (the layer-randomisation numbers beside it)."""
    lines = ["## Figures", ""]
    for name, title, caption in FIGURES:
        if (out / "figures" / f"{name}.png").is_file():
            lines += [f"### {title}", "", caption, "", f"![{title}](figures/{name}.png)", ""]
            if name == "layer_randomisation":
                numbers = _layer_numbers(out)
                if numbers:
                    lines += [numbers, ""]
    for path in sorted((out / "figures").glob("layer_outputs_*.png")):
        title = f"Layer randomisation, {path.stem.removeprefix('layer_outputs_')}"
        lines += [f"### {title}", "", LAYER_OUTPUTS_CAPTION, "", f"![{title}](figures/{path.name})", ""]
    return lines
