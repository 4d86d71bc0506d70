# SPDX-License-Identifier: Apache-2.0
"""Time to a test accuracy: the default lifted classifier against float32 PyTorch Adam.

On MNIST-10k (8,000 training / 2,000 test digits) and Fashion-MNIST (60,000 / 10,000), with one
hidden layer of 300 units (``--hidden 300``; ``--hidden 300 100`` for two hidden layers, the same
for every method):

* **lifted**: the default network (``cvx_lifted.defaults``: ``relu_fenchel``, ``simplex_xent``,
  lam 1, rho 1e-3, float64) fitted sweep by sweep (``tol=0``), test accuracy after every sweep;
* **minibatch**: the same network trained by mini-batch BCD (``fit(solver="minibatch")``,
  its defaults: ``cvx_lifted.defaults`` batch size, prox and momentum, and the estimators'
  ``lam="auto"`` and ``rho="auto"``: λ = 3 for the hidden layer, ρ = 1e-3 on MNIST-10k and
  2.5e-4 on Fashion-MNIST's 60,000 rows), test accuracy after every epoch;
* **Adam**: the ReLU MLP of the same widths (784-300-10), float32, Adam lr 1e-3, batch 100,
  test accuracy after every epoch.

Inputs: the pixels as loaded, in [0, 1] (``--scale unit``, the default), or standardised by the
training rows' mean and standard deviation (``--scale standardize``, scikit-learn's
``StandardScaler``), the same inputs for every method.

Both clocks count training only: the accuracy evaluations are excluded (the lifted clock includes
everything ``fit`` does, also its objective evaluations after every sweep). Each configuration
runs at thread setting ``1`` (``blas_threads=1``, one torch thread) and ``all`` (``"auto"``, all
cores for torch). Reported: the seconds to reach each target accuracy and their ratio
lifted / Adam, and the best accuracy within the budget.

Run from the repository root::

    CVX_LIFTED_DATA=../shared/data PYTHONPATH=. python benchmarks/bench_accuracy.py --quick
    CVX_LIFTED_DATA=../shared/data PYTHONPATH=. python benchmarks/bench_accuracy.py
    CVX_LIFTED_DATA=../shared/data PYTHONPATH=. python benchmarks/bench_accuracy.py \
        --hidden 300 100 --threads 1 --out benchmarks/results/bench_accuracy_deep.json

Writes ``benchmarks/results/bench_accuracy.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from _speed import fresh_blas_env

if __name__ == "__main__":
    REMOVED_ENV = fresh_blas_env("--keep-blas-env" in sys.argv)

import numpy as np  # noqa: E402 - after the BLAS environment is settled
from _common import fmt_table, machine_info, write_json  # noqa: E402
from _speed import (  # noqa: E402
    adam_to_accuracy,
    blas_kernel,
    blas_line,
    lifted_to_accuracy,
    scrub,
    thread_settings,
    time_to,
)

TARGETS = {"mnist-10k": (0.90, 0.93, 0.95), "fashion-mnist": (0.80, 0.84, 0.86)}
METHODS = ("lifted", "minibatch", "adam")
ADAM_EPOCHS = 17  # the reference: the wall time to Adam's accuracy after 17 epochs


def load(name: str, rows: int | None, data: str | None, scale: str) -> tuple[np.ndarray, ...]:
    from cvx_lifted.datasets import load_dataset

    X, y, Xt, yt = load_dataset(name, path=data, dtype=np.float64)
    if rows:
        X, y = X[:rows], y[:rows]
    if scale == "standardize":
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(X)
        X, Xt = scaler.transform(X), scaler.transform(Xt)
    Y = np.eye(int(y.max()) + 1)[y]
    return X, Y, y, Xt, np.asarray(yt)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="MNIST-10k only, 5 sweeps / epochs")
    p.add_argument("--datasets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    p.add_argument("--threads", nargs="+", default=["1", "all"], choices=["1", "all"])
    p.add_argument("--sweeps", type=int, default=20, help="most lifted sweeps (default 20)")
    p.add_argument("--epochs", type=int, default=20, help="most Adam epochs (default 20)")
    p.add_argument("--budget", type=float, default=float("inf"), help="seconds per run")
    p.add_argument("--rows", type=int, default=None, help="training rows (default all)")
    p.add_argument(
        "--hidden", type=int, nargs="+", default=[300], help="hidden widths (default 300)"
    )
    p.add_argument(
        "--scale", choices=("unit", "standardize"), default="unit",
        help="inputs as loaded in [0, 1], or standardised (default unit)",
    )  # fmt: skip
    p.add_argument("--weight-max-iter", type=int, default=None, help="BCD weight_max_iter")
    p.add_argument(
        "--methods", nargs="+", default=list(METHODS), choices=list(METHODS),
        help="what to time (default all)",
    )  # fmt: skip
    p.add_argument("--keep-blas-env", action="store_true", help="keep OPENBLAS_CORETYPE/_L2_SIZE")
    p.add_argument("--data", default=None, help="data folder (default $CVX_LIFTED_DATA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.sweeps, args.epochs = ["mnist-10k"], 5, 5
    machine = scrub(machine_info())
    machine["blas_env_removed"] = REMOVED_ENV if __name__ == "__main__" else None
    t_total = time.perf_counter()
    runs: list[dict[str, Any]] = []
    fit_kwargs = {"weight_max_iter": args.weight_max_iter} if args.weight_max_iter else {}
    for name in args.datasets:
        X, Y, y, Xt, yt = load(name, args.rows, args.data, args.scale)
        for k, setting in enumerate(args.threads):
            blas, torch_threads = thread_settings(setting)
            order = args.methods if k % 2 == 0 else args.methods[::-1]
            for method in order:
                load_start = os.getloadavg()[0]
                if method in ("lifted", "minibatch"):
                    kwargs = fit_kwargs if method == "lifted" else {"solver": "minibatch"}
                    steps = args.sweeps if method == "lifted" else args.epochs
                    curve, _ = lifted_to_accuracy(
                        X, Y, Xt, yt, hidden=args.hidden, sweeps=steps, blas_threads=blas,
                        seed=args.seed, budget=args.budget, fit_kwargs=kwargs,
                    )  # fmt: skip
                else:
                    curve = adam_to_accuracy(
                        X, y, Xt, yt, epochs=args.epochs, threads=torch_threads, seed=args.seed,
                        hidden=args.hidden, budget=args.budget,
                    )  # fmt: skip
                run = {
                    "dataset": name,
                    "threads": setting,
                    "method": method,
                    "curve": curve,
                    "load_start": load_start,
                    "load_end": os.getloadavg()[0],
                }
                runs.append(run)
                best = max(a for _, a in curve)
                print(
                    f"  {name} threads={setting} {method}: {len(curve)} steps, "
                    f"{curve[-1][0]:.1f}s, best test accuracy {best:.4f}",
                    flush=True,
                )
    rows = []
    summary = []
    lifted = [m for m in args.methods if m != "adam"]
    for name in args.datasets:
        for setting in args.threads:
            got = {r["method"]: r for r in runs if (r["dataset"], r["threads"]) == (name, setting)}
            ada = got.get("adam")
            targets: list[float | str] = list(TARGETS[name])
            if ada is not None and len(ada["curve"]) >= ADAM_EPOCHS:
                targets.append(f"Adam@{ADAM_EPOCHS}")  # Adam's accuracy after 17 epochs
            for target in targets:
                acc = ada["curve"][ADAM_EPOCHS - 1][1] if isinstance(target, str) else target
                ta = time_to(ada["curve"], acc) if ada is not None else float("nan")
                entry: dict[str, Any] = {"dataset": name, "threads": setting, "target": target}
                entry.update({"accuracy": acc, "adam_s": ta})
                row: list[Any] = [name, setting, target if isinstance(target, str) else acc]
                for method in lifted:
                    tl = time_to(got[method]["curve"], acc) if method in got else float("nan")
                    entry[f"{method}_s"], entry[f"{method}_ratio"] = tl, tl / ta
                    row += [tl, tl / ta]
                summary.append(entry)
                rows.append([*row, ta])
            best = [max(a for _, a in got[m]["curve"]) if m in got else "" for m in lifted]
            rows.append(
                [name, setting, "best", *[x for b in best for x in (b, "")],
                 max(a for _, a in ada["curve"]) if ada is not None else ""]
            )  # fmt: skip
    print()
    print(
        f"bench_accuracy: seconds of training to a test accuracy (lifted: {args.sweeps} sweeps at "
        f"most; minibatch and Adam: {args.epochs} epochs at most; 'best': best accuracy "
        f"reached; Adam@{ADAM_EPOCHS}: Adam's accuracy after {ADAM_EPOCHS} epochs; hidden "
        f"widths {'-'.join(map(str, args.hidden))}; inputs {args.scale}); BLAS "
        f"{blas_line()}"
    )
    headers = ["data", "threads", "target"]
    headers += [h for m in lifted for h in (f"{m} s", f"{m}/Adam")] + ["Adam f32 s"]
    print(fmt_table(headers, rows))
    payload = {
        "benchmark": "bench_accuracy",
        "mode": "quick" if args.quick else "full",
        "args": vars(args),
        "blas": blas_kernel(),
        "summary": summary,
        "runs": runs,
        "total_seconds": time.perf_counter() - t_total,
        "machine": machine,
    }
    path = write_json("bench_accuracy", payload, args.out)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
