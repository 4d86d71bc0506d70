# SPDX-License-Identifier: Apache-2.0
"""
Lifted weights as a PyTorch initialisation
==========================================

Use a lifted network as the initialisation of an ordinary PyTorch network, then fine-tune it.

What this example teaches
-------------------------
1. A trained :class:`cvx_lifted.LiftedNetwork` *is* an ordinary feed-forward network: its
   weights ``W_l`` have shape ``(out, in)``, exactly the layout of ``torch.nn.Linear.weight``, so
   :func:`cvx_lifted.interop.torch.to_torch` copies them into an ``nn.Sequential`` of
   ``Linear``/``ReLU`` layers that reproduces the feed-forward rule (checked here to 1e-5).
2. The paper (§6) proposes lifted training as an initialisation for back-propagation: the copied
   network is fine-tuned with a few epochs of SGD next to a Xavier-initialised twin trained
   identically (same architecture, optimiser, learning rate and mini-batch order) by
   :func:`cvx_lifted.interop.torch.train`. The paper's whole experiment (Table 1, Figure 1) is
   ``cvx-lifted reproduce``; see EXPERIMENTS.md.

Needs PyTorch (``pip install "cvx-lifted[torch]"``); without it the script prints a note and
exits normally. Run it with ``python examples/lifted_init_torch.py``.
"""

import sys

import numpy as np
from threadpoolctl import threadpool_limits

import cvx_lifted as cl
from cvx_lifted.datasets import load_digits

try:
    import torch
except ImportError:
    print("PyTorch is not installed (pip install 'cvx-lifted[torch]'): nothing to do.")
    sys.exit(0)
from cvx_lifted.interop.torch import to_torch, train, xavier_init

torch.set_num_threads(1)  # small layers: one thread is fastest and reproducible
threadpool_limits(1)  # the same for NumPy's BLAS (lifted training)

X_train, y_train, X_test, y_test = load_digits(test_size=0.25, random_state=0)
sizes = [64, 64, 10]

# --------------------------------------------------------------------------- 1. lifted training
# softmax_xent: the loss acts on the last pre-activation, as nn.CrossEntropyLoss does on logits.
net = cl.LiftedNetwork(sizes, activation="relu", output="softmax_xent", lam=10.0, rho=1e-4)
result = net.fit(X_train, np.eye(10)[y_train], max_iter=15, random_state=0)
lifted_acc = np.mean(net.predict(X_test).argmax(axis=1) == y_test)
print(f"lifted training: {result.n_iter} sweeps, test accuracy {lifted_acc:.3f}")

# --------------------------------------------------------------------------- 2. copy to torch
# Linear(64, 64) <- (W_0, b_0), ReLU, Linear(64, 10) <- (W_1, b_1); output="predict" would append
# the head's softmax, the default "logits" ends with the last Linear (what CrossEntropyLoss wants).
model = to_torch(net, dtype=np.float32)
print(model)
with torch.no_grad():
    logits = model(torch.from_numpy(X_test).float())
error = float(np.max(np.abs(torch.softmax(logits, dim=1).numpy() - net.predict(X_test))))
print(f"max |torch - feed-forward| = {error:.1e} (softmax outputs on the test set)")
assert error < 1e-5, "the copied network does not reproduce the feed-forward rule"

# --------------------------------------------------------------------------- 3. fine-tune both
# The Xavier twin: same architecture, Glorot-uniform weights. Both see the same mini-batches
# (seed 0). A small learning rate: with 0.02 or more the first epoch throws the lifted network off
# its optimum (measured: 0.967 -> 0.82), and the head start is lost.
twin = xavier_init(sizes, seed=0)
options = {"epochs": 5, "batch_size": 32, "lr": 0.005, "momentum": 0.9, "rho": 0.0, "seed": 0}
runs = {
    name: train(module, X_train, y_train, X_test, y_test, **options)
    for name, module in (("lifted", model), ("xavier", twin))
}
print(f"{'epoch':>5} {'lifted init':>12} {'xavier init':>12}")
for epoch, (a, b) in enumerate(
    zip(runs["lifted"].test_accuracy, runs["xavier"].test_accuracy, strict=True)
):
    print(f"{epoch:>5} {a:>12.3f} {b:>12.3f}")
print(
    f"after 5 epochs of SGD: lifted init {runs['lifted'].test_accuracy[-1]:.3f}, "
    f"Xavier init {runs['xavier'].test_accuracy[-1]:.3f}"
)
