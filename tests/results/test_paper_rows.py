"""The later AlexNet rows (``results/paper/later_rows.csv``): the ``cls-fc6-8`` column, sources and the
suite's method names, and how ``bench table`` shows them beside measured rows."""

from __future__ import annotations

import pytest

from ssl_bench.results.table import build_table, load_paper_numbers, read_paper_csv
from tests.results.test_table import record

# (method_key, task) → number, as transcribed in the CSV (Split-Brain Table 4 / RotNet Table 7 / DeepCluster).
FROM_LATER_ROWS = {
    ("supervised", "cls-fc6-8"): 78.9,
    ("relative_position", "cls-fc6-8"): 55.1, ("relative_position", "cls"): 65.3,
    ("relative_position", "det"): 51.1,
    ("colorization", "cls-fc6-8"): 61.5, ("colorization", "cls"): 65.9, ("colorization", "seg"): 35.6,
    ("jigsaw", "cls"): 67.6, ("jigsaw", "det"): 53.2, ("jigsaw", "seg"): 37.6,
    ("rotation", "cls-fc6-8"): 70.9, ("rotation", "cls"): 73.0, ("rotation", "seg"): 39.1,
    ("context_encoder", "cls-fc6-8"): 34.6,
    ("autoencoder", "cls-fc6-8"): 16.0,
    ("datainit", "cls-fc6-8"): 39.2, ("datainit", "cls"): 56.6,
    ("deepcluster", "cls-fc6-8"): 72.0, ("deepcluster", "cls"): 73.7, ("deepcluster", "det"): 55.4,
    ("deepcluster", "seg"): 45.1,
}  # fmt: skip


def test_later_rows_give_the_suite_methods_their_published_numbers() -> None:
    paper = load_paper_numbers()
    assert {k: paper[k].value for k in FROM_LATER_ROWS} == FROM_LATER_ROWS
    assert all(paper[k].source.startswith("later_rows.csv") for k in FROM_LATER_ROWS)
    assert {p.metric for (_, task), p in paper.items() if task == "cls-fc6-8"} == {"map_sklearn"}
    assert ("jigsaw", "cls-fc6-8") not in paper  # no published fc6-8 number: no cell, not a made-up one


def test_table2_is_read_first_where_both_files_have_a_number() -> None:
    paper = load_paper_numbers()
    assert paper[("supervised", "cls")].value == 78.2  # Pathak et al.; the later tables say 79.9
    assert paper[("context_encoder", "seg")].value == 30.0  # 29.7 in later_rows.csv
    assert paper[("supervised", "cls")].source == "table2.csv: ImageNet"


def test_every_row_names_its_source_architecture_and_whether_it_was_checked() -> None:
    rows = read_paper_csv("later_rows.csv")
    assert not rows.empty
    for _, row in rows.iterrows():
        assert row["citation"] and row["architecture"] and row["method_citation"], row["method"]
        assert row["checked_here"].split(":")[0] in {"yes", "no", "partly"}, row["method"]
        assert row["rescaled"] == ("yes" if row["method"].endswith("†") else "no"), row["method"]
    deepcluster = rows.set_index("method").loc["DeepCluster"]
    assert "unverified here" in deepcluster["note"] and deepcluster["checked_here"].startswith("no")
    assert "Sobel" in deepcluster["architecture"]


@pytest.mark.parametrize(
    ("method", "value", "paper", "diff"),
    [("rotation", 0.6, "70.9", "-10.9"), ("supervised", 0.8, "78.9", "+1.1")],
)
def test_the_fc6_8_column_shows_the_paper_number_and_the_difference(method, value, paper, diff) -> None:
    table = build_table([record("cls-fc6-8", method, 0, value, metric="map_sklearn")])
    assert table.tasks == ["cls-fc6-8"] and table.metrics["cls-fc6-8"] == "map_sklearn"
    row = table.display_frame().set_index("method").loc[method]
    header = "cls-fc6-8: classification, fc6-8 (conv frozen), mAP, sklearn AP (%)"
    assert row[header] == f"{value * 100:.1f} (n=1, no CI)"
    assert (row["cls-fc6-8: paper"], row["cls-fc6-8: Δ"]) == (paper, diff)


def test_the_fc6_8_column_sits_after_the_paper_tasks() -> None:
    recs = [record(task, "rotation", 0, 0.5, metric="map_sklearn") for task in ("cls-fc6-8", "det", "cls")]
    assert build_table(recs).tasks == ["cls", "det", "cls-fc6-8"]
