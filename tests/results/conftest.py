"""One torch thread for the results tests: their tensors are tiny, and on a shared or busy machine two
spinning intra-op threads made them 2–3× slower (measured: layer randomisation 20 s → 8 s)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
