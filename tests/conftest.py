# SPDX-License-Identifier: Apache-2.0
"""Shared pytest fixtures."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The repository-relative ``shared/data`` folder with real MNIST-like IDX files.

    CI clones the repository as a sibling of ``shared/``; skip when it is absent.
    """
    path = Path(__file__).parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent (expected next to the repository)")
    return path


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    """Pin BLAS to one thread: on 2-core machines with xdist, threads only fight each other."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield
