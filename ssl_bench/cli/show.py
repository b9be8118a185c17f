"""``bench show RUN_DIR``: what a pretraining run produced, in a few lines."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="summarise a pretraining run folder")
    p.add_argument("run", type=Path, help="a `bench pretrain --out` folder")
    p.set_defaults(func=run)


def summarise(run_dir: Path) -> dict[str, Any]:
    """Steps, loss, speed and the last sample grid's hole L2 / PSNR / detail of a run folder.

    Raises:
        CheckpointError: ``run_dir`` is not a pretraining run folder.
    """
    from ssl_bench.runtime.run_folder import RunFolder  # torch: not for `bench --help`

    folder = RunFolder(run_dir)
    out: dict[str, Any] = {
        "run": str(folder.path),
        "method": folder.method_name,  # reads config.yaml: a one-line error when there is none
        "encoder": str(folder.encoder_path) if folder.encoder_path.is_file() else None,
    }
    rows = folder.metrics()
    losses = [r for r in rows if "loss" in r]
    samples = [r for r in rows if "sample_l2" in r]
    grids = sorted(folder.samples_dir.glob("step_*.png"))
    if losses:
        out |= {
            "steps": losses[-1]["step"],
            "first_loss": losses[0]["loss"],
            "last_loss": losses[-1]["loss"],
            "img_s": round(sum(r["img_s"] for r in losses[1:] or losses) / len(losses[1:] or losses), 1),
        }
    if samples:
        last = samples[-1]
        out |= {"hole_l2_output": last["sample_l2"], "hole_l2_mean_fill": last["fill_l2"]}
        if "sample_psnr_db" in last:
            out |= {"hole_psnr_output": last["sample_psnr_db"], "hole_psnr_mean_fill": last["fill_psnr_db"]}
        if last.get("sample_sharpness") is not None:  # runs from before it was logged have none
            out["hole_sharpness"] = last["sample_sharpness"]
    if grids:
        out["latest_samples"] = str(grids[-1])
    evidence = folder.learning_evidence()
    for key in ("conv1_structure", "final_accuracy"):
        if key in evidence:
            out[key] = evidence[key]
    out |= {k: v for k, v in evidence.items() if k.startswith("memorisation_")}
    return out


def run(args: argparse.Namespace) -> int:
    s = summarise(args.run)
    print(f"run:            {s['run']}  ({s['method']})")
    if "steps" in s:
        print(
            f"steps:          {s['steps']}  "
            f"(loss {s['first_loss']:.4f} → {s['last_loss']:.4f}, {s['img_s']} img/s)"
        )
    if "hole_l2_output" in s:
        better = s["hole_l2_output"] < s["hole_l2_mean_fill"]
        # Runs from before the PSNR was logged stored the L2 in normalised units, not in %.
        unit = " %" if "hole_psnr_output" in s else " (normalised units)"
        output, fill = f"{s['hole_l2_output']:.4f}{unit}", f"{s['hole_l2_mean_fill']:.4f}{unit}"
        print(
            f"hole L2:        {output} inpainted vs {fill} mean fill  "
            f"({'better' if better else 'NOT better'} than the fill value)"
        )
    if "hole_psnr_output" in s:
        print(
            f"hole PSNR:      {s['hole_psnr_output']:.2f} dB inpainted vs {s['hole_psnr_mean_fill']:.2f} dB "
            "mean fill"
        )
    if "hole_sharpness" in s:
        print(
            f"hole detail:    {s['hole_sharpness']:.2f} of the original's gradient energy in the hole  "
            "(0 for a flat fill, 1 as detailed as the original)"
        )
    if "final_accuracy" in s:
        print(f"pretext acc.:   {s['final_accuracy']:.3f}  (mean of the last 5 logged batches)")
    if "conv1_structure" in s:
        print(
            f"conv1:          structure {s['conv1_structure']:.3f}  (mean neighbour correlation in a filter: "
            "about 0 for a noise init, high for smooth edge / colour-blob filters)"
        )
    for what in ("loss", "accuracy"):
        train, heldout = s.get(f"memorisation_train_{what}"), s.get(f"memorisation_heldout_{what}")
        if train is not None and heldout is not None:
            print(
                f"memorisation:   pretext {what} {train:.3f} on training images vs {heldout:.3f} on held-out "
                "pool images (memorisation.json)"
            )
    if s.get("latest_samples"):
        print(f"samples:        {s['latest_samples']}  (rows: masked input / output / original)")
    print(f"encoder:        {s['encoder']}")
    return 0
