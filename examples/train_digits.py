# SPDX-License-Identifier: Apache-2.0
"""
Lifted training on the digits
=============================

Train a lifted ReLU network on scikit-learn's 8x8 digits with the fast NumPy path.

What this example teaches
-------------------------
1. Lifted training is block-coordinate descent (BCD): each sweep solves, exactly, a ridge
   regression per layer (weights), a box-constrained QP per hidden layer (states, all samples at
   once with one shared Hessian) and the cross-entropy output step on the simplex (Appendix A's
   bisection). Every block is convex and minimised exactly, so the objective never increases.
2. ``history.terms`` splits the objective into the loss, one divergence per layer and the weight
   penalty; ``history.validation`` scores the network after every sweep.
3. Two prediction rules (paper §5): the feed-forward rule ``net.predict`` and the lifted rule
   ``net.predict_lifted``, which minimises the same divergences over the states of the test
   points with the weights fixed.

Run it with ``python examples/train_digits.py``; the figure ``train_digits.png`` (objective per
term on a log axis, and the test accuracy after every sweep) is written to the current
directory.
"""

import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import cvx_lifted as cl
from cvx_lifted.datasets import load_digits

threadpool_limits(1)  # one BLAS thread for the whole script: fastest on small, busy machines

X_train, y_train, X_test, y_test = load_digits(test_size=0.25, random_state=0)  # pixels in [0, 1]
Y_train = np.eye(10)[y_train]  # one-hot rows
print(f"digits: {X_train.shape[0]} training and {X_test.shape[0]} test images of 8x8 pixels")

# One hidden layer of 100 ReLU units; the output state lives on the probability simplex and is
# tied to the last pre-activation by the sparsemax divergence (cross-entropy, paper eq. 15).
net = cl.LiftedNetwork([64, 100, 10], activation="relu", output="simplex_xent", lam=10.0, rho=1e-3)
start = time.perf_counter()
result = net.fit(
    X_train, Y_train, max_iter=20, tol=1e-5, random_state=0, validation=(X_test, y_test)
)
seconds = time.perf_counter() - start
history = result.history
print(f"blocks solved by: {history.paths}")
print(
    f"{'sweep':>5} {'objective':>10} {'loss':>9} {'divergences':>11} {'penalty':>8} {'test acc':>8}"
)
for sweep, (terms, acc) in enumerate(zip(history.terms, history.validation, strict=True)):
    divergences = sum(v for k, v in terms.items() if k.startswith("divergence_"))
    loss = max(terms["loss"], 0.0) + 0.0  # no "-0.00e+00" once the loss reaches round-off
    print(
        f"{sweep:>5} {terms['total']:>10.5f} {loss:>9.2e} {divergences:>11.5f} "
        f"{terms['penalty']:>8.5f} {acc:>8.3f}"
    )
increased = bool(np.any(np.diff(history.objective) > 1e-9))
print(
    f"{result.n_iter} sweeps in {seconds:.1f} s ({result.stop_reason}); "
    f"objective never increased: {not increased}"
)

feed_forward = np.mean(net.predict(X_test).argmax(axis=1) == y_test)
lifted = np.mean(net.predict_lifted(X_test).argmax(axis=1) == y_test)
print(f"test accuracy, feed-forward rule: {feed_forward:.3f}")
print(f"test accuracy, lifted rule:       {lifted:.3f}")

try:
    from matplotlib.figure import Figure

    from cvx_lifted.plot import plot_accuracy, plot_objective

    fig = Figure(figsize=(11, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    # log axis: the objective falls by orders of magnitude in the first sweep, then slowly
    plot_objective(history, ax=left, logy=True)
    # the rows scored after every sweep are the test rows: name the curve after them
    plot_accuracy(
        history, ax=right, label="test", ylabel="test accuracy (feed-forward)", title="Test score"
    )
    out = Path.cwd() / "train_digits.png"
    fig.savefig(out, dpi=120)
    print(f"figure written to {out}")
except ImportError:  # matplotlib is a dependency; only a stripped-down install lacks it
    print('(no figure: matplotlib is missing; pip install "cvx-lifted[plot]")')
