# SPDX-License-Identifier: Apache-2.0
"""One fast-path BCD sweep on Fashion-MNIST vs the GEMMs it cannot avoid and a PyTorch epoch.

Network 784-300-10, hidden activation ``relu`` or ``relu_fenchel``, output ``simplex_xent``,
trained with ``LiftedNetwork(...).fit(X, Y, max_iter=2, tol=0, backend="numpy")`` on the
Fashion-MNIST training rows (60,000 by default), in float64 and float32. The time of each block
is read from ``history.seconds`` of **sweep 2** (sweep 1 also factors the input Gram, which is
computed once per fit and reported separately).

Measured in the same run, interleaved round by round with the fits:

(i) the matrix products a sweep cannot avoid, on the fit's own arrays and dtype: the Gram of
    the hidden state ``X1ᵀX1`` (W1 step), the cross products ``X0ᵀX1`` (W0 step) and ``X1ᵀX2``
    (W1 step), the layer products ``X0 W0ᵀ`` (pre-activation of the X1 step) and ``X1 W1ᵀ``
    (pre-activation of the output step); the input Gram ``X0ᵀX0`` is timed apart;
(ii) one epoch of PyTorch Adam (lr 1e-3, batch 100, 784-300-10 with ReLU and softmax
    cross-entropy, CPU) in float32 and in float64 on the same rows.

Reported: sweep / unavoidable-GEMM time (target <= 3) and sweep / Adam epoch (target <= 2, the
same dtype; the float32 epoch is shown too), medians over rounds of per-round ratios. Peak memory
(``ru_maxrss``) of a short fit is measured in a fresh subprocess per configuration.

BLAS and torch run on one thread (``--threads``). Run from the repository root::

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

import numpy as np
from _common import (
    REPO,
    fmt_table,
    machine_info,
    median,
    pin_threads,
    timed,
    verdict,
    write_json,
)

HIDDEN = 300
TARGET_GEMM = 3.0
TARGET_EPOCH = 2.0


# ------------------------------------------------------------------------------------ data
def load_data(dtype: Any, rows: int, data: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from cvx_lifted.datasets import load_dataset

    X, y, _, _ = load_dataset("fashion-mnist", path=data, dtype=dtype)
    X = np.ascontiguousarray(X[:rows], dtype=dtype)
    y = np.asarray(y[:rows])
    Y = np.zeros((X.shape[0], 10), dtype=dtype)
    Y[np.arange(X.shape[0]), y] = 1
    return X, Y, y


# ------------------------------------------------------------------------------------ lifted
def run_fit(X: np.ndarray, Y: np.ndarray, act: str, args: argparse.Namespace) -> Any:
    from cvx_lifted import LiftedNetwork

    net = LiftedNetwork(
        [X.shape[1], HIDDEN, 10],
        activation=act,
        output="simplex_xent",
        lam=args.lam,
        rho=args.rho,
        dtype=X.dtype,
    )
    result = net.fit(
        X,
        Y,
        max_iter=args.sweeps,
        tol=0,
        backend="numpy",
        random_state=args.seed,
        chunk_size=args.chunk_size,
    )
    return net, result


def gemm_set(
    X0: np.ndarray, X1: np.ndarray, X2: np.ndarray, W0: np.ndarray, W1: np.ndarray, reps: int
) -> dict[str, float]:
    """Median (over ``reps``) time of each product a sweep cannot avoid."""
    ops = {
        "X1'X1": lambda: X1.T @ X1,
        "X0'X1": lambda: X0.T @ X1,
        "X1'X2": lambda: X1.T @ X2,
        "X0 W0'": lambda: X0 @ W0.T,
        "X1 W1'": lambda: X1 @ W1.T,
    }
    out = {}
    for name, fn in ops.items():
        out[name] = median([timed(fn)[0] for _ in range(reps)])
    out["sum"] = float(sum(out[k] for k in ops))
    return out


# ------------------------------------------------------------------------------------ torch
def torch_epoch(X: np.ndarray, y: np.ndarray, dtype: Any, seed: int, batch: int = 100) -> float:
    """Seconds of one epoch of Adam on a 784-300-10 ReLU MLP (model built outside the timing)."""
    import torch

    tdtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    torch.manual_seed(seed)
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=dtype)).to(tdtype)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    model = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 10)
    ).to(tdtype)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    m = Xt.shape[0]

    def epoch() -> None:
        perm = torch.randperm(m)
        for s in range(0, m, batch):
            idx = perm[s : s + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()

    return timed(epoch)[0]


# ------------------------------------------------------------------------------------ memory
def _rss_now_kb() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _vm_hwm_kb() -> int:
    """Peak RSS of the current process image (``VmHWM``, reset at exec, unlike ru_maxrss)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def prep_child(args: argparse.Namespace) -> None:
    """Fresh process: load the rows in every dtype and save them as .npy for the memory children."""
    for dt in args.dtypes:
        X, Y, _ = load_data(np.dtype(dt), args.rows, args.data)
        np.save(os.path.join(args.child_dir, f"X_{dt}.npy"), X)
        np.save(os.path.join(args.child_dir, f"Y_{dt}.npy"), Y)


def memory_child(args: argparse.Namespace) -> None:
    """Run in a fresh process: load the saved arrays, fit briefly, print peak RSS as JSON."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    import cvx_lifted  # noqa: F401 - import cost belongs to the baseline

    base_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # the parent saved exactly the arrays to fit (.npy): loading them costs their size only,
    # unlike the IDX loader whose temporaries would set the peak for small row counts
    X = np.load(os.path.join(args.child_dir, f"X_{args.child_dtype}.npy"))
    Y = np.load(os.path.join(args.child_dir, f"Y_{args.child_dtype}.npy"))
    load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    load_now = _rss_now_kb()
    t0 = time.perf_counter()
    _, result = run_fit(X, Y, args.child_act, args)
    fit_seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "activation": args.child_act,
                "dtype": X.dtype.name,
                "rows": int(X.shape[0]),
                "sweeps": int(result.n_iter),
                "fit_seconds": fit_seconds,
                "maxrss_after_imports_kb": base_peak,
                "maxrss_after_load_kb": load_peak,
                "rss_after_load_kb": load_now,
                "maxrss_end_kb": peak,
                "fit_extra_peak_kb": peak - load_now,
                "vm_hwm_end_kb": _vm_hwm_kb(),
                "data_bytes": int(X.nbytes + Y.nbytes),
            }
        )
    )


def _child_env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    return env


def run_memory(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Peak memory of a short fit per configuration, each in a fresh process.

    Called first thing in ``main``: Linux carries the parent's peak RSS into ``ru_maxrss`` of a
    child across fork/exec, so the children must be started while the parent is still small
    (before it loads the data); the data reach them as .npy files written by a helper process.
    """
    memory: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmpdir:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--prep-child",
            "--child-dir",
            tmpdir,
            "--rows",
            str(args.rows),
            "--dtypes",
            *args.dtypes,
        ]
        if args.data:
            cmd += ["--data", args.data]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=_child_env(args), check=False
        )
        if proc.returncode != 0:
            return [{"error": "data preparation failed: " + proc.stderr[-2000:]}]
        for dt in args.dtypes:
            for act in args.memory_activations:
                mem = measure_memory(act, dt, args, tmpdir)
                memory.append(mem)
                if "error" in mem:
                    print(f"  memory {act} {dt}: child failed\n{mem['error']}")
                else:
                    print(
                        f"  memory {act} {dt}: peak {mem['maxrss_end_kb'] / 1024:.0f} MB",
                        flush=True,
                    )
    return memory


def measure_memory(act: str, dtype: str, args: argparse.Namespace, tmpdir: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--memory-child",
        "--child-act",
        act,
        "--child-dtype",
        dtype,
        "--child-dir",
        tmpdir,
        "--rows",
        str(args.rows),
        "--sweeps",
        str(args.sweeps),
        "--lam",
        str(args.lam),
        "--rho",
        str(args.rho),
        "--seed",
        str(args.seed),
        "--chunk-size",
        str(args.chunk_size),
        "--threads",
        str(args.threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_child_env(args), check=False)
    if proc.returncode != 0:
        return {"activation": act, "dtype": dtype, "error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="1,000 rows, 1 round (< 1 min on an idle machine; relu_fenchel dominates)",
    )
    p.add_argument("--rows", type=int, default=None, help="training rows (default 60000)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3)")
    p.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    p.add_argument("--activations", nargs="+", default=["relu", "relu_fenchel"])
    p.add_argument(
        "--sweeps",
        type=int,
        default=2,
        help="max_iter of each fit; the last sweep is reported (default 2)",
    )
    p.add_argument("--lam", type=float, default=1.0)
    p.add_argument("--rho", type=float, default=1e-3)
    p.add_argument("--chunk-size", type=int, default=8192, help="BCDSolver chunk_size")
    p.add_argument("--gemm-reps", type=int, default=3, help="repeats of each GEMM per round")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch epochs")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument(
        "--memory-activations",
        nargs="+",
        default=None,
        help="activations whose peak memory is measured (default: --activations; quick: relu)",
    )
    p.add_argument(
        "--data",
        default=None,
        help="folder with the Fashion-MNIST IDX files (default: $CVX_LIFTED_DATA)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="BLAS and torch threads (default 1)")
    p.add_argument("--out", default=None, help="results JSON (default benchmarks/results/...)")
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child-act", default="relu", help=argparse.SUPPRESS)
    p.add_argument("--child-dtype", default="float64", help=argparse.SUPPRESS)
    p.add_argument("--child-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--prep-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.rows = args.rows or (1000 if args.quick else 60000)
    if args.memory_child:
        memory_child(args)
        return None
    if args.prep_child:
        prep_child(args)
        return None
    if args.memory_activations is None:
        args.memory_activations = ["relu"] if args.quick else list(args.activations)
    rounds = args.rounds or (1 if args.quick else 3)
    use_torch = not args.no_torch
    machine = machine_info()
    t_total = time.perf_counter()
    memory = [] if args.no_memory else run_memory(args)

    data = {dt: load_data(np.dtype(dt), args.rows, args.data) for dt in args.dtypes}
    records: list[dict[str, Any]] = []  # one per (round, dtype, activation)
    extras: list[dict[str, Any]] = []  # one per (round, dtype): torch epochs, input Gram
    with pin_threads(args.threads):
        for r in range(rounds):
            for dt in args.dtypes if r % 2 == 0 else args.dtypes[::-1]:
                X, Y, y = data[dt]
                extra: dict[str, Any] = {"round": r, "dtype": dt}

                def do_torch(
                    X: np.ndarray = X,
                    y: np.ndarray = y,
                    extra: dict[str, Any] = extra,
                    r: int = r,
                    dt: str = dt,
                ) -> None:
                    if not use_torch:
                        return
                    for tdt in ("float32", "float64"):
                        extra[f"torch_epoch_{tdt}"] = torch_epoch(X, y, tdt, args.seed + r)
                    print(
                        f"  round {r} {dt}: torch epoch f32 {extra['torch_epoch_float32']:.2f}s"
                        f" f64 {extra['torch_epoch_float64']:.2f}s",
                        flush=True,
                    )

                if r % 2 == 0:
                    do_torch()
                extra["gram_X0"] = median(
                    [timed(lambda X=X: X.T @ X)[0] for _ in range(args.gemm_reps)]
                )
                acts = args.activations if r % 2 == 0 else args.activations[::-1]
                for act in acts:
                    t_fit, (net, result) = timed(lambda X=X, Y=Y, act=act: run_fit(X, Y, act, args))
                    hist = result.history
                    X1, X2 = result.states[0], result.states[1]
                    gemms = gemm_set(X, X1, X2, net.weights[0], net.weights[1], args.gemm_reps)
                    rec = {
                        "round": r,
                        "dtype": dt,
                        "activation": act,
                        "rows": int(X.shape[0]),
                        "n_iter": int(result.n_iter),
                        "stop_reason": result.stop_reason,
                        "fit_seconds": t_fit,
                        "sweep_seconds": hist.seconds[-1],
                        "sweep1_seconds": hist.seconds[1] if len(hist.seconds) > 1 else None,
                        "residuals": hist.residuals[-1],
                        "objective": hist.objective,
                        "paths": hist.paths,
                        "gemm_seconds": gemms,
                    }
                    records.append(rec)
                    sw = rec["sweep_seconds"]["sweep"]
                    print(
                        f"  round {r} {dt} {act}: sweep {sw:.2f}s "
                        f"({', '.join(f'{k} {v:.2f}' for k, v in sw_blocks(rec).items())}), "
                        f"GEMMs {gemms['sum']:.2f}s, fit {t_fit:.1f}s",
                        flush=True,
                    )
                if r % 2 == 1:
                    do_torch()
                extras.append(extra)

    # ------------------------------------------------------------------ ratios per round
    for rec in records:
        ex = next(e for e in extras if e["round"] == rec["round"] and e["dtype"] == rec["dtype"])
        sw = rec["sweep_seconds"]["sweep"]
        rec["ratio_sweep_gemm"] = sw / rec["gemm_seconds"]["sum"]
        if use_torch:
            rec["ratio_sweep_epoch_same_dtype"] = sw / ex[f"torch_epoch_{rec['dtype']}"]
            rec["ratio_sweep_epoch_float32"] = sw / ex["torch_epoch_float32"]

    summary = []
    for dt in args.dtypes:
        for act in args.activations:
            recs = [x for x in records if x["dtype"] == dt and x["activation"] == act]
            exs = [e for e in extras if e["dtype"] == dt]
            blocks = sorted({k for x in recs for k in x["sweep_seconds"]})
            s = {
                "dtype": dt,
                "activation": act,
                "rounds": len(recs),
                "blocks": {
                    k: median([x["sweep_seconds"].get(k, float("nan")) for x in recs])
                    for k in blocks
                },
                "sweep1": median(
                    [x["sweep1_seconds"]["sweep"] for x in recs if x["sweep1_seconds"]]
                ),
                "sweep1_W0": median(
                    [
                        x["sweep1_seconds"].get("W0", float("nan"))
                        for x in recs
                        if x["sweep1_seconds"]
                    ]
                ),
                "gemm": {
                    k: median([x["gemm_seconds"][k] for x in recs]) for k in recs[0]["gemm_seconds"]
                },
                "gram_X0": median([e["gram_X0"] for e in exs]),
                "ratio_sweep_gemm": median([x["ratio_sweep_gemm"] for x in recs]),
                "residuals": {
                    k: median([x["residuals"].get(k, float("nan")) for x in recs])
                    for k in recs[0]["residuals"]
                },
            }
            if use_torch:
                s["torch_epoch_same_dtype"] = median([e[f"torch_epoch_{dt}"] for e in exs])
                s["torch_epoch_float32"] = median([e["torch_epoch_float32"] for e in exs])
                s["ratio_sweep_epoch_same_dtype"] = median(
                    [x["ratio_sweep_epoch_same_dtype"] for x in recs]
                )
                s["ratio_sweep_epoch_float32"] = median(
                    [x["ratio_sweep_epoch_float32"] for x in recs]
                )
            summary.append(s)

    # ------------------------------------------------------------------ tables
    print()
    print(
        f"bench_sweep: 784-{HIDDEN}-10, output simplex_xent, {args.rows} rows, sweep "
        f"{args.sweeps} of fit(max_iter={args.sweeps}, backend='numpy'), "
        f"{args.threads} thread(s), medians over {rounds} round(s), seconds"
    )
    block_names = ["W0", "W1", "X1", "output"]
    headers = ["activation", "dtype", *block_names, "sweep", "sweep 1", "(W0 in sweep 1)"]
    print(
        fmt_table(
            headers,
            [
                [
                    s["activation"],
                    s["dtype"],
                    *[s["blocks"].get(b, float("nan")) for b in block_names],
                    s["blocks"]["sweep"],
                    s["sweep1"],
                    s["sweep1_W0"],
                ]
                for s in summary
            ],
        )
    )
    print()
    gnames = ["X1'X1", "X0'X1", "X1'X2", "X0 W0'", "X1 W1'"]
    headers = [
        "activation",
        "dtype",
        *gnames,
        "GEMM sum",
        "X0'X0 (once/fit)",
        "sweep/GEMM",
        f"≤{TARGET_GEMM:g}x",
    ]
    print(
        fmt_table(
            headers,
            [
                [
                    s["activation"],
                    s["dtype"],
                    *[s["gemm"][g] for g in gnames],
                    s["gemm"]["sum"],
                    s["gram_X0"],
                    s["ratio_sweep_gemm"],
                    verdict(s["ratio_sweep_gemm"] <= TARGET_GEMM),
                ]
                for s in summary
            ],
        )
    )
    if use_torch:
        print()
        headers = [
            "activation",
            "dtype",
            "sweep",
            "Adam epoch (same dtype)",
            "sweep/epoch",
            f"≤{TARGET_EPOCH:g}x",
            "Adam epoch f32",
            "sweep/epoch f32",
        ]
        print(
            fmt_table(
                headers,
                [
                    [
                        s["activation"],
                        s["dtype"],
                        s["blocks"]["sweep"],
                        s["torch_epoch_same_dtype"],
                        s["ratio_sweep_epoch_same_dtype"],
                        verdict(s["ratio_sweep_epoch_same_dtype"] <= TARGET_EPOCH),
                        s["torch_epoch_float32"],
                        s["ratio_sweep_epoch_float32"],
                    ]
                    for s in summary
                ],
            )
        )
    if memory:
        print()
        print(
            f"peak memory (ru_maxrss of a fresh process per configuration: imports, load the "
            f"arrays, fit(max_iter={args.sweeps}))"
        )
        headers = [
            "activation",
            "dtype",
            "peak RSS MB",
            "VmHWM MB",
            "RSS after imports MB",
            "RSS after load MB",
            "fit extra peak MB",
            "data (X, Y) MB",
            "extra / data",
            "fit s (subprocess)",
        ]
        print(
            fmt_table(
                headers,
                [
                    [
                        m["activation"],
                        m["dtype"],
                        m["maxrss_end_kb"] / 1024,
                        m["vm_hwm_end_kb"] / 1024,
                        m["maxrss_after_imports_kb"] / 1024,
                        m["rss_after_load_kb"] / 1024,
                        m["fit_extra_peak_kb"] / 1024,
                        m["data_bytes"] / 2**20,
                        m["fit_extra_peak_kb"] * 1024 / m["data_bytes"],
                        m["fit_seconds"],
                    ]
                    for m in memory
                    if "error" not in m
                ],
            )
        )
    print()
    print("residuals of the reported sweep (iterations / final residual of inner solvers):")
    for s in summary:
        print(
            f"  {s['activation']:>12s} {s['dtype']}: "
            + ", ".join(f"{k}={v:.3g}" for k, v in s["residuals"].items())
        )

    payload = {
        "benchmark": "bench_sweep",
        "mode": "quick" if args.quick else "full",
        "args": {k: v for k, v in vars(args).items() if not k.startswith("child")},
        "targets": {
            "sweep_over_gemm_at_most": TARGET_GEMM,
            "sweep_over_adam_epoch_at_most": TARGET_EPOCH,
        },
        "summary": summary,
        "records": records,
        "extras": extras,
        "memory": memory,
        "total_seconds": time.perf_counter() - t_total,
        "machine": machine,
    }
    path = write_json("bench_sweep", payload, args.out)
    print(f"wrote {path}")
    return payload


def sw_blocks(rec: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in rec["sweep_seconds"].items() if k != "sweep"}


if __name__ == "__main__":
    main()
