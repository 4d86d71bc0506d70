# SPDX-License-Identifier: Apache-2.0
"""One default BCD sweep on Fashion-MNIST vs a float32 PyTorch Adam epoch and the products it needs.

The network is the default classifier's with one hidden layer of 300 units (784-300-10,
``relu_fenchel``, ``simplex_xent``, ``cvx_lifted.defaults``, the λ and ρ of the estimators'
``lam="auto"`` and ``rho="auto"``: 1 and 1e-3 for full-batch BCD), trained with
``LiftedNetwork(...).fit(X, Y, max_iter=3, tol=0, blas_threads=...)`` on the 60,000 Fashion-MNIST
training rows, in float64 (the default) and float32. Block times are the medians over the sweeps
after the first in ``history.seconds`` (sweep 1 also factors the input Gram, makes the float32
copy of the data and the first image, once per fit; it is reported apart). A sweep's time
includes the evaluation of the objective that follows it (``objective``), as a user waits for it.

Each round measures, side by side and in rotating order, at each thread setting:

* ``1``: ``blas_threads=1`` and ``torch.set_num_threads(1)``;
* ``all``: ``blas_threads="auto"`` (one thread, and a measured choice of threads for the large
  products, ``cvx_lifted.threads``) and ``torch.set_num_threads(cores)``;

(i) the fit; (ii) one epoch of PyTorch Adam (lr 1e-3, batch 100, 784-300-10, ReLU, softmax
cross-entropy) in float32 -- the reference -- and in float64 (a side column); (iii) the products a
sweep cannot avoid, in float32 on the fit's own states: ``X0ᵀX1`` and ``X0 W0ᵀ`` (a gradient and an
image over the input, 60,000 x 784 x 300 each), ``X1ᵀX1`` (the Gram of the hidden state), ``X1ᵀX2``
and ``X1 W1ᵀ``; at ``all``, each product's time is the better of 1 and all cores.

At ``all``, the Adam reference of each round is the faster of its one-thread and all-core
epochs: PyTorch's spinning OpenMP threads can make an all-core epoch many times slower on a
busy machine, and a user would run the faster setting.

The estimators' default, ``solver="auto"``, trains mini-batch BCD on data this size (from
``defaults.MINIBATCH_ROWS`` rows): each round therefore also times four epochs of
``fit(solver="minibatch")`` on the same network with the estimators' ``lam="auto"`` (3 on the
hidden layer), batch 500, and reports an epoch after the first two (the median, with the
objective after it) against the same Adam epoch; the first epoch also forms the batches' kernel
matrices and the second their spectral bounds, which the later ones reuse: both are reported
beside it, and so is the whole fit's time against as many Adam epochs.

Reported: sweep / float32 Adam epoch (target <= 1, at both settings), sweep / float64 epoch,
sweep / unavoidable products (target <= 3), medians over rounds of per-round ratios, and the peak
memory of a default fit in a fresh process (target: extra peak <= 2.5x the data, X and Y, in the
fit's dtype). The BLAS kernel in use is printed and saved (threadpoolctl); ``OPENBLAS_CORETYPE``
and ``OPENBLAS_L2_SIZE`` are removed for this process (``--keep-blas-env`` keeps them).

Run from the repository root::

    CVX_LIFTED_DATA=../shared/data PYTHONPATH=. python benchmarks/bench_sweep.py --quick
    CVX_LIFTED_DATA=../shared/data PYTHONPATH=. python benchmarks/bench_sweep.py

Writes ``benchmarks/results/bench_sweep.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

from _speed import fresh_blas_env

if __name__ == "__main__":
    REMOVED_ENV = fresh_blas_env("--keep-blas-env" in sys.argv)

import numpy as np  # noqa: E402 - after the BLAS environment is settled
from _common import REPO, fmt_table, machine_info, median, timed, verdict, write_json  # noqa: E402
from _speed import (  # noqa: E402
    adam_epoch_seconds,
    blas_kernel,
    blas_line,
    cores,
    default_network,
    scrub,
    thread_settings,
)

HIDDEN = 300
TARGET_EPOCH = 1.0
TARGET_FLOOR = 3.0
TARGET_MEMORY = 2.5


# ------------------------------------------------------------------------------------ data
def load_data(dtype: str, rows: int, data: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from cvx_lifted.datasets import load_dataset

    X, y, _, _ = load_dataset("fashion-mnist", path=data, dtype=np.dtype(dtype))
    X = np.ascontiguousarray(X[:rows], dtype=dtype)
    y = np.asarray(y[:rows])
    Y = np.zeros((X.shape[0], 10), dtype=dtype)
    Y[np.arange(X.shape[0]), y] = 1
    return X, Y, y


def run_fit(
    X: np.ndarray, Y: np.ndarray, args: argparse.Namespace, blas: int | str, solver: str = "bcd"
) -> Any:
    net = default_network(
        [X.shape[1], HIDDEN, 10], solver, X.shape[0], activation=args.activation, dtype=X.dtype
    )
    if solver == "minibatch":
        result = net.fit(
            X, Y, solver="minibatch", max_iter=args.epochs, tol=0, random_state=args.seed,
            blas_threads=blas,
        )  # fmt: skip
        return net, result
    kwargs: dict[str, Any] = {}
    if args.weight_max_iter:
        kwargs["weight_max_iter"] = args.weight_max_iter
    chosen: dict[str, Any] = {}

    def callback(sweep: int, result: Any) -> None:
        from cvx_lifted import threads

        chooser = threads.active_chooser()
        if chooser is not None:
            chosen.update(chooser.summary())

    result = net.fit(
        X, Y, max_iter=args.sweeps, tol=0, random_state=args.seed, blas_threads=blas,
        callback=callback, **kwargs,
    )  # fmt: skip
    result.chooser = chosen
    return net, result


def floor_products(
    X0: np.ndarray, X1: np.ndarray, X2: np.ndarray, W0: np.ndarray, W1: np.ndarray, n: int
) -> dict[str, float]:
    """Seconds of each product a sweep cannot avoid, in float32; the best of 1 and ``n`` threads."""
    from threadpoolctl import threadpool_limits

    f32 = [np.ascontiguousarray(a, dtype=np.float32) for a in (X0, X1, X2, W0, W1)]
    X0, X1, X2, W0, W1 = f32
    ops = {
        "X0'X1": lambda: X0.T @ X1,
        "X0 W0'": lambda: X0 @ W0.T,
        "X1'X1": lambda: X1.T @ X1,
        "X1'X2": lambda: X1.T @ X2,
        "X1 W1'": lambda: X1 @ W1.T,
    }
    out: dict[str, float] = {}
    for name, fn in ops.items():
        best = float("inf")
        for threads in sorted({1, n}):
            with threadpool_limits(threads, user_api="blas"):
                fn()  # warm (threads, pages)
                best = min(best, min(timed(fn)[0] for _ in range(2)))
        out[name] = best
    out["sum"] = float(sum(out[k] for k in ops))
    return out


# ------------------------------------------------------------------------------------ memory
def _rss_now_kb() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def memory_child(args: argparse.Namespace) -> None:
    """Fresh process: load the saved arrays, fit the default network, print the peak RSS."""
    import cvx_lifted  # noqa: F401 - the import belongs to the baseline

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    X = np.load(os.path.join(args.child_dir, f"X_{args.child_dtype}.npy"))
    Y = np.load(os.path.join(args.child_dir, f"Y_{args.child_dtype}.npy"))
    load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    run_fit(X, Y, args, "auto", args.child_solver)
    fit_seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    data_bytes = X.nbytes + Y.nbytes
    print(
        json.dumps(
            {
                "dtype": X.dtype.name,
                "solver": args.child_solver,
                "rows": int(X.shape[0]),
                "fit_seconds": fit_seconds,
                "maxrss_after_imports_kb": base,
                "maxrss_after_load_kb": load_peak,
                "rss_after_load_kb": _rss_now_kb(),
                "maxrss_end_kb": peak,
                "fit_extra_peak_kb": peak - load_peak,
                "data_bytes": data_bytes,
                "extra_over_data": (peak - load_peak) * 1024 / data_bytes,
            }
        )
    )


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_memory(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Peak memory per dtype, each in a fresh process started before this one loads any data."""
    out = []
    with tempfile.TemporaryDirectory() as tmpdir:
        prep = [sys.executable, "-c", _PREP, tmpdir, str(args.rows), args.data or "", *args.dtypes]
        proc = subprocess.run(prep, capture_output=True, text=True, env=_child_env(), check=False)
        if proc.returncode != 0:
            return [{"error": "data preparation failed: " + proc.stderr[-2000:]}]
        for solver in ("bcd", "minibatch"):
            for dt in args.dtypes:
                cmd = [sys.executable, os.path.abspath(__file__), "--memory-child"]
                cmd += ["--child-dtype", dt, "--child-dir", tmpdir, "--child-solver", solver]
                cmd += ["--sweeps", str(args.sweeps), "--epochs", str(args.epochs)]
                cmd += ["--seed", str(args.seed), "--activation", args.activation]
                cmd += ["--keep-blas-env"]
                if args.weight_max_iter:
                    cmd += ["--weight-max-iter", str(args.weight_max_iter)]
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, env=_child_env(), check=False
                )
                if proc.returncode != 0:
                    out.append({"dtype": dt, "solver": solver, "error": proc.stderr[-2000:]})
                    print(f"  memory {solver} {dt}: child failed\n{proc.stderr[-2000:]}")
                    continue
                mem = json.loads(proc.stdout.strip().splitlines()[-1])
                out.append(mem)
                extra = mem["extra_over_data"]
                print(f"  memory {solver} {dt}: extra peak {extra:.2f}x the data", flush=True)
    return out


_PREP = """
import sys, numpy as np
sys.path.insert(0, 'benchmarks')
from bench_sweep import load_data
d, rows, data = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None
for dt in sys.argv[4:]:
    X, Y, _ = load_data(dt, rows, data)
    np.save(f'{d}/X_{dt}.npy', X)
    np.save(f'{d}/Y_{dt}.npy', Y)
"""


# ------------------------------------------------------------------------------------ main
def measure_round(
    r: int, args: argparse.Namespace, data: dict[str, Any], use_torch: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One round: every (thread setting, dtype) fit, its floor products and the Adam epochs."""
    from threadpoolctl import threadpool_limits

    records, epochs = [], []
    settings = args.threads if r % 2 == 0 else args.threads[::-1]
    for setting in settings:
        blas, torch_threads = thread_settings(setting)
        n = cores() if setting == "all" else 1
        with threadpool_limits(n, user_api="blas"):
            if use_torch and r % 2 == 0:
                epochs.append(_epochs(r, setting, torch_threads, data, args))
            for dt in args.dtypes if r % 2 == 0 else args.dtypes[::-1]:
                X, Y, _ = data[dt]
                t_fit, (net, result) = timed(lambda X=X, Y=Y, blas=blas: run_fit(X, Y, args, blas))
                hist = result.history
                floor = floor_products(
                    X, result.states[0], result.states[1], net.weights[0], net.weights[1], n
                )
                later = hist.seconds[2:] or hist.seconds[-1:]  # sweeps after the first
                _, (_, mb) = timed(
                    lambda X=X, Y=Y, blas=blas: run_fit(X, Y, args, blas, "minibatch")
                )
                # an epoch after the first two: the first also forms the batches' kernel
                # matrices, the second their spectral bounds
                per_epoch = [x["epoch"] + x["objective"] for x in mb.history.seconds[1:]]
                epoch_s = median(per_epoch[2:] or per_epoch[1:] or per_epoch)
                rec = {
                    "round": r,
                    "threads": setting,
                    "dtype": dt,
                    "fit_seconds": t_fit,
                    "sweep_seconds": {k: median([x[k] for x in later]) for k in later[0]},
                    "all_sweep_seconds": hist.seconds[1:],
                    "sweep1_seconds": hist.seconds[1],
                    "residuals": hist.residuals[-1],
                    "objective": hist.objective,
                    "floor": floor,
                    "epoch_seconds": epoch_s,
                    "epoch1_seconds": per_epoch[0],
                    "epoch2_seconds": per_epoch[1] if len(per_epoch) > 1 else np.nan,
                    "epochs_seconds": per_epoch,
                    "load": os.getloadavg()[0],
                    "chooser": result.chooser,
                }
                records.append(rec)
                blocks = ", ".join(
                    f"{k} {v:.2f}" for k, v in rec["sweep_seconds"].items() if k != "sweep"
                )
                sweep_s = rec["sweep_seconds"]["sweep"]
                print(
                    f"  round {r} threads={setting} {dt}: sweep {sweep_s:.2f}s "
                    f"({blocks}); floor {floor['sum']:.2f}s; fit {t_fit:.1f}s; "
                    f"mini-batch epoch {epoch_s:.2f}s; "
                    f"load {rec['load']:.2f}",
                    flush=True,
                )
                for kind, entry in result.chooser.items():
                    print(f"    chooser {kind}: calls {entry['calls']}, speed {entry['speed']}")
            if use_torch and r % 2 == 1:
                epochs.append(_epochs(r, setting, torch_threads, data, args))
    return records, epochs


def _epochs(
    r: int, setting: str, torch_threads: int, data: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    X, _, y = data[args.dtypes[0]]
    out: dict[str, Any] = {"round": r, "threads": setting}
    for tdt in ("float32", "float64"):
        out[tdt] = adam_epoch_seconds(X, y, tdt, torch_threads, args.seed + r, HIDDEN)
    print(
        f"  round {r} threads={setting}: Adam epoch float32 {out['float32']:.2f}s, "
        f"float64 {out['float64']:.2f}s",
        flush=True,
    )
    return out


def summarise(
    records: list[dict[str, Any]], epochs: list[dict[str, Any]], args: argparse.Namespace
) -> list[dict[str, Any]]:
    summary = []
    for setting in args.threads:
        for dt in args.dtypes:
            recs = [x for x in records if x["threads"] == setting and x["dtype"] == dt]
            s: dict[str, Any] = {"threads": setting, "dtype": dt, "rounds": len(recs)}
            names = sorted({k for x in recs for k in x["sweep_seconds"]})
            s["blocks"] = {
                k: median([x["sweep_seconds"].get(k, np.nan) for x in recs]) for k in names
            }
            s["sweep1"] = median([x["sweep1_seconds"]["sweep"] for x in recs])
            s["floor"] = {k: median([x["floor"][k] for x in recs]) for k in recs[0]["floor"]}
            s["sweep_over_floor"] = median(
                [x["sweep_seconds"]["sweep"] / x["floor"]["sum"] for x in recs]
            )
            eps = {e["round"]: e for e in epochs if e["threads"] == setting}
            if setting == "all":  # the faster of Adam's settings in each round: never flatter us
                ones = {e["round"]: e for e in epochs if e["threads"] == "1"}
                eps = {
                    r: {t: min(e[t], ones[r][t]) if r in ones else e[t] for t in e}
                    for r, e in eps.items()
                }
            if eps:
                for tdt in ("float32", "float64"):
                    s[f"adam_{tdt}"] = median([e[tdt] for e in eps.values()])
                    s[f"sweep_over_adam_{tdt}"] = median(
                        [x["sweep_seconds"]["sweep"] / eps[x["round"]][tdt] for x in recs]
                    )
                s["epoch_over_adam_float32"] = median(
                    [x["epoch_seconds"] / eps[x["round"]]["float32"] for x in recs]
                )
                s["fit_over_adam_epochs_float32"] = median(
                    [
                        sum(x["epochs_seconds"])
                        / (len(x["epochs_seconds"]) * eps[x["round"]]["float32"])
                        for x in recs
                    ]
                )
            s["epoch"] = median([x["epoch_seconds"] for x in recs])
            s["epoch1"] = median([x["epoch1_seconds"] for x in recs])
            s["epoch2"] = median([x["epoch2_seconds"] for x in recs])
            s["epochs_total"] = median([sum(x["epochs_seconds"]) for x in recs])
            s["residuals"] = recs[-1]["residuals"]
            summary.append(s)
    return summary


def print_tables(summary: list[dict[str, Any]], memory: list[dict[str, Any]], args: Any) -> None:
    print()
    print(
        f"bench_sweep: 784-{HIDDEN}-10 {args.activation}/simplex_xent (the default classifier), "
        f"{args.rows} rows, sweeps 2-{args.sweeps} of fit(max_iter={args.sweeps}), medians over "
        f"{args.rounds} round(s), seconds; BLAS {blas_line()}"
    )
    blocks = ["W0", "W1", "X1", "output", "objective"]
    rows = []
    for s in summary:
        adam = s.get("sweep_over_adam_float32", np.nan)
        rows.append(
            [
                s["threads"],
                s["dtype"],
                *[s["blocks"].get(b, np.nan) for b in blocks],
                s["blocks"]["sweep"],
                s["sweep1"],
                s.get("adam_float32", np.nan),
                adam,
                verdict(adam <= TARGET_EPOCH if adam == adam else None),
                s.get("adam_float64", np.nan),
                s.get("sweep_over_adam_float64", np.nan),
                s["floor"]["sum"],
                s["sweep_over_floor"],
                verdict(s["sweep_over_floor"] <= TARGET_FLOOR),
            ]
        )
    headers = ["threads", "dtype", *blocks, "sweep", "sweep 1", "Adam f32", "sweep/Adam f32"]
    headers += [f"≤{TARGET_EPOCH:g}x", "Adam f64", "sweep/Adam f64", "floor", "sweep/floor"]
    headers += [f"≤{TARGET_FLOOR:g}x"]
    print(fmt_table(headers, rows))
    print()
    print(
        "one mini-batch epoch after the first two (solver='auto' on these rows; lam 3 on the "
        "hidden layer, batch 500; 'epoch 1': the first, which also forms the kernel matrices, "
        "'epoch 2' the second, which also forms the spectral bounds; 'all': every epoch of the "
        "fit, and their ratio to as many Adam epochs):"
    )
    print(
        fmt_table(
            [
                "threads",
                "dtype",
                "epoch",
                "epoch 1",
                "epoch 2",
                "all",
                "Adam f32",
                "epoch/Adam f32",
                f"≤{TARGET_EPOCH:g}x",
                "all/Adam f32",
            ],
            [
                [
                    s["threads"],
                    s["dtype"],
                    s["epoch"],
                    s["epoch1"],
                    s["epoch2"],
                    s["epochs_total"],
                    s.get("adam_float32", np.nan),
                    s.get("epoch_over_adam_float32", np.nan),
                    verdict(s["epoch_over_adam_float32"] <= TARGET_EPOCH)
                    if "epoch_over_adam_float32" in s
                    else "",
                    s.get("fit_over_adam_epochs_float32", np.nan),
                ]
                for s in summary
            ],
        )
    )
    print()
    names = list(summary[0]["floor"]) if summary else []
    print("unavoidable products (float32, seconds; at 'all' the better of 1 and all cores):")
    print(
        fmt_table(
            ["threads", "dtype", *names],
            [[s["threads"], s["dtype"], *[s["floor"][k] for k in names]] for s in summary],
        )
    )
    good = [m for m in memory if "error" not in m]
    if good:
        print()
        print(
            "peak memory of a default fit (fresh process; extra = peak after fit - peak after load)"
        )
        print(
            fmt_table(
                ["solver", "dtype", "data MB", "peak MB", "extra MB", "extra / data"]
                + [f"≤{TARGET_MEMORY:g}x"],
                [
                    [
                        m["solver"],
                        m["dtype"],
                        m["data_bytes"] / 2**20,
                        m["maxrss_end_kb"] / 1024,
                        m["fit_extra_peak_kb"] / 1024,
                        m["extra_over_data"],
                        verdict(m["extra_over_data"] <= TARGET_MEMORY),
                    ]
                    for m in good
                ],
            )
        )


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="5,000 rows, 1 round, no memory")
    p.add_argument("--rows", type=int, default=None, help="training rows (default 60000)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3)")
    p.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    p.add_argument("--threads", nargs="+", default=["1", "all"], choices=["1", "all"])
    p.add_argument("--activation", default="relu_fenchel")
    p.add_argument(
        "--sweeps", type=int, default=3, help="fit(max_iter=...); sweeps 2.. are reported"
    )
    p.add_argument("--epochs", type=int, default=4, help="mini-batch fit(max_iter=...)")
    p.add_argument("--weight-max-iter", type=int, default=None, help="BCD weight_max_iter")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch epochs")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--keep-blas-env", action="store_true", help="keep OPENBLAS_CORETYPE/_L2_SIZE")
    p.add_argument("--data", default=None, help="Fashion-MNIST folder (default $CVX_LIFTED_DATA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="results JSON (default benchmarks/results/...)")
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child-dtype", default="float64", help=argparse.SUPPRESS)
    p.add_argument("--child-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-solver", default="bcd", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        memory_child(args)
        return None
    args.rows = args.rows or (5000 if args.quick else 60000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    machine = scrub(machine_info())
    machine["blas_env_removed"] = REMOVED_ENV if __name__ == "__main__" else None
    t_total = time.perf_counter()
    memory = [] if (args.no_memory or args.quick) else run_memory(args)
    data = {dt: load_data(dt, args.rows, args.data) for dt in args.dtypes}
    use_torch = not args.no_torch
    records: list[dict[str, Any]] = []
    epochs: list[dict[str, Any]] = []
    for r in range(args.rounds):
        recs, eps = measure_round(r, args, data, use_torch)
        records += recs
        epochs += eps
    summary = summarise(records, epochs, args)
    print_tables(summary, memory, args)
    payload = {
        "benchmark": "bench_sweep",
        "mode": "quick" if args.quick else "full",
        "args": {k: v for k, v in vars(args).items() if not k.startswith("child")},
        "targets": {
            "sweep_over_adam_float32_at_most": TARGET_EPOCH,
            "sweep_over_floor_at_most": TARGET_FLOOR,
            "extra_memory_over_data_at_most": TARGET_MEMORY,
        },
        "blas": blas_kernel(),
        "summary": summary,
        "records": records,
        "adam_epochs": epochs,
        "memory": memory,
        "total_seconds": time.perf_counter() - t_total,
        "machine": machine,
    }
    path = write_json("bench_sweep", payload, args.out)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
