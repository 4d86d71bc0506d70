# SPDX-License-Identifier: Apache-2.0
"""Helpers of the speed benchmarks (``bench_sweep``, ``bench_accuracy``, ``bench_load``).

* :func:`fresh_blas_env` -- re-run the script without ``OPENBLAS_CORETYPE`` and
  ``OPENBLAS_L2_SIZE``, so that OpenBLAS picks the kernels of the CPU it runs on (these variables
  can pin older kernels; they are removed for the benchmark process only, never for tests);
* :func:`blas_kernel` -- the BLAS library, version, kernel (architecture) and threads in use;
* :func:`thread_settings` -- ``"1"`` / ``"all"`` to (BLAS setting of the fit, torch threads);
* :func:`default_network` -- the estimators' default classifier network for a solver and rows;
* :func:`adam_epoch_seconds`, :func:`adam_to_accuracy` -- the PyTorch reference: Adam (lr 1e-3,
  batch 100) on 784-H-10 with ReLU and softmax cross-entropy.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_MARK = "CVX_LIFTED_BENCH_BLAS_ENV_CLEARED"


def fresh_blas_env(keep: bool) -> dict[str, str | None]:
    """Re-execute this script without :data:`BLAS_ENV` (unless ``keep``); return what was removed.

    Must run before numpy is imported (the variables are read when OpenBLAS loads).
    """
    removed = {k: os.environ.get(k) for k in BLAS_ENV}
    if os.environ.get(_MARK):
        return {k: v or None for k, v in (item.split("=", 1) for item in _split(_MARK))}
    if keep or not any(removed.values()):
        return {k: None for k in BLAS_ENV}
    env = {k: v for k, v in os.environ.items() if k not in BLAS_ENV}
    env[_MARK] = ";".join(f"{k}={v or ''}" for k, v in removed.items())
    os.execve(sys.executable, [sys.executable, *sys.argv], env)
    raise AssertionError("unreachable")


def _split(name: str) -> list[str]:
    return [item for item in os.environ.get(name, "").split(";") if "=" in item]


def blas_kernel() -> list[dict[str, Any]]:
    """Every BLAS library loaded, as threadpoolctl reports it (file name only, no path)."""
    from threadpoolctl import threadpool_info

    return [
        {
            "library": os.path.basename(lib.get("filepath", "")),
            "internal_api": lib.get("internal_api"),
            "version": lib.get("version"),
            "architecture": lib.get("architecture"),
            "num_threads": lib.get("num_threads"),
        }
        for lib in threadpool_info()
        if lib.get("user_api") == "blas"
    ]


def scrub(machine: dict[str, Any]) -> dict[str, Any]:
    """Keep only the file names of the libraries in ``machine`` (no path of this machine)."""
    pools = machine.get("threadpools") or []
    machine["threadpools"] = [
        {**lib, "filepath": os.path.basename(lib.get("filepath", ""))} for lib in pools
    ]
    return machine


def blas_line() -> str:
    """The BLAS libraries in one line: file, version, kernel architecture."""
    return "; ".join(
        f"{b['library']} {b['version']} ({b['internal_api']}, kernel {b['architecture']})"
        for b in blas_kernel()
    )


def cores() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def thread_settings(name: str) -> tuple[int | str, int]:
    """``"1"``: (``blas_threads=1``, 1 torch thread); ``"all"``: (``"auto"``, every core)."""
    if name == "1":
        return 1, 1
    if name == "all":
        return "auto", cores()
    raise ValueError(f"thread setting must be '1' or 'all', got {name!r}")


def widths(hidden: int | Sequence[int]) -> list[int]:
    """Return the hidden widths ``hidden`` stands for (one layer for an int)."""
    return [int(hidden)] if isinstance(hidden, int | np.integer) else [int(h) for h in hidden]


def _torch_model(n_in: int, hidden: int | Sequence[int], n_out: int, dtype: Any, seed: int) -> Any:
    """A ReLU MLP with the hidden widths ``hidden`` (PyTorch's default initialisation)."""
    import torch

    torch.manual_seed(seed)
    layers: list[Any] = []
    sizes = [n_in, *widths(hidden)]
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(sizes[-1], n_out))
    return torch.nn.Sequential(*layers).to(dtype)


def adam_epoch_seconds(
    X: np.ndarray, y: np.ndarray, dtype: str, threads: int, seed: int, hidden: int = 300
) -> float:
    """Seconds of one epoch of Adam (lr 1e-3, batch 100); the model is built outside the timing."""
    import torch

    tdtype = torch.float64 if dtype == "float64" else torch.float32
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        Xt = torch.from_numpy(np.ascontiguousarray(X)).to(tdtype)
        yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
        model = _torch_model(X.shape[1], hidden, int(y.max()) + 1, tdtype, seed)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        return _adam_epoch(model, opt, loss_fn, Xt, yt)
    finally:
        torch.set_num_threads(old)


def _adam_epoch(model: Any, opt: Any, loss_fn: Any, Xt: Any, yt: Any) -> float:
    """One epoch of mini-batches of 100 in a random order; return its seconds."""
    import torch

    m = Xt.shape[0]
    t0 = time.perf_counter()
    perm = torch.randperm(m)
    for s in range(0, m, 100):
        idx = perm[s : s + 100]
        opt.zero_grad(set_to_none=True)
        loss_fn(model(Xt[idx]), yt[idx]).backward()
        opt.step()
    return time.perf_counter() - t0


def adam_to_accuracy(
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    epochs: int,
    threads: int,
    seed: int,
    hidden: int | Sequence[int] = 300,
    budget: float = float("inf"),
) -> list[tuple[float, float]]:
    """Train float32 Adam (lr 1e-3, batch 100); ``(training seconds, test accuracy)`` per epoch.

    The test accuracy is computed outside the timing.
    """
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
        Xv = torch.from_numpy(np.ascontiguousarray(X_test, dtype=np.float32))
        model = _torch_model(X.shape[1], hidden, int(y.max()) + 1, torch.float32, seed)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        curve: list[tuple[float, float]] = []
        spent = 0.0
        for _ in range(epochs):
            spent += _adam_epoch(model, opt, loss_fn, Xt, yt)
            with torch.no_grad():
                acc = float((model(Xv).argmax(1).numpy() == y_test).mean())
            curve.append((spent, acc))
            if spent > budget:
                break
        return curve
    finally:
        torch.set_num_threads(old)


def time_to(curve: list[tuple[float, float]], target: float) -> float:
    """First time at which ``curve`` (``(seconds, accuracy)`` pairs) reaches ``target`` (nan)."""
    for seconds, acc in curve:
        if acc >= target:
            return seconds
    return float("nan")


def default_network(
    sizes: list[int],
    solver: str,
    rows: int,
    *,
    activation: str | None = None,
    dtype: Any = "float64",
) -> Any:
    """Return the network the estimators build to train ``solver`` on ``rows`` rows.

    ``cvx_lifted.defaults``: ``relu_fenchel`` (or ``activation``), the ``simplex_xent`` head, and
    the λ and ρ of the estimators' ``lam="auto"`` and ``rho="auto"``.
    """
    from cvx_lifted import LiftedNetwork, defaults

    return LiftedNetwork(
        sizes,
        activation=activation or defaults.ACTIVATION,
        output=defaults.CLASSIFIER_HEAD,
        lam=defaults.auto_lam(solver, len(sizes) - 2),
        rho=defaults.auto_rho(solver, rows),
        dtype=dtype,
    )


def lifted_to_accuracy(
    X: np.ndarray,
    Y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    hidden: int | Sequence[int],
    sweeps: int,
    blas_threads: int | str,
    seed: int,
    dtype: str = "float64",
    budget: float = float("inf"),
    fit_kwargs: dict[str, Any] | None = None,
) -> tuple[list[tuple[float, float]], Any]:
    """Fit the default lifted network sweep by sweep; ``(seconds, test accuracy)`` per sweep.

    The network is the default classifier's (``cvx_lifted.defaults``: ``relu_fenchel``,
    ``simplex_xent``, the λ and ρ of ``lam="auto"`` and ``rho="auto"`` for the solver in
    ``fit_kwargs`` and these rows) with hidden layers of ``hidden`` units. The time is that
    of ``fit`` (objective evaluations included), minus the time of the accuracy evaluations,
    which a callback makes after every sweep.
    """
    solver = (fit_kwargs or {}).get("solver", "bcd")  # LiftedNetwork.fit's default
    sizes = [X.shape[1], *widths(hidden), Y.shape[1]]
    net = default_network(sizes, solver, X.shape[0], dtype=dtype)
    Xv = np.asarray(X_test, dtype=dtype)
    curve: list[tuple[float, float]] = []
    excluded = [0.0]
    t_start = [0.0]

    def callback(sweep: int, result: Any) -> bool:
        t0 = time.perf_counter()
        acc = float((net.predict(Xv).argmax(1) == y_test).mean())
        now = time.perf_counter()
        curve.append((now - t_start[0] - excluded[0], acc))
        excluded[0] += time.perf_counter() - t0
        return curve[-1][0] > budget

    kwargs = {"tol": 0.0, "random_state": seed, "blas_threads": blas_threads}
    kwargs.update(fit_kwargs or {})
    t_start[0] = time.perf_counter()
    result = net.fit(X, Y, max_iter=sweeps, callback=callback, **kwargs)
    return curve, result


def median_ratio(pairs: list[tuple[float, float]]) -> float:
    """Median of ``a / b`` over pairs measured side by side."""
    vals = [a / b for a, b in pairs if b > 0 and a == a and b == b]
    return float(np.median(vals)) if vals else float("nan")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """``(seconds, result)`` of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out
