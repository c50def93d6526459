"""Shared test settings: one torch thread per pytest worker (the suite runs with -n 2 on 2 cores;
more threads than cores makes every test wait on the others)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread_per_worker() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def _no_encoded_ids_cache() -> Iterator[None]:
    # the suite neither reads nor fills the user's cache of encoded ids (lstmkit.data.encode_cache;
    # tests/data/test_encode_cache.py turns it on in a tmp_path)
    before = os.environ.get("LSTMKIT_NO_ENCODE_CACHE")
    os.environ["LSTMKIT_NO_ENCODE_CACHE"] = "1"
    yield
    if before is None:
        os.environ.pop("LSTMKIT_NO_ENCODE_CACHE", None)
    else:
        os.environ["LSTMKIT_NO_ENCODE_CACHE"] = before
