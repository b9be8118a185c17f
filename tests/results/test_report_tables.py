"""REPORT.md's learning-evidence and Table 1 tables, from pretraining and inpaint records (mean ± CI)."""

from __future__ import annotations

from ssl_bench.results.report_tables import inpainting_table, learning_evidence


def _pretrain(method: str, seed: int, **metrics: float) -> dict:
    return {"task": "pretrain", "status": "ok", "seed": seed, "pretrain": {"method": method},
            "metrics": metrics}  # fmt: skip


def test_learning_evidence_averages_seeds_and_adds_the_held_out_hole_psnr() -> None:
    records = [
        _pretrain("context_encoder", 0, conv1_structure=0.5, final_loss=0.3, img_s=200.0),
        _pretrain("context_encoder", 1, conv1_structure=0.7, final_loss=0.5, img_s=220.0),
        _pretrain("random", 0, conv1_structure=0.001),
        {"task": "inpaint", "status": "ok", "seed": 0, "pretrain": {"method": "context_encoder"},
         "metrics": {"psnr_db": 17.0, "fill_psnr_db": 15.0}},
        {"task": "inpaint", "status": "ok", "seed": 0, "pretrain": {"method": "random"},
         "metrics": {"nn_psnr_db": 13.0, "fill_psnr_db": 15.0}},  # no decoder: no model PSNR, left out
        {"task": "seg", "status": "ok", "seed": 0, "pretrain": {"method": "random"},
         "metrics": {"miou": 0.1}},
        _pretrain("context_encoder", 2, conv1_structure=99.0) | {"status": "failed"},
    ]  # fmt: skip
    text = learning_evidence(records, ["context_encoder", "autoencoder", "random"])
    lines = text.splitlines()
    ce = next(x for x in lines if x.startswith("| context_encoder"))
    # mean 0.6, t(0.975, 1) = 12.706 × std 0.1414 / √2 = 1.271
    assert "0.600 ± 1.271 (n=2)" in ce and "0.400 ± 1.271 (n=2)" in ce and "17.00 (n=1)" in ce
    assert "15.00 (n=1)" in ce and "210 ± 127 (n=2)" in ce
    assert "0.001 (n=1)" in next(x for x in lines if x.startswith("| random"))
    assert not any(x.startswith("| autoencoder") for x in lines)  # no records: no row
    assert "pretext accuracy" not in lines[0]  # a column nobody has is left out
    assert learning_evidence([], ["random"]) == ""


def _inpaint(
    method: str, seed: int, network: float | None, nn_feature: str, size: int = 128, **psnr: float
) -> dict:
    """An inpaint record: every row's L1 / L2 from its PSNR (the numbers only need to be distinct)."""
    rows = {
        "nn_": 14.0,
        "nn_hog_": 13.0,
        "telea_": 17.5,
        "ns_": 17.4,
        "biharmonic_": 17.6,
        "fill_": 15.0,
    } | psnr
    if network is not None:
        rows[""] = network
    metrics = {
        f"{p}{m}": v if m == "psnr_db" else v / 2
        for p, v in rows.items()
        for m in ("l1_pct", "l2_pct", "psnr_db")
    }
    return {"task": "inpaint", "status": "ok", "seed": seed, "profile": "mini", "metrics": metrics,
            "pretrain": {"method": method}, "started_at": f"2026-01-0{seed + 1}",
            "data": {"manifest_hash": "abc"},
            "extra": {"nn_feature": nn_feature, "test_data": "Main test (200 images)", "image_size": size,
                      "nn_database": "Main trainval (500 images)"}}  # fmt: skip


def test_table1_rows_average_networks_over_seeds_and_count_each_baseline_evaluation_once() -> None:
    records = [
        _inpaint("semantic_inpainting", 0, 18.0, "conv5 (L2-normalised, cosine)"),
        _inpaint("semantic_inpainting", 1, 19.0, "conv5 (L2-normalised, cosine)"),
        _inpaint("context_encoder", 0, 16.0, "pool5 (L2-normalised, cosine)", nn_=14.5),
        _inpaint("random", 0, None, "pixels (16x16 context, Euclidean)", size=227, nn_=12.0),
        _inpaint("random", 1, None, "pixels (16x16 context, Euclidean)") | {"status": "error"},
    ]
    text = inpainting_table(records, ["context_encoder", "semantic_inpainting", "random"])
    lines = text.splitlines()[2:]

    def row(name: str) -> list[str]:
        return [line for line in lines if line.startswith(f"| {name} |")]

    assert [line.split(" | ")[0].removeprefix("| ") for line in lines[:5]] == [
        "network: context_encoder",
        "network: semantic_inpainting",
        "NN-inpainting, context_encoder features (pool5)",
        "NN-inpainting, semantic_inpainting features (conv5)",
        "NN-inpainting, raw pixels",  # a baseline: after the networks' own rows
    ]
    # two seeds: mean 18.5, t(0.975, 1) · 0.7071 / √2 = 6.35; the paper's joint-loss net beside it
    (semantic,) = row("network: semantic_inpainting")
    assert "18.50 ± 6.35 (n=2)" in semantic and "9.37 / 1.96 / 18.58" in semantic
    (context_encoder,) = row("network: context_encoder")
    assert "16.00 (n=1)" in context_encoder and "18.58" not in context_encoder
    assert "15.10 / 4.30 / 14.70" in row("NN-inpainting, semantic_inpainting features (conv5)")[0]
    assert "14.70" not in row("NN-inpainting, context_encoder features (pool5)")[0]
    # three records of the same 128-px images hold the same baselines: counted once; 227 px is another row
    hog = row("NN-inpainting, HOG features")
    assert len(hog) == 2 and all("13.00 (n=1)" in line and "19.92 / 6.92 / 12.79" in line for line in hog)
    assert "Main test (200 images), 128 px" in hog[0] and "227 px" in hog[1]
    (pixels,) = row("NN-inpainting, raw pixels")
    assert "12.00 (n=1)" in pixels and "227 px" in pixels
    assert len(row("mean fill")) == 2 and len(row("Telea (OpenCV)")) == 2
    assert inpainting_table(records, ["autoencoder"]) == ""


def test_table1_has_a_sharpness_column_when_the_records_measure_it() -> None:
    records = [_inpaint("semantic_inpainting", s, 18.0 + s, "conv5 (L2-normalised, cosine)") for s in (0, 1)]
    assert "sharpness" not in inpainting_table(records, ["semantic_inpainting"])  # records before the metric
    for r, value in zip(records, (0.5, 0.7), strict=True):
        r["metrics"] |= {"sharpness": value, "fill_sharpness": 0.0}
    lines = inpainting_table(records, ["semantic_inpainting"]).splitlines()
    assert "sharpness (fill / original)" in lines[0]
    (network,) = [line for line in lines if line.startswith("| network: semantic_inpainting |")]
    assert "0.60 ± " in network
    (fill,) = [line for line in lines if line.startswith("| mean fill |")]
    assert "0.00 (n=1)" in fill


def test_learning_evidence_has_memorisation_columns_from_records_or_the_run_folder(tmp_path) -> None:
    import json

    # A record made after issue #22 holds the numbers; one made before finds them in its run's
    # memorisation.json (written since by `bench memorisation`); a run without the file shows none.
    run = tmp_path / "supervised-s1"
    run.mkdir()
    sides = {"train": {"loss": 0.2, "accuracy": 0.9}, "heldout": {"loss": 0.6, "accuracy": 0.5}}
    (run / "memorisation.json").write_text(json.dumps(sides))
    records = [
        _pretrain("supervised", 0, memorisation_train_loss=0.1, memorisation_heldout_loss=0.5,
                  memorisation_train_accuracy=0.95, memorisation_heldout_accuracy=0.55),
        _pretrain("supervised", 1) | {"pretrain": {"method": "supervised", "run": str(run)}},
        _pretrain("context_encoder", 0, final_loss=0.3)
        | {"pretrain": {"method": "context_encoder", "run": str(tmp_path / "no-such-run")}},
    ]  # fmt: skip
    lines = learning_evidence(records, ["supervised", "context_encoder"]).splitlines()
    header = lines[0]
    assert "memorisation: train loss" in header and "memorisation: held-out accuracy" in header
    sup = next(x for x in lines if x.startswith("| supervised"))
    # train loss 0.1 and 0.2 → 0.150; held-out 0.5 and 0.6 → 0.550 (n=2 each)
    assert "0.150 ± " in sup and "0.550 ± " in sup and "0.925 ± " in sup and "0.525 ± " in sup
    ce = next(x for x in lines if x.startswith("| context_encoder"))
    assert "(n=" in ce and ce.count("(n=") == 1  # only its final loss


def test_the_stage_table_gives_each_stage_its_wall_time_and_img_s():
    from ssl_bench.results.report import _stage_table
    from ssl_bench.results.stages import StageResult

    results = [
        StageResult("pretrain", "supervised s0", "ran", record_id="p"),
        StageResult("eval", "cls supervised s0", "cached", record_id="e"),
        StageResult("eval", "det random s0", "failed", error="boom"),
    ]
    records = {
        "p": {"wall_s": 600.0, "metrics": {"img_s": 106.66}},  # a pretraining record: the median logged rate
        "e": {"wall_s": 90.0, "images_per_s": 21.04},  # an evaluation record
    }
    lines = _stage_table(results, records).splitlines()
    assert "img/s" in lines[0]
    assert "| pretrain supervised s0 | ok | p | 10.0 min | 106.7 |" in lines[2]
    assert "| eval cls supervised s0 | ok | e | 1.5 min | 21.0 |" in lines[3]
    assert "| eval det random s0 | failed |  |  |  | boom |" in lines[4]
