"""Shared fixtures: a tiny SynthVOC generated once per test session, used as the SynthVOC cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Small enough to generate in seconds; the pretraining tests ask for it with data.synth_images.
TINY_SYNTH_IMAGES = 64


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` are skipped, and say so, where torch sees no CUDA device (CI, laptops)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def synth_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SynthVOC cache folder holding a tiny dataset; SSL_BENCH_CACHE points at it for the session."""
    from ssl_bench.data.synthvoc import ensure_synthvoc

    cache = tmp_path_factory.mktemp("ssl_bench_cache")
    old = os.environ.get("SSL_BENCH_CACHE")
    os.environ["SSL_BENCH_CACHE"] = str(cache)
    ensure_synthvoc(num_images=TINY_SYNTH_IMAGES)
    yield cache
    if old is None:
        os.environ.pop("SSL_BENCH_CACHE", None)
    else:
        os.environ["SSL_BENCH_CACHE"] = old


@pytest.fixture(scope="session")
def synth_voc_root(synth_cache: Path) -> Path:
    from ssl_bench.data.synthvoc import ensure_synthvoc

    return ensure_synthvoc(num_images=TINY_SYNTH_IMAGES)
