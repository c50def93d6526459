"""Shared test settings: one torch thread per pytest worker (the suite runs with -n 2 on 2 cores;
more threads than cores makes every test wait on the others)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread_per_worker() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
