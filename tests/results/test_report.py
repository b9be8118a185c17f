"""REPORT.md's learning-evidence table: numbers from pretraining and inpaint records, mean ± CI over seeds."""

from __future__ import annotations

from ssl_bench.results.report import learning_evidence


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
