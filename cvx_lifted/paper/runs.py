# SPDX-License-Identifier: Apache-2.0
"""The pieces every run of the paper's experiment is made of.

Loading (and subsampling) the data, fitting a lifted network and recording what it reached,
caching its weights, turning it (or a random initialiser) into a PyTorch model, the record of
an SGD run, thread limits and the progress bar: shared by :func:`~cvx_lifted.paper.reproduce`
and :func:`~cvx_lifted.paper.study_lifted_init`.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
from threadpoolctl import threadpool_limits

from cvx_lifted._version import __version__
from cvx_lifted.datasets import load_dataset
from cvx_lifted.interop import torch as ct
from cvx_lifted.io import load_network
from cvx_lifted.network import LiftedNetwork

__all__ = [
    "LiftedSettings",
    "cache_weights",
    "limited_threads",
    "lifted_network",
    "load_cached_weights",
    "load_rows",
    "load_average",
    "machine",
    "model_for",
    "pretrain",
    "progress_bar",
    "train_fields",
]


class LiftedSettings(TypedDict):
    """How the lifted model of a run is built and trained (part of its fingerprint)."""

    activation: str
    head: str
    lam: float | str  # "tune" until λ is chosen
    lifted_rho: float
    sweeps: int
    output_scale: str | float


# ------------------------------------------------------------------------------ data
def _subsample(
    X: np.ndarray, y: np.ndarray, n: int | None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    if n is None or X.shape[0] <= n:
        return X, y
    from sklearn.model_selection import train_test_split  # scikit-learn is slow to import

    X_sub, _, y_sub, _ = train_test_split(X, y, train_size=int(n), random_state=seed, stratify=y)
    return X_sub, y_sub


def load_rows(
    dataset: str, data_dir: str | os.PathLike[str] | None, max_train_rows: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load a data set in float32: training rows (a stratified subsample if asked), test rows.

    Parameters
    ----------
    dataset : str
        Canonical data-set name (see :func:`cvx_lifted.datasets.load_dataset`).
    data_dir : str or os.PathLike or None
        Folder of its IDX files (default: see :mod:`cvx_lifted.datasets`).
    max_train_rows : int or None
        Keep a stratified subsample (seed 0) of this many training rows.

    Returns
    -------
    X, y, X_test, y_test : numpy.ndarray
    """
    X, y, X_test, y_test = load_dataset(dataset, data_dir, dtype=np.float32)
    X, y = _subsample(np.asarray(X, np.float32), np.asarray(y), max_train_rows)
    return X, y, np.asarray(X_test, np.float32), np.asarray(y_test)


# ------------------------------------------------------------------------------ machine
def load_average() -> list[float] | None:
    """Return the load average (1, 5, 15 minutes), or ``None`` where the platform has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return None


def machine() -> dict[str, Any]:
    """Describe the machine and the versions a run used (for ``results.json``)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    info["load_average_now"] = load_average()
    with contextlib.suppress(ImportError):
        info["torch"] = ct.import_torch().__version__
    info["cvx_lifted"] = __version__
    return info


@contextlib.contextmanager
def limited_threads(threads: int | None) -> Iterator[None]:
    """Limit BLAS and torch threads to ``threads`` for the duration (``None``: unchanged).

    Parameters
    ----------
    threads : int or None
        Threads of BLAS (threadpoolctl) and of torch.

    Yields
    ------
    None
    """
    torch = ct.import_torch()
    previous = torch.get_num_threads()
    limiter = threadpool_limits(threads) if threads is not None else None
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        if threads is not None:
            torch.set_num_threads(previous)
        if limiter is not None:
            limiter.restore_original_limits()


def progress_bar(total: int, progress: bool, description: str) -> Any:
    """Return a tqdm bar of ``total`` runs, or ``None`` without progress or work."""
    if not progress or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"reproduce {description}", unit="run", dynamic_ncols=True)


# ------------------------------------------------------------------------------ lifted model
def lifted_network(sizes: Sequence[int], settings: LiftedSettings) -> LiftedNetwork:
    """Build the (unfitted, float32) lifted network of a run.

    Parameters
    ----------
    sizes : sequence of int
        Layer sizes, input and output included.
    settings : LiftedSettings
        Activation, head, λ (a number by now) and ρ.

    Returns
    -------
    LiftedNetwork
    """
    return LiftedNetwork(
        sizes,
        activation=settings["activation"],
        output=settings["head"],
        lam=float(settings["lam"]),
        rho=settings["lifted_rho"],
        dtype=np.float32,
    )


def cache_weights(path: Path, network: LiftedNetwork) -> None:
    """Cache a lifted network as a model file (atomic, :meth:`LiftedNetwork.save`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    network.save(path)


def load_cached_weights(path: Path, network: LiftedNetwork) -> bool:
    """Copy the weights of a cached model file into ``network``; False if absent or unreadable."""
    if not path.exists():
        return False
    try:
        cached = load_network(path)
        network.set_weights(cached.weights, cached.biases)
    except (OSError, ValueError):  # ModelFileError is a ValueError
        return False
    return True


def pretrain(
    sizes: Sequence[int],
    seed: int,
    settings: LiftedSettings,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    lifted_rule: bool,
) -> tuple[LiftedNetwork, dict[str, Any]]:
    """Fit the lifted model; return it and its record (accuracies, scale, wall times).

    The accuracy on ``test`` is recorded after every sweep (a measurement, never a stopping
    rule), with the cumulative wall time of the sweeps, for time-to-accuracy tables.

    Parameters
    ----------
    sizes : sequence of int
        Layer sizes.
    seed : int
        Seed of the BCD initialisation.
    settings : LiftedSettings
        The lifted model (λ a number by now).
    train, test : tuple of numpy.ndarray
        ``(X, y)`` with integer labels: fitted on, and scored on.
    lifted_rule : bool
        Also score ``test`` with the lifted prediction rule (eq. 12).

    Returns
    -------
    network : LiftedNetwork
    record : dict
        ``test_accuracy``, ``train_accuracy``, ``output_scale``, ``sweeps``, ``objective``,
        wall times, per-sweep accuracy and time (and the lifted rule's accuracy).
    """
    X, y = train
    X_test, y_test = test
    net = lifted_network(sizes, settings)
    t0 = time.perf_counter()
    result = net.fit(
        X,
        np.eye(sizes[-1], dtype=np.float32)[y],
        max_iter=settings["sweeps"],
        tol=0.0,
        random_state=seed,
        validation=(X_test, y_test),
        # a fixed sweep count: 3 weight iterations per sweep on any number of training rows
        # (weight_max_iter="auto" would take 1 from 20,000 rows)
        weight_max_iter=3,
    )
    seconds_bcd = time.perf_counter() - t0
    sweep_seconds = [float(h.get("sweep", 0.0)) for h in result.history.seconds]
    t1 = time.perf_counter()
    scale = 1.0
    if settings["output_scale"] in ("balanced", "last"):
        scale = ct.fit_output_scale(net, X, y)
    elif isinstance(settings["output_scale"], float):
        scale = settings["output_scale"]
    seconds_scale = time.perf_counter() - t1
    record: dict[str, Any] = {
        "test_accuracy": float(np.mean(net.predict(X_test).argmax(axis=1) == y_test)),
        "train_accuracy": float(np.mean(net.predict(X).argmax(axis=1) == y)),
        "output_scale": float(scale),
        "sweeps": int(result.n_iter),
        "objective": [float(v) for v in result.history.objective],
        "seconds_bcd": seconds_bcd,
        "seconds_scale": seconds_scale,
        "seconds": seconds_bcd + seconds_scale,
        "seconds_per_sweep": seconds_bcd / max(1, result.n_iter),
        "test_accuracy_per_sweep": [float(v) for v in result.history.validation],
        "seconds_cumulative_per_sweep": [float(v) for v in np.cumsum(sweep_seconds)],
    }
    if lifted_rule:
        t2 = time.perf_counter()
        pred = net.predict_lifted(X_test)
        assert isinstance(pred, np.ndarray)  # without return_states: the outputs only
        record["test_accuracy_lifted_rule"] = float(np.mean(pred.argmax(axis=1) == y_test))
        record["seconds_lifted_rule"] = time.perf_counter() - t2
    return net, record


# ------------------------------------------------------------------------------ SGD
def model_for(
    init: str,
    sizes: Sequence[int],
    seed: int,
    network: LiftedNetwork | None,
    scale: float,
    balanced: bool,
) -> Any:
    """Return the PyTorch model an SGD run starts from.

    Parameters
    ----------
    init : str
        ``"lifted"`` or a random initialisation of :data:`cvx_lifted.interop.torch.INITS`.
    sizes : sequence of int
        Layer sizes.
    seed : int
        Seed of a random initialisation.
    network : LiftedNetwork or None
        The lifted network (``"lifted"`` only).
    scale : float
        Logit scale of the lifted initialisation.
    balanced : bool
        Spread the scale evenly over the layers (else: on the last one).

    Returns
    -------
    torch.nn.Sequential
    """
    if init == "lifted":
        if network is None:
            raise ValueError("the lifted initialisation needs the lifted network.")
        return ct.lifted_init(network, output_scale=scale, balance=balanced, dtype=np.float32)
    return ct.initialize(init, sizes, seed=seed, dtype=np.float32)


def train_fields(tr: Any) -> dict[str, Any]:
    """Return the record fields of a :class:`~cvx_lifted.interop.torch.TrainResult`."""
    return {
        "test_accuracy": [float(v) for v in tr.test_accuracy],
        "train_loss": [float(v) for v in tr.train_loss],
        "seconds": [float(v) for v in tr.seconds],
        "eval_seconds": float(tr.eval_seconds),
        "diverged": bool(tr.diverged),
    }
