# SPDX-License-Identifier: Apache-2.0
"""Shared pytest fixtures."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The folder with real MNIST-like IDX files (sub-folders ``mnist-10k/``, ...).

    ``$CVX_LIFTED_DATA`` when it is set (the variable the package itself reads), else the
    repository-relative ``../shared/data`` (CI clones the repository as a sibling of
    ``shared/``); skip, with the places looked at, when neither exists.
    """
    env = os.environ.get("CVX_LIFTED_DATA", "").strip()
    path = Path(env).expanduser() if env else Path(__file__).parents[2] / "shared" / "data"
    if not path.is_dir():
        origin = "$CVX_LIFTED_DATA" if env else "expected next to the repository"
        pytest.skip(f"data folder {path} is absent ({origin})")
    return path


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    """Pin BLAS to one thread: on 2-core machines with xdist, threads only fight each other."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield
