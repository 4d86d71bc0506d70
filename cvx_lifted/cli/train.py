# SPDX-License-Identifier: Apache-2.0
r"""``cvx-lifted train``: fit a lifted estimator on a data set or a CSV/NPZ file, save its network.

Classification fits a :class:`~cvx_lifted.LiftedMLPClassifier` (which encodes the labels:
``classes_``), regression a :class:`~cvx_lifted.LiftedMLPRegressor`. Features of files (and
regression targets) are standardised by scikit-learn's
:class:`~sklearn.preprocessing.StandardScaler` for training, and the scaling is folded into the
saved weights (:func:`fold_input_standardization`, :func:`fold_output_standardization`), so the
model file takes raw features and predicts raw targets. The file's metadata (``extra``) holds the
task, the estimator's ``classes_`` (which ``cvx-lifted predict`` maps outputs back to), its
class and parameters, the feature and target names and the scores of the saved model.

With ``--scheduler ADDRESS`` (or ``local``) the estimator trains on a Dask cluster: the rows in
chunks of ``--chunk-rows`` on the workers, a ``.npy`` file read by them a chunk at a time
(:mod:`cvx_lifted.cli._dask`); the saved model is the same as in memory, to rounding.
"""

from __future__ import annotations

import argparse
import math
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cvx_lifted import defaults
from cvx_lifted.cli import _dask as dask_rows
from cvx_lifted.cli._common import (
    EXIT_OK,
    SubParsers,
    SweepPrinter,
    UsageError,
    add_training_options,
    check_output_path,
    check_plot_path,
    fraction,
    header_flag,
    maybe_plot,
    non_negative_float,
    one_line,
    positive_float,
    positive_int,
    progress_mode,
)
from cvx_lifted.datasets import DATASETS, find_data_dir, load_dataset
from cvx_lifted.distributed import cluster, is_dask_array
from cvx_lifted.io import (
    MAX_EXACT_INTEGER,
    infer_task,
    read_table,
    save_network,
    train_validation_split,
)
from cvx_lifted.modelfile import DEFAULT_SUFFIX
from cvx_lifted.network import LiftedNetwork
from cvx_lifted.plugins import resolve_activation

if TYPE_CHECKING:
    from cvx_lifted.estimator import LiftedMLPClassifier, LiftedMLPRegressor

__all__ = [
    "TRAIN_ACTIVATION",
    "TRAIN_HIDDEN",
    "TRAIN_LAM",
    "TRAIN_RHO",
    "TRAIN_SWEEPS",
    "TRAIN_TOL",
    "add_train",
    "fold_input_standardization",
    "fold_output_standardization",
    "run_train",
]

# Defaults of ``cvx-lifted train``: those of cvx_lifted.defaults, shared with LiftedNetwork, the
# estimators and ``cvx-lifted demo``; lambda and rho are the estimators' "auto" (they follow
# --solver, and rho the number of training rows).
TRAIN_HIDDEN: tuple[int, ...] = defaults.HIDDEN
TRAIN_ACTIVATION = defaults.ACTIVATION
TRAIN_LAM: float | str = "auto"
TRAIN_RHO: float | str = "auto"
TRAIN_SWEEPS = defaults.SWEEPS
TRAIN_TOL = defaults.TOL


# ---------------------------------------------------------------------------------- folding
def fold_input_standardization(
    network: LiftedNetwork, mean: np.ndarray, scale: np.ndarray
) -> LiftedNetwork:
    r"""Make a network trained on standardised inputs accept raw inputs (exactly).

    A network trained on :math:`(x - \mu)/s` computes :math:`W_0 (x - \mu)/s + b_0` in its first
    layer; with :math:`W_0' = W_0\,\mathrm{diag}(1/s)` and :math:`b_0' = b_0 - W_0' \mu` it
    computes the same pre-activation from :math:`x`. Both the feed-forward and the lifted
    prediction rule only see that pre-activation, so predictions are unchanged.

    Parameters
    ----------
    network : LiftedNetwork
        A fitted network (modified in place).
    mean, scale : numpy.ndarray, shape (n_inputs,)
        The :math:`\mu` and :math:`s > 0` used in training.

    Returns
    -------
    LiftedNetwork
        ``network``.
    """
    W, b = network.weights[0], network.biases[0]
    W_new = W / np.asarray(scale, dtype=W.dtype)[None, :]
    b_new = b - W_new @ np.asarray(mean, dtype=W.dtype)
    network.set_weights([W_new, *network.weights[1:]], [b_new, *network.biases[1:]])
    return network


def fold_output_standardization(
    network: LiftedNetwork, mean: np.ndarray, scale: np.ndarray
) -> LiftedNetwork:
    r"""Make a regression network trained on standardised targets predict raw targets.

    With an identity output the prediction is :math:`W_L x + b_L`; targets standardised as
    :math:`(y - \mu)/s` are undone by :math:`W_L' = \mathrm{diag}(s) W_L` and
    :math:`b_L' = s \odot b_L + \mu`.

    Parameters
    ----------
    network : LiftedNetwork
        A fitted network with the ``"squared"`` head and identity output (modified in place).
    mean, scale : numpy.ndarray, shape (n_outputs,)
        The :math:`\mu` and :math:`s > 0` used in training.

    Returns
    -------
    LiftedNetwork
        ``network``.

    Raises
    ------
    ValueError
        If the output is not the identity (the rescaling would change the model).
    """
    act = network.head.activation
    if network.head.name != "squared" or act is None or act.name != "identity":
        raise ValueError("only an identity 'squared' output can absorb a target rescaling.")
    W, b = network.weights[-1], network.biases[-1]
    s = np.asarray(scale, dtype=W.dtype)
    W_new = W * s[:, None]
    b_new = b * s + np.asarray(mean, dtype=W.dtype)
    network.set_weights([*network.weights[:-1], W_new], [*network.biases[:-1], b_new])
    return network


# ---------------------------------------------------------------------------------- data
@dataclass
class _TrainData:
    X: Any  # in memory, or a row-chunked Dask array (a .npy file read by the workers)
    y: Any
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    feature_names: list[str] | None
    target_name: str | None
    source: str
    is_dataset: bool


def _is_dataset_name(text: str) -> bool:
    return not Path(text).exists() and text.strip().lower().replace("_", "-") in DATASETS


def _training_data(args: argparse.Namespace) -> _TrainData:
    if args.scheduler is not None and dask_rows.is_npy(args.data):  # read by the workers
        X, y = dask_rows.npy_rows(args.data, args.target, args.chunk_rows, args.hidden)
        return _TrainData(X, y, None, None, None, None, args.data, False)
    if _is_dataset_name(args.data):
        if args.target is not None:
            raise UsageError(
                f"--target picks the target column of a data file; the data set {args.data} "
                "comes with its labels (drop --target)."
            )
        kw: dict[str, Any] = {}
        if args.data_dir is not None:
            kw["path"] = args.data_dir
        X, y, X_test, y_test = load_dataset(args.data, **kw)
        name = args.data.strip().lower().replace("_", "-")
        if name != "digits":
            folder = find_data_dir(name, args.data_dir)
            print(f"data set {name}: {X.shape[0]} training rows from {folder}")
        return _TrainData(X, y, X_test, y_test, None, None, args.data, True)
    path = Path(args.data)
    if not path.exists():
        raise UsageError(
            f"{args.data!r} is neither a data file nor a dataset name "
            f"(datasets: {', '.join(DATASETS)})."
        )
    if args.target is not None and path.suffix.lower() == ".npz":
        raise UsageError(
            f"--target picks a column of a CSV or .npy file; {path.name} holds its target as the "
            "array y (drop --target)."
        )
    target: str | int = -1 if args.target is None else args.target
    table = read_table(path, target=target, header=header_flag(args.header))
    assert table.y is not None
    return _TrainData(
        table.X, table.y, None, None, table.feature_names, table.target_name, str(path), False
    )


def _whole_numbers(y: Any) -> bool:
    """Whether a 1-D float target holds integers, exact in float64 (``|y| <= 2**53``)."""
    if y.dtype.kind != "f" or y.ndim != 1:
        return False
    if is_dask_array(y):  # one reduction on the cluster
        return dask_rows.integer_valued(y)
    return bool(np.all(np.abs(y) <= MAX_EXACT_INTEGER) and np.all(y == np.round(y)))


def _task_and_target(data: _TrainData, args: argparse.Namespace) -> tuple[str, Any, Any]:
    """Return the task, the target as the estimator takes it and the classes (or ``None``).

    Say which task, and why. A Dask target (a column of a ``.npy`` file on the cluster) is
    examined by reductions.
    """
    lazy = is_dask_array(data.y)
    y = data.y if lazy else np.asarray(data.y)
    whole = args.task != "regress" and _whole_numbers(y)
    if args.task != "auto":
        task = args.task
    elif lazy:  # numeric, one column: reductions on the cluster
        task = dask_rows.infer_task(y)
    else:
        task = infer_task(y)
    how = "" if args.task != "auto" else " (detected; override with --task)"
    if (
        args.task == "auto"
        and task == "regress"
        and y.ndim == 1
        and (whole or y.dtype.kind in "iu")
    ):
        distinct = dask_rows.unique(y).size
        how = (
            f" (detected: {distinct} distinct whole numbers in {y.shape[0]} rows read as a "
            "quantity, not as class labels; override with --task classify)"
        )
    if task == "classify":
        if y.ndim != 1:
            raise UsageError(f"classification needs a 1-D target, got shape {y.shape}.")
        if whole:
            y = y.astype(np.int64)  # exact: |y| <= 2**53
        labels = dask_rows.unique(y)
        if labels.size < 2:
            raise UsageError(
                f"the target has a single class ({np.asarray(labels[0]).item()!r}); nothing to "
                "learn."
            )
        print(f"task: classify{how}, {labels.size} classes")
        return task, y, labels
    if y.dtype.kind not in "biuf":
        raise UsageError(
            "the target holds non-numeric values, which cannot be regressed; use --task classify."
        )
    if (args.output or "squared") != "squared":
        raise UsageError(f"--output {args.output} is for classification; regression uses squared.")
    y = y.astype(np.float64)
    if not lazy and y.size and bool(np.all(y == y.reshape(len(y), -1)[0])):
        raise UsageError(
            f"the target is constant ({y.reshape(len(y), -1)[0].tolist()}); nothing to learn."
        )
    print(f"task: regress{how}, {1 if y.ndim == 1 else y.shape[1]} target(s)")
    return task, y, None


# ---------------------------------------------------------------------------------- training
def _count(n: int, unit: str) -> str:
    """``"1 epoch"``, ``"3 epochs"``."""
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _per_layer_text(values: np.ndarray) -> str:
    """``"3, 1"`` for per-layer values, ``"0.00025"`` when every layer has the same."""
    distinct = {float(v) for v in values}
    return f"{distinct.pop():g}" if len(distinct) == 1 else ", ".join(f"{v:g}" for v in values)


def _estimator(task: str, args: argparse.Namespace) -> LiftedMLPClassifier | LiftedMLPRegressor:
    """Return the estimator ``train`` fits (the solver options it does not take come later)."""
    from cvx_lifted.estimator import LiftedMLPClassifier, LiftedMLPRegressor  # slow import

    params: dict[str, Any] = {
        "hidden_layer_sizes": tuple(args.hidden),
        "activation": args.activation,
        "lam": args.lam,
        "rho": args.rho,
        "max_iter": args.sweeps,
        "tol": args.tol,
        "backend": args.backend,
        "random_state": args.seed,
        "verbose": progress_mode(args.progress) == "bar",
        "time_limit": args.time_limit,
        "solver": args.solver,
        "batch_size": args.batch_size,
    }
    if task == "classify":
        return LiftedMLPClassifier(output=args.output or defaults.CLASSIFIER_HEAD, **params)
    return LiftedMLPRegressor(output="squared", **params)


def _fit_with_solver_options(
    estimator: LiftedMLPClassifier | LiftedMLPRegressor,
    X: np.ndarray,
    y: np.ndarray,
    solver_options: dict[str, Any],
) -> None:
    """Fit ``estimator``, passing ``solver_options`` on to its network's ``fit``.

    The estimators take no per-sweep callback, validation set or BLAS-thread setting, which
    ``train`` reports and honours; the network the estimator builds gets them for its one
    ``fit`` (the estimator's own options are kept; a name in both is ``solver_options``'s).
    Its :class:`~sklearn.exceptions.ConvergenceWarning` is not shown: ``train`` prints why
    training stopped.
    """
    from sklearn.exceptions import ConvergenceWarning  # slow import

    build = estimator._build_network

    def build_with_options(*args: Any, **kwargs: Any) -> Any:
        network = build(*args, **kwargs)
        plain_fit = network.fit

        def fit(X: Any, Y: Any, **options: Any) -> Any:
            del network.fit  # one fit with the options, then the network is plain again
            return plain_fit(X, Y, **{**options, **solver_options})

        network.fit = fit  # type: ignore[method-assign]
        return network

    estimator._build_network = build_with_options  # type: ignore[method-assign]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator.fit(X, y)
    finally:
        del estimator._build_network  # the class's method again


def _solver_options(
    args: argparse.Namespace,
    classes: np.ndarray | None,
    validation: tuple[np.ndarray | None, np.ndarray | None],
    x_scaler: Any,
    y_scaler: Any,
    printer: SweepPrinter | None,
) -> dict[str, Any]:
    """Return the solver options ``train`` adds: BLAS threads, per-sweep lines and validation.

    The validation rows are scored after every sweep in the space the network is trained in
    (standardised features and targets): by accuracy against the original labels for a
    classifier (``classes`` are the estimator's ``classes_``: the sorted training labels), by
    :math:`R^2` for a regressor.
    """
    options: dict[str, Any] = {"blas_threads": args.threads if args.threads > 0 else "auto"}
    if printer is not None:
        options["callback"] = printer.callback
    X_val, y_val = validation
    if X_val is None or y_val is None:
        return options
    Xv = x_scaler.transform(X_val) if x_scaler is not None else X_val
    if classes is not None:
        labels = classes

        def label_accuracy(network: LiftedNetwork, X: np.ndarray, y: np.ndarray) -> float:
            return float(np.mean(labels[network.predict(X).argmax(axis=1)] == y))

        options["validation"] = (Xv, y_val)
        options["metric"] = label_accuracy
    else:
        Yv = y_val.reshape(len(y_val), -1)
        options["validation"] = (Xv, y_scaler.transform(Yv) if y_scaler is not None else Yv)
    return options


def _fold_scalers(estimator: Any, x_scaler: Any, y_scaler: Any) -> None:
    """Fold the scalers into the estimator's network: it then takes raw features and targets."""
    if x_scaler is not None:
        fold_input_standardization(estimator.network_, x_scaler.mean_, x_scaler.scale_)
    if y_scaler is not None:
        fold_output_standardization(estimator.network_, y_scaler.mean_, y_scaler.scale_)


def _regression_scores(Y: Any, P: Any) -> dict[str, float]:
    """Return R^2 and RMSE of predictions ``P`` (NumPy or Dask: reductions on the cluster)."""
    Y = Y.reshape(P.shape)
    ss_res, ss_tot = ((Y - P) ** 2).sum(), ((Y - Y.mean(axis=0)) ** 2).sum()
    if is_dask_array(Y) or is_dask_array(P):
        import dask

        ss_res, ss_tot = dask.compute(ss_res, ss_tot)
    ss_res, ss_tot = float(ss_res), float(ss_tot)
    return {
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
        "rmse": math.sqrt(ss_res / Y.size),
    }


def _scores(
    estimator: Any, task: str, splits: list[tuple[str, Any, Any]]
) -> dict[str, dict[str, float]]:
    """Score the saved model (raw features in) on each split; print each score."""
    metrics: dict[str, dict[str, float]] = {}
    for name, Xs, ys in splits:
        if Xs is None or ys is None or len(Xs) == 0:
            continue
        if task == "classify":
            metrics[name] = {"accuracy": float(estimator.score(Xs, ys))}
            print(f"{name} accuracy: {metrics[name]['accuracy']:.4f}")
        else:
            pred, ys = estimator.predict(Xs), ys if is_dask_array(ys) else np.asarray(ys)
            metrics[name] = _regression_scores(ys, pred.reshape(len(Xs), -1))
            r2 = metrics[name]["r2"]
            r2_text = (
                f"{r2:.4f}" if math.isfinite(r2) else "undefined (the target is constant here)"
            )
            print(f"{name} R^2: {r2_text}, RMSE: {metrics[name]['rmse']:.6g}")
    return metrics


def add_train(sub: SubParsers) -> None:
    """Add the ``train`` subcommand."""
    p = sub.add_parser(
        "train",
        help="train a lifted network on a data set or a CSV/NPZ/NPY file and save it",
        description="Train a lifted network by block-coordinate descent and save it as a model "
        f"file. DATA is a dataset name ({', '.join(DATASETS)}; trained on its training split, "
        "scored on its test split) or a file: CSV (comma, tab or semicolon; header detected; the "
        "last column is the target unless --target), NPZ (arrays X and y) or NPY (one 2-D "
        "array; the last column is the target unless --target). Class labels (numbers or "
        "strings) are stored in the model, so 'predict' returns them. With --scheduler the "
        "training runs on a Dask cluster: the rows are split into chunks that the workers hold "
        "(a .npy file is read by the workers a chunk at a time, never whole), and the model "
        "file is written as usual.",
    )
    p.add_argument("data", metavar="DATA", help="dataset name or CSV/NPZ/NPY file")
    p.add_argument(
        "--out",
        "-o",
        required=True,
        metavar="MODEL",
        help="model file to write (.cvxl is appended when the name has no extension)",
    )
    p.add_argument(
        "--target", metavar="COL", help="target column: CSV name or 0-based index, NPY index"
    )
    p.add_argument(
        "--header",
        choices=("auto", "yes", "no"),
        default="auto",
        help="whether the CSV has a header row (default: detected)",
    )
    p.add_argument(
        "--task",
        choices=("auto", "classify", "regress"),
        default="auto",
        help="default: classify when the target holds strings or integers, regress otherwise",
    )
    add_training_options(
        p,
        hidden=TRAIN_HIDDEN,
        activation=TRAIN_ACTIVATION,
        lam=TRAIN_LAM,
        rho=TRAIN_RHO,
        sweeps=TRAIN_SWEEPS,
        seed=defaults.SEED,
        threads=0,
    )
    p.add_argument(
        "--output",
        choices=("simplex_xent", "softmax_xent", "squared"),
        help="output head (default: simplex_xent to classify, squared to regress)",
    )
    p.add_argument(
        "--tol",
        type=non_negative_float,
        default=TRAIN_TOL,
        help=f"stop when a sweep decreases the objective by less than this (relative; "
        f"default: {TRAIN_TOL:g})",
    )
    p.add_argument(
        "--validation-fraction",
        type=fraction,
        default=0.0,
        metavar="F",
        help="hold out this fraction of the training rows, scored after every sweep (default: 0)",
    )
    p.add_argument("--time-limit", type=positive_float, metavar="SECONDS", help="wall-time budget")
    p.add_argument(
        "--solver",
        choices=("auto", "bcd", "minibatch"),
        default=defaults.SOLVER,
        help="bcd: full-batch block-coordinate descent, every block decreases the objective; "
        "minibatch: mini-batch BCD, --sweeps counts epochs (a stochastic method, in memory); "
        f"auto: minibatch from {defaults.MINIBATCH_ROWS:,} training rows in memory when every "
        f"block has a fast path, bcd otherwise (default: {defaults.SOLVER})",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=defaults.BATCH_SIZE,
        metavar="N",
        help=f"rows per batch of --solver minibatch (default: {defaults.BATCH_SIZE})",
    )
    p.add_argument(
        "--standardize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="standardise features (and regression targets) for training, folded back into the "
        "saved weights so the model takes raw data (default: on for files, off for the named "
        "datasets, already scaled to [0, 1])",
    )
    p.add_argument("--plot", metavar="PNG", help="save the objective per sweep as a PNG")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the data set's folder of IDX files, or a folder holding mnist/, mnist-10k/, "
        "fashion-mnist/ like $CVX_LIFTED_DATA (default: $CVX_LIFTED_DATA)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="train on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://host:8786; "
        "the workers must see a .npy DATA file), or 'local' for a local cluster of one worker "
        "process per core started for this run (needs cvx-lifted[dask])",
    )
    p.add_argument(
        "--chunk-rows",
        type=positive_int,
        metavar="N",
        help="with --scheduler: rows per chunk (default: the rows split evenly over the "
        f"workers, at most as many as keep one task under {dask_rows.TASK_BUDGET // 2**20} MiB)",
    )


def _scaler(A: Any) -> Any:
    """Return a fitted StandardScaler (in memory) or :class:`~._dask.RowScaler` (Dask)."""
    if is_dask_array(A):
        return dask_rows.RowScaler().fit(A)
    from sklearn.preprocessing import StandardScaler  # slow import

    return StandardScaler().fit(A)


def run_train(args: argparse.Namespace) -> int:
    """Run ``cvx-lifted train``: fit, score and save the model; return the exit code."""
    # everything that can be checked is checked before training: outputs, then the activation
    model_path = Path(args.out).expanduser()
    if not model_path.suffix and not model_path.is_dir():
        model_path = model_path.with_name(model_path.name + DEFAULT_SUFFIX)
    check_output_path(model_path, "--out")
    if args.plot:
        args.plot = str(check_plot_path(args.plot, "--plot"))
    resolve_activation(args.activation)
    if args.scheduler is None:
        if args.chunk_rows is not None:
            raise UsageError("--chunk-rows applies to training on a cluster; add --scheduler.")
        return _train(args)
    if args.solver == "minibatch":
        raise UsageError(
            "--solver minibatch trains in memory; on a cluster (--scheduler) use --solver bcd."
        )
    with dask_rows.dask_client(args.scheduler) as client:  # a clear ConnectionError if not
        workers = len(cluster.workers())  # all of them (scheduler_info lists the first few)
        print(
            f"Dask cluster: scheduler {client.scheduler.address}, {workers} worker(s), "
            f"dashboard {client.dashboard_link}"
        )
        try:
            return _train(args)
        except MemoryError as exc:  # a chunk too large for the workers' memory
            fits = re.search(r"rechunk\(\{0: (\d+)\}\)", str(exc))
            raise UsageError(
                f"{one_line(exc)} On the command line: --chunk-rows "
                f"{fits.group(1) if fits else 'N with a smaller N'}."
            ) from None


def _train(args: argparse.Namespace) -> int:
    """Train, score and save (``run_train`` after its checks, on the cluster if one is given)."""
    data = _training_data(args)
    lazy = is_dask_array(data.X)  # a .npy file on the cluster: no split of its rows here
    if lazy and args.validation_fraction > 0:
        raise UsageError(
            "--validation-fraction splits rows in memory, but the rows of a .npy file stay on "
            "the cluster with --scheduler; hold out a validation file and score it with "
            "'cvx-lifted predict', or drop --validation-fraction."
        )
    task, y, labels = _task_and_target(data, args)
    X_tr, y_tr, X_val, y_val = train_validation_split(
        data.X, y, args.validation_fraction, random_state=args.seed, stratify=task == "classify"
    )
    standardize = args.standardize if args.standardize is not None else not data.is_dataset
    x_scaler = _scaler(X_tr) if standardize else None
    y_scaler = None
    if standardize and task == "regress":
        y_scaler = _scaler(y_tr.reshape(len(y_tr), -1))
    estimator = _estimator(task, args)
    # the estimator's classes_ will be these: the sorted distinct training labels
    classes = None if task != "classify" else labels if X_val is None else np.unique(y_tr)
    if classes is not None and labels is not None and classes.size < labels.size:
        unseen = np.setdiff1d(labels, classes)
        print(
            f"note: {unseen.size} class(es) occur only in the validation rows "
            f"({', '.join(map(str, unseen.tolist()[:5]))}{', ...' if unseen.size > 5 else ''}): "
            f"the model learns {classes.size} classes and cannot predict those; use a smaller "
            "--validation-fraction or more rows of them."
        )
    n_out = classes.size if classes is not None else (1 if y.ndim == 1 else y.shape[1])
    distributed = lazy or args.scheduler is not None
    solver = estimator._training_solver(X_tr.shape, n_out, tuple(args.hidden), distributed)
    unit = "epoch" if solver == "minibatch" else "sweep"
    printer = SweepPrinter(unit) if progress_mode(args.progress) == "lines" else None
    options = _solver_options(args, classes, (X_val, y_val), x_scaler, y_scaler, printer)
    sizes = [data.X.shape[1], *args.hidden, n_out]
    print(
        f"training {sizes} ({args.activation}, output {estimator.output}) on {X_tr.shape[0]} "
        "rows"
        + (f", validating on {X_val.shape[0]}" if X_val is not None else "")
        + f", up to {_count(args.sweeps, unit)} of "
        + ("mini-batch BCD" if solver == "minibatch" else "full-batch BCD")
    )
    t0 = time.perf_counter()
    X_fit: Any = x_scaler.transform(X_tr) if x_scaler is not None else X_tr
    y_fit = y_tr if y_scaler is None else y_scaler.transform(y_tr.reshape(len(y_tr), -1))
    if args.scheduler is not None and not lazy:  # rows in memory: chunks for the workers
        X_fit = dask_rows.to_rows(
            X_fit, args.chunk_rows or dask_rows.auto_chunk_rows(len(X_fit), sizes)
        )
    if is_dask_array(X_fit):
        print(f"  in {X_fit.numblocks[0]} row chunks of up to {max(X_fit.chunks[0])} rows")
    _fit_with_solver_options(estimator, X_fit, y_fit.reshape(y_tr.shape), options)
    seconds = time.perf_counter() - t0
    if printer is not None:
        printer.finish(estimator.history_)
    _fold_scalers(estimator, x_scaler, y_scaler)
    history = estimator.history_
    print(
        f"trained in {seconds:.1f} s: {_count(estimator.n_iter_, unit)}, stopped by "
        f"{estimator.stop_reason_}, objective {history.objective[0]:.6g} -> "
        f"{history.objective[-1]:.6g}"
    )
    network = estimator.network_  # what --lam and --rho (or their "auto") came to, per layer
    print(f"  lam {_per_layer_text(network.lam)}, rho {_per_layer_text(network.rho)}")
    splits: list[tuple[str, Any, Any]] = [("train", X_tr, y_tr), ("validation", X_val, y_val)]
    if data.X_test is not None and data.y_test is not None:
        y_test = np.asarray(data.y_test)
        if task == "classify":  # rows of classes never seen in training cannot be scored
            known = np.isin(y_test, estimator.classes_)
            splits.append(("test", data.X_test[known], y_test[known]))
        else:
            splits.append(("test", data.X_test, y_test))
    extra: dict[str, Any] = {
        "task": task,
        "source": data.source,
        "estimator": {"class": type(estimator).__name__, "params": estimator.get_params()},
    }
    if task == "classify":
        extra["classes"] = estimator.classes_.tolist()
    extra["preprocessing"] = (
        "features standardised for training; folded into layer 0, the model takes raw features"
        if x_scaler is not None
        else "none"
    )
    extra.update(
        metrics=_scores(estimator, task, splits),
        feature_names=data.feature_names,
        target_name=data.target_name,
        n_features=int(data.X.shape[1]),
    )
    written = save_network(estimator.network_, args.out, extra=extra)
    print(f"model saved to {written}")
    if args.plot:
        maybe_plot(Path(args.plot), history, title=f"cvx-lifted train {data.source}")
    return EXIT_OK
