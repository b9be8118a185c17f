"""``results/REPORT.md``: the reproduced table, the paper's numbers, the figures and how they were made.

Written from the records and stage markers only, and without timestamps or cached/ran flags, so the same
records give the same report byte for byte (a re-run that reuses every stage rewrites an identical file).
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ssl_bench.atomic import atomic_write_text
from ssl_bench.results.stages import ReproduceOptions, StageResult
from ssl_bench.results.stats import mean_ci
from ssl_bench.results.table import (
    ResultsTable,
    format_duration,
    read_paper_csv,
    record_method,
    render,
    to_markdown,
)
from ssl_bench.runtime.run_folder import RunFolder, memorisation_evidence

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


def _reference_tables() -> str:
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


# (record key, column, digits) of the learning-evidence table; pretraining records hold the first ones
# (``RunFolder.learning_evidence``), the ``inpaint`` evaluator's records the held-out hole PSNR.
_EVIDENCE = (
    ("conv1_structure", "conv1 structure", 3),
    ("final_loss", "final pretext loss", 3),
    ("final_accuracy", "pretext accuracy", 3),
    ("img_s", "pretraining img/s", 0),
    ("sample_psnr_db", "training grid hole PSNR (dB)", 2),
    ("fill_psnr_db", "  mean fill (dB)", 2),
    ("psnr_db", "held-out centre hole PSNR (dB)", 2),
    ("fill_psnr_db_heldout", "  mean fill (dB) ", 2),
    # Issue #22 (``training/memorisation.py``): the pretext on pool images trained on vs held-out ones.
    ("memorisation_train_loss", "memorisation: train loss", 3),
    ("memorisation_heldout_loss", "memorisation: held-out loss", 3),
    ("memorisation_train_accuracy", "memorisation: train accuracy", 3),
    ("memorisation_heldout_accuracy", "memorisation: held-out accuracy", 3),
)


def _evidence_cell(values: Sequence[float], digits: int) -> str:
    if not values:
        return ""
    s = mean_ci(values)
    text = f"{s.mean:.{digits}f}"
    if s.half_width is not None:
        text += f" ± {s.half_width:.{digits}f}"
    return f"{text} (n={s.n})"


def _run_memorisation(record: dict[str, Any]) -> dict[str, float]:
    """The memorisation numbers of a pretraining record made before runs wrote them: from the run's own
    memorisation.json where ``bench memorisation`` has since measured it ({} otherwise)."""
    run = (record.get("pretrain") or {}).get("run")
    return memorisation_evidence(RunFolder(run).memorisation()) if run else {}


def learning_evidence(records: Sequence[dict[str, Any]], methods: Sequence[str]) -> str:
    """Markdown table, one row per method: mean ± 95% CI over seeds of each number that says whether
    pretraining learnt (conv1 structure of encoder.pt, the pretext's final loss / accuracy, its img/s,
    the training grids' and the held-out centre hole's PSNR against the mean fill). "" if none."""
    values: dict[str, dict[str, list[float]]] = {m: {} for m in methods}
    for r in records:
        method = record_method(r)
        if method not in values or r.get("status") != "ok":
            continue
        metrics = dict(r.get("metrics") or {})
        if r.get("task") == "inpaint":
            if "psnr_db" not in metrics:  # no decoder: the record holds the NN and fill baselines only
                continue
            metrics = {"psnr_db": metrics["psnr_db"], "fill_psnr_db_heldout": metrics.get("fill_psnr_db")}
        elif r.get("task") != "pretrain":
            continue
        elif not any(key.startswith("memorisation_") for key in metrics):
            metrics |= _run_memorisation(r)
        for key, *_ in _EVIDENCE:
            if isinstance(metrics.get(key), (int, float)):
                values[method].setdefault(key, []).append(float(metrics[key]))
    rows = [
        {"method": m, **{col: _evidence_cell(v.get(key, []), d) for key, col, d in _EVIDENCE}}
        for m, v in values.items()
        if v
    ]
    if not rows:
        return ""
    frame = pd.DataFrame(rows)
    frame = frame.loc[:, [c for c in frame.columns if c == "method" or frame[c].astype(bool).any()]]
    return to_markdown(frame)


# Pathak et al. 2016, Table 1: the ``inpaint`` evaluator's rows, as (metric prefix, row name). The network
# and NN on its features belong to the pretraining method; the others are baselines of the images alone.
_TABLE1_ROWS = (
    ("", "network"),
    ("nn_", "NN-inpainting, network features"),
    ("nn_hog_", "NN-inpainting, HOG features"),
    ("telea_", "Telea (OpenCV)"),
    ("ns_", "Navier–Stokes (OpenCV)"),
    ("biharmonic_", "biharmonic (scikit-image)"),
    ("fill_", "mean fill"),
)
_TABLE1_METRICS = (("l1_pct", "mean L1 %"), ("l2_pct", "mean L2 %"), ("psnr_db", "PSNR dB"))
# Not in the paper (issue #15): detail of the fills, 1 = the originals' (``ssl_bench.metrics.sharpness``);
# optional, records older than the metric have none.
_SHARPNESS = ("sharpness", "sharpness (fill / original)")
_TABLE1_PAPER = "Pathak et al. 2016, Paris StreetView: L1 % / L2 % / PSNR dB"


def _paper_table1() -> dict[tuple[str, str], str]:
    """``{(metric prefix, method_key): "L1 / L2 / PSNR"}`` from ``results/paper/table1.csv``; an empty
    ``method_key`` is a baseline's (any record's). {} when the file cannot be read."""
    try:
        frame = read_paper_csv("table1.csv")
    except (OSError, KeyError):
        return {}
    return {
        (str(row["suite_metric_prefix"]), str(row["method_key"])):
            f"{float(row['l1_pct']):.2f} / {float(row['l2_pct']):.2f} / {float(row['psnr_db']):.2f}"
        for _, row in frame.iterrows()
    }  # fmt: skip


def _table1_row(prefix: str, name: str, method: str, extra: dict[str, Any]) -> tuple[str, str]:
    """(row name, the method that made the row, "" for a baseline of the images alone)."""
    if prefix == "":
        return f"network: {method}", method
    if prefix == "nn_":
        feature = str(extra.get("nn_feature", ""))
        if not feature or feature.startswith("pixels"):  # runs without a decoder: raw pixels of the context
            return "NN-inpainting, raw pixels", ""
        return f"NN-inpainting, {method} features ({feature.split(' ')[0]})", method
    return name, ""


def inpainting_table(records: Sequence[dict[str, Any]], methods: Sequence[str]) -> str:
    """Markdown Table 1 from the ``inpaint`` records: one row per network and per baseline (held-out images
    and image size in a column), mean ± 95% CI of mean L1 %, mean L2 % and PSNR dB, and the paper's numbers
    where Table 1 has the row. "" if there are no inpaint records.

    A network's row averages its method's records (one per seed; a re-run replaces the older record of its
    seed). A baseline's row counts each evaluation of the same images once: every record of those images
    holds the same baseline numbers, whatever its method or seed.
    """
    paper = _paper_table1()
    # (row position, method position, row name, images) → (paper key, {evaluation: {metric: value}})
    rows: dict[tuple[int, int, str, str], tuple[tuple[str, str], dict[Any, dict[str, float]]]] = {}
    for r in sorted(records, key=lambda r: str(r.get("started_at", ""))):  # newest last: it replaces
        method = record_method(r)
        if r.get("task") != "inpaint" or r.get("status") != "ok" or method not in methods:
            continue
        metrics, extra = r.get("metrics") or {}, r.get("extra") or {}
        test_data = extra.get("test_data") or f"{extra.get('test_images', '?')} test images"
        images = f"{test_data}, {extra.get('image_size', '?')} px"
        for position, (prefix, name) in enumerate(_TABLE1_ROWS):
            values = {m: metrics.get(prefix + m) for m, _ in _TABLE1_METRICS}
            if not all(isinstance(v, (int, float)) for v in values.values()):
                continue
            sharpness = metrics.get(prefix + _SHARPNESS[0])
            if isinstance(sharpness, (int, float)) and math.isfinite(sharpness):
                values[_SHARPNESS[0]] = sharpness
            row, owner = _table1_row(prefix, name, method, extra)
            if owner:
                evaluation: Any = (r.get("profile"), r.get("seed"))
            else:
                evaluation = ((r.get("data") or {}).get("manifest_hash"), extra.get("nn_database"), images)
            key = (position, list(methods).index(owner) if owner else len(methods), row, images)
            rows.setdefault(key, ((prefix, owner), {}))[1][evaluation] = values
    if not rows:
        return ""
    table = []
    for key in sorted(rows):
        paper_key, evaluations = rows[key]
        cells = {col: _evidence_cell([v[m] for v in evaluations.values()], 2) for m, col in _TABLE1_METRICS}
        m, col = _SHARPNESS
        cells[col] = _evidence_cell([v[m] for v in evaluations.values() if m in v], 2)
        table.append(
            {"row": key[2], "held-out images": key[3], **cells, _TABLE1_PAPER: paper.get(paper_key, "")}
        )
    frame = pd.DataFrame(table)
    if not frame[_SHARPNESS[1]].astype(bool).any():
        frame = frame.drop(columns=_SHARPNESS[1])
    return to_markdown(frame)


def _stage_table(results: Sequence[StageResult], records: dict[str, dict[str, Any]]) -> str:
    """Stages with their outcome and the wall time stored in their record (stable across re-runs)."""
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
    commits = sorted({str(r.get("git_commit")) for r in used if r.get("git_commit")})
    devices = sorted({str(r.get("device")) for r in used if r.get("device")})
    versions = next((r.get("versions") for r in used if r.get("versions")), {})
    synth = any((r.get("data") or {}).get("synthvoc") for r in used)
    policy = (
        f"each method pretrained once per seed (seeds 0…{options.seeds - 1}), so the intervals include "
        "pretraining variance"
        if options.pretrain_per_seed
        else "each method pretrained once (seed 0) and evaluated with seeds "
        f"0…{options.seeds - 1}: the intervals measure evaluation (fine-tuning) variance only, not "
        "pretraining variance (pretraining per seed would triple the smoke budget's pretraining time; "
        "`--pretrain-per-seed` does it)"
    )
    failed = [r for r in results if r.status in ("failed", "blocked")]

    lines = [
        f"# Reproduction: Context Encoders (Pathak et al., CVPR 2016) — `{options.profile}` profile",
        "",
        f"Made by: `{options.command or 'bench reproduce --profile ' + options.profile}`  ",
        f"Table only, from the same records: `{_table_command(out, options)}`",
        "",
        f"- Seeds: {policy}.",
        f"- Data: {'SynthVOC, the generated VOC-layout dataset (pretraining on its unlabelled pool)' if synth else 'as given by --data-voc / --data-pretrain'}.",  # noqa: E501
        f"- Code: git {', '.join(commits) or 'unknown'}; "
        + ", ".join(f"{k} {v}" for k, v in sorted((versions or {}).items()))
        + ".",
        f"- Device: {'; '.join(devices) or 'unknown'}.",
        "",
    ]
    if options.profile == "smoke":
        lines += [
            "> The smoke profile checks the whole pipeline in under an hour on 2 CPU cores: minutes of "
            "pretraining on SynthVOC instead of 14 hours on ImageNet, shortened evaluation schedules. "
            "Its numbers are NOT comparable to the paper's; the paper column is there to show the "
            "protocol and the metric each number must be compared in.",
            "",
        ]
    if options.profile == "mini":
        lines += [
            "> The mini profile is the paper's comparison in miniature on 2 CPU cores: every trained method "
            "gets the same budget (`pretrain/mini/`: 2,000 steps × 32 crops of 128 px on the 1,000-image "
            "SynthVOC pool for the feature-learning methods, batch norm while training folded into a plain "
            "CaffeNet; 1,200 steps for the semantic-inpainting net and its L2-only twin), and every encoder "
            "the same evaluation recipes (`eval/mini/`). Its numbers are NOT comparable to the paper's; what "
            "it can show is whether the encoders learnt (next section) and how the methods order under one "
            "budget.",
            "",
        ]
    lines += [
        "## Results",
        "",
        render(table, "markdown"),
        "Files: [table.md](table.md) · [table.csv](table.csv) (numbers and record ids) · "
        "[table.tex](table.tex) · [table.manifest.json](table.manifest.json) (the records behind every "
        "cell).",
        "",
    ]
    if failed:
        lines += ["### Failed stages", ""]
        lines += [f"- `{r.kind} {r.name}`: {r.error}" for r in failed] + [""]
    evidence = learning_evidence(records, options.methods)
    if evidence:
        lines += [
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
            "RUN_DIR`). The curves are under Figures.",
            "",
            evidence,
            "",
        ]
    table1 = inpainting_table(records, options.methods)
    if table1:
        lines += [
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
    lines += ["## The paper's numbers", "", _reference_tables(), "## Figures", ""]
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
    lines += [
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
