# SPDX-License-Identifier: Apache-2.0
"""The default fit on a busy machine: its time with one concurrent CPU-bound process vs without.

The fit is the default classifier's network with one hidden layer of 300 units (784-300-10,
``relu_fenchel``, ``simplex_xent``, float64) on the 60,000 Fashion-MNIST training rows,
``fit(max_iter=--sweeps, tol=0)``, trained the way the estimators' ``solver="auto"`` trains
these rows (mini-batch BCD from 5,000 rows, with ``lam="auto"``; ``--solver`` picks one), with
``blas_threads="auto"`` (the default: one BLAS thread, a measured thread count for the large
products) and, for comparison, ``blas_threads=1`` and
``blas_threads=<all cores>`` (OpenBLAS threads everywhere, the behaviour a size threshold gave).
Each round runs every setting alone and then next to a competitor: another process that keeps one
core busy (``--competitor spin``: a Python loop; ``gemm``: single-threaded numpy products), started
before the fit and stopped after it. Rounds alternate the order.

Reported: the median fit time per setting and condition, the ratio busy / quiet (target: at most
1.5 for ``"auto"``), and the thread counts the chooser picked for the large products.

Run from the repository root::

    CVX_LIFTED_DATA=../shared/data PYTHONPATH=. python benchmarks/bench_load.py --quick
    CVX_LIFTED_DATA=../shared/data PYTHONPATH=. python benchmarks/bench_load.py

Writes ``benchmarks/results/bench_load.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

from _speed import fresh_blas_env

if __name__ == "__main__":
    REMOVED_ENV = fresh_blas_env("--keep-blas-env" in sys.argv)

import numpy as np  # noqa: E402 - after the BLAS environment is settled
from _common import fmt_table, machine_info, median, verdict, write_json  # noqa: E402
from _speed import blas_kernel, blas_line, cores, default_network, scrub  # noqa: E402

TARGET = 1.5
_SPIN = "while True:\n    pass\n"
_GEMM = (
    "import os\nos.environ['OPENBLAS_NUM_THREADS'] = '1'\nimport numpy as np\n"
    "a = np.random.rand(1500, 1500)\nwhile True:\n    a @ a\n"
)


def fit_once(X: np.ndarray, Y: np.ndarray, blas: int | str, args: argparse.Namespace) -> Any:
    from cvx_lifted import threads

    net = default_network([X.shape[1], args.hidden, Y.shape[1]], args.solver, X.shape[0])
    chosen: dict[str, Any] = {}

    def callback(sweep: int, result: Any) -> None:
        chooser = threads.active_chooser()
        if chooser is not None:
            chosen.update(chooser.summary())

    kwargs: dict[str, Any] = {"solver": args.solver}
    if args.weight_max_iter and args.solver == "bcd":
        kwargs["weight_max_iter"] = args.weight_max_iter
    t0 = time.perf_counter()
    result = net.fit(
        X, Y, max_iter=args.sweeps, tol=0, random_state=args.seed, blas_threads=blas,
        callback=callback, **kwargs,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    return seconds, result, chosen


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="10,000 rows, 1 round, 2 sweeps")
    p.add_argument("--rows", type=int, default=None, help="training rows (default 60000)")
    p.add_argument("--rounds", type=int, default=None, help="rounds (default 3)")
    p.add_argument("--sweeps", type=int, default=3, help="fit(max_iter=...) (default 3)")
    p.add_argument("--hidden", type=int, default=300)
    p.add_argument("--settings", nargs="+", default=["auto", "1", "all"])
    p.add_argument("--competitor", choices=["spin", "gemm"], default="spin")
    p.add_argument("--weight-max-iter", type=int, default=None, help="BCD weight_max_iter")
    p.add_argument(
        "--solver", choices=["bcd", "minibatch"], default=None,
        help="default: the estimators' solver='auto' choice for --rows (minibatch from 5,000)",
    )  # fmt: skip
    p.add_argument("--keep-blas-env", action="store_true", help="keep OPENBLAS_CORETYPE/_L2_SIZE")
    p.add_argument("--data", default=None, help="Fashion-MNIST folder (default $CVX_LIFTED_DATA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    args.rows = args.rows or (10000 if args.quick else 60000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.quick:
        args.sweeps = 2
    from cvx_lifted import defaults
    from cvx_lifted.datasets import load_dataset

    args.solver = args.solver or defaults.auto_solver(args.rows)

    machine = scrub(machine_info())
    machine["blas_env_removed"] = REMOVED_ENV if __name__ == "__main__" else None
    X, y, _, _ = load_dataset("fashion-mnist", path=args.data, dtype=np.float64)
    X, y = np.ascontiguousarray(X[: args.rows]), y[: args.rows]
    Y = np.eye(10)[y]
    script = _SPIN if args.competitor == "spin" else _GEMM
    records = []
    t_total = time.perf_counter()
    for r in range(args.rounds):
        conditions = ("quiet", "busy") if r % 2 == 0 else ("busy", "quiet")
        for setting in args.settings if r % 2 == 0 else args.settings[::-1]:
            blas: int | str = "auto" if setting == "auto" else cores() if setting == "all" else 1
            for condition in conditions:
                competitor = None
                if condition == "busy":
                    competitor = subprocess.Popen([sys.executable, "-c", script])
                    time.sleep(0.5)  # let it start
                try:
                    load = os.getloadavg()[0]
                    seconds, result, chosen = fit_once(X, Y, blas, args)
                finally:
                    if competitor is not None:
                        competitor.terminate()
                        competitor.wait()
                rec = {
                    "round": r,
                    "setting": setting,
                    "blas_threads": blas,
                    "condition": condition,
                    "fit_seconds": seconds,
                    "sweep_seconds": [
                        s["sweep"] if "sweep" in s else s["epoch"] + s["objective"]
                        for s in result.history.seconds[1:]
                    ],
                    "chooser": chosen,
                    "load_at_start": load,
                }
                records.append(rec)
                picks = {k: v["choice"] for k, v in chosen.items()}
                print(
                    f"  round {r} blas_threads={blas} {condition}: fit {seconds:.1f}s "
                    f"(sweeps {', '.join(f'{s:.2f}' for s in rec['sweep_seconds'])}), "
                    f"load {load:.2f}, chooser {picks}",
                    flush=True,
                )
    rows, summary = [], []
    for setting in args.settings:
        quiet = [x for x in records if x["setting"] == setting and x["condition"] == "quiet"]
        busy = [x for x in records if x["setting"] == setting and x["condition"] == "busy"]
        ratios = [
            b["fit_seconds"] / q["fit_seconds"]
            for q in quiet
            for b in busy
            if b["round"] == q["round"]
        ]
        s = {
            "setting": setting,
            "quiet_s": median([x["fit_seconds"] for x in quiet]),
            "busy_s": median([x["fit_seconds"] for x in busy]),
            "busy_over_quiet": median(ratios),
        }
        summary.append(s)
        ok = verdict(s["busy_over_quiet"] <= TARGET) if setting == "auto" else "-"
        rows.append([setting, s["quiet_s"], s["busy_s"], s["busy_over_quiet"], ok])
    print()
    print(
        f"bench_load: default fit ({args.solver}), {args.rows} Fashion-MNIST rows, "
        f"{args.sweeps} {'epochs' if args.solver == 'minibatch' else 'sweeps'}, "
        f"competitor '{args.competitor}', medians over {args.rounds} round(s); BLAS "
        f"{blas_line()}"
    )
    headers = ["blas_threads", "quiet s", "busy s", "busy/quiet", f"≤{TARGET:g}x (auto)"]
    print(fmt_table(headers, rows))
    payload = {
        "benchmark": "bench_load",
        "mode": "quick" if args.quick else "full",
        "args": vars(args),
        "blas": blas_kernel(),
        "summary": summary,
        "records": records,
        "total_seconds": time.perf_counter() - t_total,
        "machine": machine,
    }
    path = write_json("bench_load", payload, args.out)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
