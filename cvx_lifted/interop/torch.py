# SPDX-License-Identifier: Apache-2.0
r"""PyTorch interop: export a lifted network, the paper's initialisations, a mini-batch trainer.

A trained :class:`~cvx_lifted.LiftedNetwork` is an ordinary feed-forward network: its weights
``W_l`` have shape ``(out, in)``, the layout of ``torch.nn.Linear.weight``.
:func:`to_torch` copies them into an ``nn.Sequential`` of ``Linear`` and activation modules that
reproduces :meth:`~cvx_lifted.LiftedNetwork.predict` (to 1e-5 in float32, to rounding in
float64). The rest of the module serves the paper's §7 experiment (Table 1, Figure 1):

* initialisers returning ReLU ``nn.Sequential`` models: :func:`normal_init` (every weight
  :math:`N(0, \sigma^2 = 0.1)`), :func:`xavier_init` (Glorot uniform, TensorFlow's
  ``xavier_initializer`` default), :func:`variance_scaling_init` (TensorFlow's
  ``VarianceScaling`` default: scale 1, fan-in, truncated normal) with every bias 0.1 (the
  caption of the paper's Table 1), and :func:`lifted_init` (weights *and* biases of a lifted
  network);
* :func:`train`, plain mini-batch training that records the test accuracy before training and
  after every epoch, and the wall time of training alone.

Loss scaling, and what the paper's learning rates mean here
-----------------------------------------------------------
:func:`train` minimises, on each mini-batch :math:`B`,

.. math:: \frac{1}{|B|}\sum_{i \in B} \mathrm{CE}(\mathrm{softmax}(f(x_i)), y_i)
          + \rho \sum_l \|W_l\|_F^2 ,

the softmax cross-entropy **averaged** over the batch plus the paper's penalty
:math:`\rho\|W\|_F^2` (eq. 3 with :math:`\pi_l = \|\cdot\|_F^2`) on every weight matrix, biases
not penalised; its gradient adds :math:`2\rho W_l` (``weight_decay=2 * rho`` in
``torch.optim.SGD`` terms). The paper trained in TensorFlow with a constant rate
:math:`\eta \in \{10^{-5}, 10^{-6}\}` and batch 100; with a batch-*averaged* loss such rates
barely move a network in 17 epochs, while the paper's Xavier baseline reaches 0.92 at
:math:`10^{-5}`, which is what a batch-*summed* loss gives (TensorFlow 1 code commonly summed:
``tf.reduce_sum`` or ``tf.nn.l2_loss``-style losses). A summed loss has ``batch_size`` times the
gradient of the mean, so the paper's :math:`\eta` corresponds to :math:`100\,\eta` here:
:func:`paper_learning_rate` does the translation (:math:`10^{-5} \to 10^{-3}`,
:math:`10^{-6} \to 10^{-4}`).

PyTorch is imported on first use; without it every function raises an ``ImportError`` that
says how to install it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from cvx_lifted.activations import Activation, get_activation
from cvx_lifted.activations.custom import CustomActivation
from cvx_lifted.interop._torch_base import (
    INSTALL_HINT,
    OPTIMIZERS,
    PAPER_BATCH_SIZE,
    import_torch,
    linear_layers,
)
from cvx_lifted.interop._torch_train import TrainResult, accuracy, train

if TYPE_CHECKING:
    import torch
    from torch import nn

    from cvx_lifted.network import LiftedNetwork

__all__ = [
    "DEFAULT_BIAS",
    "INITS",
    "INSTALL_HINT",
    "OPTIMIZERS",
    "PAPER_BATCH_SIZE",
    "TrainResult",
    "accuracy",
    "fit_output_scale",
    "from_torch",
    "import_torch",
    "initialize",
    "linear_layers",
    "lifted_init",
    "mlp",
    "normal_init",
    "paper_learning_rate",
    "sparsemax_module",
    "to_torch",
    "torch_activation",
    "train",
    "variance_scaling_init",
    "xavier_init",
]

#: How to install PyTorch for this module, quoted by the errors raised when it is missing.
#: Initialisations compared in the paper's Table 1 (registry names of :func:`initialize`).
INITS: tuple[str, ...] = ("normal", "xavier", "variance_scaling", "lifted")
#: Bias of every random initialisation (paper, caption of Table 1).
DEFAULT_BIAS = 0.1
# TensorFlow's correction: the std of N(0, 1) truncated to [-2, 2] (variance scaling keeps the
# requested variance after truncation by dividing the std by it).
_TRUNCATED_STD = 0.87962566103423978

_CLASSES: dict[str, type] = {}


def _torch_dtype(dtype: Any) -> torch.dtype:
    """Map a NumPy/str/torch float dtype to float32 or float64 torch dtypes."""
    torch = import_torch()
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}.")
        return dtype
    np_dtype = np.dtype(dtype)
    if np_dtype == np.float32:
        return torch.float32
    if np_dtype == np.float64:
        return torch.float64
    raise ValueError(f"dtype must be float32 or float64, got {np_dtype}.")


def paper_learning_rate(eta: float, batch_size: int = PAPER_BATCH_SIZE) -> float:
    r"""Translate a learning rate of the paper's batch-summed loss to the batch-averaged loss.

    The gradient of a loss summed over a batch of ``batch_size`` rows is ``batch_size`` times
    the gradient of its mean, so the same steps need :math:`\eta \cdot` ``batch_size`` here.

    Parameters
    ----------
    eta : float
        Learning rate as written in the paper (e.g. ``1e-5``).
    batch_size : int, default=100
        The paper's batch size.

    Returns
    -------
    float
        The rate for :func:`train`, whose loss is averaged over the batch.

    Examples
    --------
    >>> paper_learning_rate(1e-5)
    0.001
    """
    if not (math.isfinite(eta) and eta > 0):
        raise ValueError(f"eta must be a positive number, got {eta!r}.")
    return float(f"{eta * batch_size:.12g}")


# ------------------------------------------------------------------------------ modules
def sparsemax_module() -> nn.Module:
    r"""Return a ``torch.nn.Module`` computing sparsemax over the last dimension.

    :math:`\mathrm{sparsemax}(u) = \max(u - \tau(u), 0)`, the Euclidean projection of each row
    onto the probability simplex (the output of a ``simplex_xent`` lifted network).

    Returns
    -------
    torch.nn.Module
    """
    if "Sparsemax" not in _CLASSES:
        import_torch()  # an ImportError that says how to install PyTorch
        import torch

        class Sparsemax(torch.nn.Module):
            """Sparsemax over the last dimension (sort-based threshold, exact)."""

            def forward(self, u: torch.Tensor) -> torch.Tensor:
                """Project each row of ``u`` onto the probability simplex."""
                z, _ = torch.sort(u, dim=-1, descending=True)
                cumsum = z.cumsum(dim=-1) - 1.0
                k = torch.arange(1, u.shape[-1] + 1, dtype=u.dtype, device=u.device)
                support = (z * k > cumsum).sum(dim=-1, keepdim=True)
                tau = cumsum.gather(-1, support - 1) / support.to(u.dtype)
                return torch.clamp(u - tau, min=0.0)

        _CLASSES["Sparsemax"] = Sparsemax
    return _CLASSES["Sparsemax"]()


_RELU_LIKE = ("relu", "relu_fenchel", "relu_l1")
_LEAKY = ("leaky_relu", "leaky_relu_fenchel")
_HOMOGENEOUS = (*_RELU_LIKE, *_LEAKY, "identity")
_SUPPORTED = (
    *_RELU_LIKE,
    *_LEAKY,
    "sigmoid",
    "tanh",
    "hard_tanh",
    "hard_sigmoid",
    "clip",
    "identity",
    "sparsemax",
)


def torch_activation(activation: str | Activation) -> nn.Module:
    """Return the ``torch.nn`` module computing an activation's closed form.

    ``relu``, ``relu_fenchel``, ``relu_l1`` -> ``ReLU``; ``leaky_relu``, ``leaky_relu_fenchel`` ->
    ``LeakyReLU(alpha)``; ``sigmoid``; ``tanh``; ``hard_tanh`` -> ``Hardtanh(-1, 1)``;
    ``hard_sigmoid`` -> ``Hardtanh(0, 1)``; ``clip`` -> ``Hardtanh(lo, hi)``; ``identity``;
    ``sparsemax`` -> :func:`sparsemax_module`.

    Parameters
    ----------
    activation : str or Activation
        A catalogue name or instance.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ValueError
        For activations with no ``torch.nn`` counterpart here (``sign``, ``max_pool``, custom
        activations declared without ``torch_module``, ...), or a custom ``torch_module`` that
        does not compute the closed form.
    """
    torch = import_torch()
    nn = torch.nn
    act = get_activation(activation)
    name = act.name
    if isinstance(act, CustomActivation):  # never a built-in's module, whatever its name
        factory = type(act).torch_module
        if factory is None:
            raise ValueError(
                f"custom activation {name!r} has no torch.nn counterpart: declare it with "
                "custom_activation(..., torch_module=...) to use it with to_torch."
            )
        return _checked_module(act, factory())
    if name in _RELU_LIKE:
        return nn.ReLU()
    if name in _LEAKY:
        return nn.LeakyReLU(float(act.alpha))  # type: ignore[attr-defined]
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    if name in ("hard_tanh", "hard_sigmoid", "clip"):
        lo, hi = float(act.lo), float(act.hi)  # type: ignore[attr-defined]
        if math.isinf(lo) and math.isinf(hi):
            return nn.Identity()
        return nn.Hardtanh(lo, hi)
    if name == "identity":
        return nn.Identity()
    if name == "sparsemax":
        return sparsemax_module()
    raise ValueError(
        f"activation {name!r} has no torch.nn counterpart in to_torch (supported: "
        f"{', '.join(_SUPPORTED)}, and custom activations declared with torch_module=...); "
        f"build the model yourself: W_l has shape (out, in), the layout of nn.Linear.weight."
    )


def _checked_module(act: Activation, module: Any) -> nn.Module:
    """Return ``module`` if it is a ``torch.nn.Module`` computing ``act``'s closed form."""
    torch = import_torch()
    if not isinstance(module, torch.nn.Module):
        raise ValueError(
            f"torch_module of {act.name!r} must make a torch.nn.Module, got "
            f"{type(module).__name__}."
        )
    mismatch = _computes(module, act.act, 13)
    if mismatch:
        raise ValueError(f"torch_module of {act.name!r} ({module!r}) {mismatch}")
    return module


def _computes(module: Any, fn: Callable[[np.ndarray], np.ndarray], width: int) -> str:
    """Compare ``module`` (run on a float64 copy) with ``fn`` on two rows; "" when they agree."""
    torch = import_torch()
    u = np.random.default_rng(0).uniform(-4.0, 4.0, size=(2, width))
    try:
        with torch.no_grad():
            got = copy.deepcopy(module).to(torch.float64)(torch.from_numpy(u)).numpy()
    except (RuntimeError, TypeError, ValueError) as exc:
        return f"fails on a float64 array of shape {u.shape}: {type(exc).__name__}: {exc}"
    want = fn(u)
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-6, atol=1e-9):
        return (
            f"does not compute the closed form: at u = {np.round(u[0], 3).tolist()} it gives "
            f"{np.round(got[0], 4).tolist()}, the closed form {np.round(want[0], 4).tolist()}."
        )
    return ""


def _linear(n_in: int, n_out: int, dtype: torch.dtype) -> nn.Linear:
    """Return an ``nn.Linear`` with uninitialised parameters (no global RNG draw)."""
    torch = import_torch()
    return torch.nn.utils.skip_init(torch.nn.Linear, n_in, n_out, dtype=dtype)


def mlp(
    sizes: Sequence[int], activation: str = "relu", *, dtype: Any = np.float32
) -> nn.Sequential:
    """Return an uninitialised ``Linear``/activation ``nn.Sequential`` of the given sizes.

    Parameters
    ----------
    sizes : sequence of int
        ``(n_inputs, h_1, ..., h_L, n_outputs)``.
    activation : str, default="relu"
        Hidden activation (a name :func:`torch_activation` maps).
    dtype : float32 or float64, default=float32

    Returns
    -------
    torch.nn.Sequential
        Ends with the last ``Linear`` (logits).
    """
    sizes = _check_sizes(sizes)
    tdtype = _torch_dtype(dtype)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(_linear(n_in, n_out, tdtype))
        if i < len(sizes) - 2:
            layers.append(torch_activation(activation))
    return import_torch().nn.Sequential(*layers)


def _check_sizes(sizes: Sequence[int]) -> list[int]:
    out = list(sizes)
    if len(out) < 2 or any(int(s) != s or s < 1 for s in out):
        raise ValueError(f"sizes must list at least two positive integers, got {sizes!r}.")
    return [int(s) for s in out]


def _assign(model: nn.Sequential, weights: Sequence[np.ndarray], biases: Sequence[Any]) -> None:
    torch = import_torch()
    with torch.no_grad():
        for lin, W, b in zip(linear_layers(model), weights, biases, strict=True):
            lin.weight.copy_(torch.as_tensor(np.asarray(W), dtype=lin.weight.dtype))
            lin.bias.copy_(torch.as_tensor(np.asarray(b), dtype=lin.bias.dtype))


# ------------------------------------------------------------------------------ export
def to_torch(network: LiftedNetwork, output: str = "logits", *, dtype: Any = None) -> nn.Sequential:
    """Copy a fitted lifted network into a ``torch.nn.Sequential``.

    Parameters
    ----------
    network : LiftedNetwork
        A fitted network (``network.weights`` set).
    output : {"logits", "probabilities", "predict"}, default="logits"
        ``"logits"`` ends with the last ``Linear`` (the pre-activation :math:`U_L`, what
        ``nn.CrossEntropyLoss`` expects); ``"predict"`` appends the head's activation so the
        model returns :meth:`LiftedNetwork.predict` (softmax for ``softmax_xent``, sparsemax for
        ``simplex_xent``, the output activation for ``squared``); ``"probabilities"`` is the same
        for classification heads only.
    dtype : float32 or float64, optional
        Default: the network's dtype (preserved).

    Returns
    -------
    torch.nn.Sequential
        ``Linear``, activation, ..., ``Linear`` [, head activation].

    Raises
    ------
    RuntimeError
        If the network is not fitted.
    ValueError
        For an unknown ``output``, ``"probabilities"`` on a regression head, or an activation
        with no torch counterpart (see :func:`torch_activation`).

    Examples
    --------
    >>> import numpy as np, cvx_lifted as cl
    >>> net = cl.LiftedNetwork([4, 8, 3], output="softmax_xent").initialize(0)
    >>> model = to_torch(net, output="probabilities")
    >>> x = np.ones((2, 4))
    >>> bool(np.allclose(model(import_torch().from_numpy(x)).detach().numpy(), net.predict(x)))
    True
    """
    if output not in ("logits", "probabilities", "predict"):
        raise ValueError(f"output must be 'logits', 'probabilities' or 'predict', got {output!r}.")
    if not network.is_fitted:
        raise RuntimeError("the network has no weights: fit it (or initialize it) first.")
    head = network.head
    if output == "probabilities" and not head.classification:
        raise ValueError(
            f"output='probabilities' needs a classification head, this network's is "
            f"{head.name!r}; use output='predict' for its output activation."
        )
    torch = import_torch()
    tdtype = _torch_dtype(network.dtype if dtype is None else dtype)
    layers: list[nn.Module] = []
    for layer, W in enumerate(network.weights):
        layers.append(_linear(W.shape[1], W.shape[0], tdtype))
        if layer < network.n_hidden:
            layers.append(torch_activation(network.activations[layer]))
    if output != "logits":
        layers.append(_head_module(network))
    model = torch.nn.Sequential(*layers).to(tdtype)  # parameters of custom modules too
    _assign(model, network.weights, network.biases)
    return model


def _head_module(network: LiftedNetwork) -> nn.Module:
    """Return the module computing the head's prediction from the last pre-activation."""
    head = network.head
    if head.name == "softmax_xent" or not head.has_state:
        return import_torch().nn.Softmax(dim=-1)
    assert head.activation is not None
    return torch_activation(head.activation)


def from_torch(model: nn.Module, network: LiftedNetwork) -> LiftedNetwork:
    """Copy the weights of a PyTorch MLP into ``network`` (the inverse of :func:`to_torch`).

    A model trained by backprop can then be refined by BCD (``network.fit(..., warm_start=True)``)
    or used with the lifted prediction rule. The ``nn.Linear`` modules are taken in order, one
    per weight layer; in an ``nn.Sequential`` the module between two of them must be the one
    :func:`to_torch` writes for the network's activation (``nn.ReLU`` for ``relu_fenchel``, with
    the same parameters: a ``LeakyReLU``'s slope, a ``Hardtanh``'s range), and after the last
    one there may be nothing or the head's activation, so that the copy computes the same
    function.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model (its parameters are read, detached, in the network's dtype).
    network : LiftedNetwork
        The network to receive them, with the same layer sizes.

    Returns
    -------
    LiftedNetwork
        ``network``, its weights set.

    Raises
    ------
    ValueError
        When the number or the shapes of the ``Linear`` layers differ from the network's, or a
        hidden activation of an ``nn.Sequential`` is not the network's.
    """
    torch = import_torch()
    linears = linear_layers(model)
    if len(linears) != network.n_layers:
        raise ValueError(
            f"the model has {len(linears)} nn.Linear layers, the network {network.n_layers} "
            f"weight layers (layer_sizes {list(network.layer_sizes)})."
        )
    if isinstance(model, torch.nn.Sequential):
        # what lies between two Linear layers must compute the layer's activation, and what
        # follows the last one nothing or the head's prediction (compared on a probe: modules
        # of other parameters, or another function, are refused; ReLU(inplace=True) is ReLU)
        modules = list(model)
        at = [i for i, m in enumerate(modules) if isinstance(m, torch.nn.Linear)]
        for layer, (i, j) in enumerate(zip(at, [*at[1:], len(modules)], strict=True)):
            between = modules[i + 1 : j]
            if layer == network.n_hidden and not between:
                continue  # logits
            fn = (
                network.activations[layer].act if layer < network.n_hidden else network.head.predict
            )
            mismatch = _computes(torch.nn.Sequential(*between), fn, network.layer_sizes[layer + 1])
            if mismatch:
                what = (
                    f"activation {network.activations[layer].name!r}"
                    if layer < network.n_hidden
                    else f"head {network.head.name!r}"
                )
                raise ValueError(
                    f"after Linear layer {layer} the model has {[repr(m) for m in between]}, "
                    f"which {mismatch.replace('the closed form', f'the network ({what})')} The "
                    "copy would compute another function."
                )
    weights = [lin.weight.detach().cpu().numpy() for lin in linears]
    biases = [
        lin.bias.detach().cpu().numpy()
        if lin.bias is not None
        else np.zeros(lin.out_features, dtype=network.dtype)
        for lin in linears
    ]
    network.set_weights(weights, biases)
    return network


# ------------------------------------------------------------------------------ initialisers
def _random_model(
    sizes: Sequence[int],
    draw: Any,
    *,
    bias: float,
    activation: str,
    dtype: Any,
) -> nn.Sequential:
    sizes = _check_sizes(sizes)
    if not math.isfinite(bias):
        raise ValueError(f"bias must be finite, got {bias!r}.")
    model = mlp(sizes, activation, dtype=dtype)
    weights = [draw(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)]
    biases = [np.full(n_out, bias) for n_out in sizes[1:]]
    _assign(model, weights, biases)
    return model


def normal_init(
    sizes: Sequence[int],
    *,
    sigma2: float = 0.1,
    bias: float = DEFAULT_BIAS,
    seed: int | None = None,
    activation: str = "relu",
    dtype: Any = np.float32,
) -> nn.Sequential:
    r"""Return a network with every weight drawn from :math:`N(0, \sigma^2)` (paper: 0.1).

    Parameters
    ----------
    sizes : sequence of int
        ``(n_inputs, h_1, ..., h_L, n_outputs)``.
    sigma2 : float, default=0.1
        Variance of every weight (the paper's "Normal" column).
    bias : float, default=0.1
        Every bias.
    seed : int, optional
        NumPy seed of the draw.
    activation : str, default="relu"
        Hidden activation.
    dtype : float32 or float64, default=float32

    Returns
    -------
    torch.nn.Sequential
    """
    if not (math.isfinite(sigma2) and sigma2 > 0):
        raise ValueError(f"sigma2 must be a positive number, got {sigma2!r}.")
    rng = np.random.default_rng(seed)
    std = math.sqrt(sigma2)
    return _random_model(
        sizes,
        lambda n_in, n_out: rng.normal(0.0, std, (n_out, n_in)),
        bias=bias,
        activation=activation,
        dtype=dtype,
    )


def xavier_init(
    sizes: Sequence[int],
    *,
    uniform: bool = True,
    bias: float = DEFAULT_BIAS,
    seed: int | None = None,
    activation: str = "relu",
    dtype: Any = np.float32,
) -> nn.Sequential:
    r"""Return a Glorot/Xavier-initialised network (Glorot & Bengio, 2010).

    Weights :math:`U(-a, a)` with :math:`a = \sqrt{6/(n_{in} + n_{out})}` (TensorFlow's
    ``xavier_initializer`` default), or :math:`N(0, 2/(n_{in} + n_{out}))` with
    ``uniform=False``; variance :math:`2/(n_{in} + n_{out})` either way.

    Parameters
    ----------
    sizes : sequence of int
        ``(n_inputs, h_1, ..., h_L, n_outputs)``.
    uniform : bool, default=True
        Uniform (default) or normal draw.
    bias : float, default=0.1
        Every bias.
    seed : int, optional
        NumPy seed of the draw.
    activation : str, default="relu"
        Hidden activation.
    dtype : float32 or float64, default=float32

    Returns
    -------
    torch.nn.Sequential
    """
    rng = np.random.default_rng(seed)

    def draw(n_in: int, n_out: int) -> np.ndarray:
        if uniform:
            limit = math.sqrt(6.0 / (n_in + n_out))
            return rng.uniform(-limit, limit, (n_out, n_in))
        return rng.normal(0.0, math.sqrt(2.0 / (n_in + n_out)), (n_out, n_in))

    return _random_model(sizes, draw, bias=bias, activation=activation, dtype=dtype)


def _truncated_normal(rng: np.random.Generator, std: float, shape: tuple[int, int]) -> np.ndarray:
    """N(0, std^2) restricted to [-2 std, 2 std] (rejection; ~4.6% redrawn per pass)."""
    out = rng.normal(0.0, std, shape)
    bad = np.abs(out) > 2.0 * std
    while np.any(bad):
        out[bad] = rng.normal(0.0, std, int(bad.sum()))
        bad = np.abs(out) > 2.0 * std
    return out


def variance_scaling_init(
    sizes: Sequence[int],
    *,
    scale: float = 1.0,
    mode: str = "fan_in",
    distribution: str = "truncated_normal",
    bias: float = DEFAULT_BIAS,
    seed: int | None = None,
    activation: str = "relu",
    dtype: Any = np.float32,
) -> nn.Sequential:
    r"""Return a network initialised like TensorFlow's ``VarianceScaling`` (the paper's σ²-scale).

    Weights of variance :math:`\text{scale}/n`, :math:`n` the fan-in (default), fan-out or their
    mean. ``"truncated_normal"`` (TensorFlow's default) draws :math:`N(0, s^2)` cut at
    :math:`\pm 2s` with :math:`s = \sqrt{\text{scale}/n}/0.8796` so that the truncated draw keeps
    the requested variance; ``"untruncated_normal"`` draws :math:`N(0, \text{scale}/n)`;
    ``"uniform"`` draws :math:`U(\pm\sqrt{3\,\text{scale}/n})`. (TensorFlow 1's
    ``tf.contrib.layers.variance_scaling_initializer`` defaulted to ``factor=2.0``, He's
    initialisation: pass ``scale=2.0`` for it.)

    Parameters
    ----------
    sizes : sequence of int
        ``(n_inputs, h_1, ..., h_L, n_outputs)``.
    scale : float, default=1.0
        Variance numerator.
    mode : {"fan_in", "fan_out", "fan_avg"}, default="fan_in"
    distribution : {"truncated_normal", "untruncated_normal", "uniform"}, default="truncated_normal"
    bias : float, default=0.1
        Every bias.
    seed : int, optional
        NumPy seed of the draw.
    activation : str, default="relu"
        Hidden activation.
    dtype : float32 or float64, default=float32

    Returns
    -------
    torch.nn.Sequential
    """
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}.")
    if mode not in ("fan_in", "fan_out", "fan_avg"):
        raise ValueError(f"mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}.")
    if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
        raise ValueError(
            f"distribution must be 'truncated_normal', 'untruncated_normal' or 'uniform', got "
            f"{distribution!r}."
        )
    rng = np.random.default_rng(seed)

    def draw(n_in: int, n_out: int) -> np.ndarray:
        n = {"fan_in": n_in, "fan_out": n_out, "fan_avg": (n_in + n_out) / 2.0}[mode]
        var = scale / n
        if distribution == "truncated_normal":
            return _truncated_normal(rng, math.sqrt(var) / _TRUNCATED_STD, (n_out, n_in))
        if distribution == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(var), (n_out, n_in))
        limit = math.sqrt(3.0 * var)
        return rng.uniform(-limit, limit, (n_out, n_in))

    return _random_model(sizes, draw, bias=bias, activation=activation, dtype=dtype)


def lifted_init(
    network: LiftedNetwork,
    *,
    output_scale: float = 1.0,
    balance: bool = False,
    dtype: Any = np.float32,
) -> nn.Sequential:
    r"""Return a ``torch`` network holding a fitted lifted network's weights *and* biases.

    The model ends with the last ``Linear`` (logits), ready for a softmax cross-entropy.

    Parameters
    ----------
    network : LiftedNetwork
        A fitted lifted network.
    output_scale : float, default=1.0
        Factor applied to the last layer's weights and bias. A ``softmax_xent`` lifted network
        already outputs logits (1.0 is right); a ``simplex_xent`` one outputs sparsemax scores,
        whose differences are of order one, so their softmax is nearly uniform and the first
        gradient steps are large: :func:`fit_output_scale` picks the factor that minimises the
        softmax cross-entropy on training data.
    balance : bool, default=False
        Spread the factor over the layers instead of putting it all on the last one: with
        :math:`L + 1` layers, every ``W_l`` is multiplied by :math:`a = s^{1/(L+1)}` and ``b_l`` by
        :math:`a^{l+1}`. For positively homogeneous hidden activations (the ReLU family, leaky
        ReLU, identity) the network's function is the same, :math:`s` times the logits, but the
        layers keep comparable norms, so gradient steps do not blow up in the hidden layers
        (the gradient of a layer scales with the norms of the layers above it).
    dtype : float32 or float64, default=float32
        The copy's dtype.

    Returns
    -------
    torch.nn.Sequential

    Raises
    ------
    ValueError
        For a non-positive scale, or ``balance=True`` with a hidden activation that is not
        positively homogeneous.
    """
    if not (math.isfinite(output_scale) and output_scale > 0):
        raise ValueError(f"output_scale must be a positive number, got {output_scale!r}.")
    if balance:
        bad = [a.name for a in network.activations if a.name not in _HOMOGENEOUS]
        if bad:
            raise ValueError(
                f"balance=True needs positively homogeneous hidden activations "
                f"({', '.join(_HOMOGENEOUS)}), got {', '.join(bad)}."
            )
    model = to_torch(network, "logits", dtype=dtype)
    if output_scale == 1.0:
        return model
    torch = import_torch()
    linears = linear_layers(model)
    with torch.no_grad():
        if balance:
            factor = output_scale ** (1.0 / len(linears))
            cumulative = 1.0
            for lin in linears:
                cumulative *= factor
                lin.weight.mul_(factor)
                lin.bias.mul_(cumulative)
        else:
            linears[-1].weight.mul_(output_scale)
            linears[-1].bias.mul_(output_scale)
    return model


def fit_output_scale(
    network: LiftedNetwork,
    X: ArrayLike,
    y: ArrayLike,
    *,
    bounds: tuple[float, float] = (1e-2, 1e4),
) -> float:
    r"""Return the factor :math:`s` minimising the softmax cross-entropy of :math:`s\,U_L`.

    :math:`U_L` is the lifted network's last pre-activation on ``X`` (feed-forward rule). The
    cross-entropy of :math:`\mathrm{softmax}(s U_L)` is convex in :math:`s`; it is minimised over
    :math:`\log s` by a bounded scalar search (a temperature fit). Use training rows, never test
    rows. Needs NumPy/SciPy only.

    Parameters
    ----------
    network : LiftedNetwork
        A fitted classification network.
    X : array_like, shape (m, n_inputs)
        Inputs (training rows).
    y : array_like of int, shape (m,)
        Labels in ``0..n_outputs-1``.
    bounds : (float, float), default=(1e-2, 1e4)
        Search interval for :math:`s`.

    Returns
    -------
    float
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    labels = np.asarray(y).astype(np.int64).ravel()
    states = network.forward(X)
    last_hidden = states[-2] if network.n_hidden else np.asarray(X, dtype=network.dtype)
    U = np.asarray(network.preactivation(network.n_hidden, last_hidden), dtype=np.float64)
    if labels.shape[0] != U.shape[0] or labels.min() < 0 or labels.max() >= U.shape[1]:
        raise ValueError("y must hold one label in 0..n_outputs-1 per row of X.")
    rows = np.arange(U.shape[0])

    def loss(log_s: float) -> float:
        return -float(np.mean(log_softmax(np.exp(log_s) * U, axis=1)[rows, labels]))

    lo, hi = (math.log(b) for b in bounds)
    res = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def initialize(
    init: str,
    sizes: Sequence[int],
    *,
    network: LiftedNetwork | None = None,
    seed: int | None = None,
    dtype: Any = np.float32,
    **kwargs: Any,
) -> nn.Sequential:
    """Return a model initialised by name (one of :data:`INITS`).

    Parameters
    ----------
    init : {"normal", "xavier", "variance_scaling", "lifted"}
        Initialisation.
    sizes : sequence of int
        Layer sizes (checked against ``network`` for ``"lifted"``).
    network : LiftedNetwork, optional
        The fitted lifted network (``"lifted"`` only).
    seed : int, optional
        Seed of random initialisations.
    dtype : float32 or float64, default=float32
    **kwargs
        Passed to the initialiser (e.g. ``sigma2``, ``output_scale``).

    Returns
    -------
    torch.nn.Sequential

    Raises
    ------
    ValueError
        For an unknown name, or ``"lifted"`` without a matching network.
    """
    if init == "normal":
        return normal_init(sizes, seed=seed, dtype=dtype, **kwargs)
    if init == "xavier":
        return xavier_init(sizes, seed=seed, dtype=dtype, **kwargs)
    if init == "variance_scaling":
        return variance_scaling_init(sizes, seed=seed, dtype=dtype, **kwargs)
    if init == "lifted":
        if network is None:
            raise ValueError("init='lifted' needs the fitted lifted network (network=...).")
        if list(network.layer_sizes) != list(sizes):
            raise ValueError(
                f"the lifted network's sizes {list(network.layer_sizes)} differ from {list(sizes)}."
            )
        return lifted_init(network, dtype=dtype, **kwargs)
    raise ValueError(f"unknown initialisation {init!r}; choose one of {', '.join(INITS)}.")
