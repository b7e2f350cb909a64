"""Training tests run torch single-threaded: on the shared 2-core machine, OpenMP threads competing with other
processes made tiny ops ~50x slower (spin-waiting), and one thread is as fast when the cores are free."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
