"""The retrieval tests run on 64 x 64 images in batches of 1-4, where intra-op threads only add
synchronisation (10-40x slower per op on a loaded 2-core machine); run them single-threaded and restore."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
