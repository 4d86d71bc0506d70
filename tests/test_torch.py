# SPDX-License-Identifier: Apache-2.0
"""PyTorch interop: export, initialisers, trainer."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import cvx_lifted as cl  # noqa: E402
from cvx_lifted.activations import get_activation  # noqa: E402
from cvx_lifted.datasets import load_digits  # noqa: E402
from cvx_lifted.interop import torch as ct  # noqa: E402
from cvx_lifted.kernels import project_simplex  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def digits():
    X, y, Xt, yt = load_digits(dtype=np.float32)
    return X[:400], y[:400], Xt[:200], yt[:200]


def _random_net(sizes, activation, output="softmax_xent", dtype=np.float64, seed=0, **kw):
    net = cl.LiftedNetwork(sizes, activation=activation, output=output, dtype=dtype, **kw)
    net.initialize(seed)
    rng = np.random.default_rng(seed + 1)
    # non-zero biases so that bias copying is exercised
    net.set_weights(net.weights, [rng.normal(0, 0.3, b.shape) for b in net.biases])
    return net


def _inputs(n, width, dtype, seed=3):
    return np.random.default_rng(seed).normal(0, 1, (n, width)).astype(dtype)


ACTIVATIONS = [
    "relu",
    "relu_fenchel",
    "relu_l1",
    get_activation("leaky_relu", alpha=0.1),
    get_activation("leaky_relu_fenchel", alpha=0.2),
    "sigmoid",
    "tanh",
    "hard_tanh",
    "hard_sigmoid",
    get_activation("clip", lo=-0.5, hi=2.0),
    "identity",
]


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda a: getattr(a, "name", a))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_torch_matches_feed_forward(activation, dtype):
    net = _random_net([7, 9, 6, 4], activation, dtype=dtype)
    X = _inputs(50, 7, dtype)
    model = ct.to_torch(net, output="probabilities")
    assert model[0].weight.dtype == (torch.float32 if dtype == np.float32 else torch.float64)
    with torch.no_grad():
        out = model(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(out, net.predict(X), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("sizes", "output", "kw"),
    [
        ([5, 3], "simplex_xent", {}),
        ([5, 8, 4], "simplex_xent", {}),
        ([5, 8, 7, 6, 4], "simplex_xent", {}),
        ([5, 8, 4], "softmax_xent", {}),
        ([5, 8, 2], "squared", {}),
        ([5, 8, 2], "squared", {"output_activation": "relu"}),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_torch_heads_and_depths(sizes, output, kw, dtype):
    net = _random_net(sizes, "relu_fenchel", output=output, dtype=dtype, **kw)
    X = _inputs(40, sizes[0], dtype)
    with torch.no_grad():
        predicted = ct.to_torch(net, output="predict")(torch.from_numpy(X)).numpy()
        logits = ct.to_torch(net)(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(predicted, net.predict(X), atol=1e-5, rtol=0)
    last_hidden = net.forward(X)[-2] if net.n_hidden else X
    U = net.preactivation(net.n_hidden, last_hidden)
    np.testing.assert_allclose(logits, U, atol=1e-5, rtol=0)


def test_to_torch_trained_network_and_dtype_override(digits):
    X, y, Xt, _ = digits
    net = cl.LiftedNetwork([64, 16, 10], activation="relu_fenchel", output="simplex_xent")
    net.fit(X, np.eye(10)[y], max_iter=2, random_state=0)
    model = ct.to_torch(net, "probabilities")
    assert model[0].weight.dtype == torch.float64  # the network's dtype is preserved
    with torch.no_grad():
        out = model(torch.from_numpy(Xt.astype(np.float64))).numpy()
    np.testing.assert_allclose(out, net.predict(Xt), atol=1e-5, rtol=0)
    model32 = ct.to_torch(net, "probabilities", dtype=np.float32)
    assert model32[0].weight.dtype == torch.float32
    with torch.no_grad():
        out32 = model32(torch.from_numpy(Xt)).numpy()
    np.testing.assert_allclose(out32, net.predict(Xt), atol=1e-5, rtol=0)


def test_to_torch_errors():
    net = cl.LiftedNetwork([4, 3, 2], output="squared")
    with pytest.raises(RuntimeError, match="fit"):
        ct.to_torch(net)
    net.initialize(0)
    with pytest.raises(ValueError, match="classification"):
        ct.to_torch(net, output="probabilities")
    with pytest.raises(ValueError, match="output must be"):
        ct.to_torch(net, output="softmax")
    with pytest.raises(ValueError, match="float32 or float64"):
        ct.to_torch(net, dtype=np.int32)
    with pytest.raises(ValueError, match="no torch.nn counterpart"):
        ct.torch_activation("sign")
    with pytest.raises(ValueError, match="unknown activation|Unknown activation|unknown"):
        ct.torch_activation("no_such_activation")


def test_sparsemax_module_matches_kernel():
    U = np.random.default_rng(0).normal(0, 2, (30, 7))
    with torch.no_grad():
        out = ct.sparsemax_module()(torch.from_numpy(U)).numpy()
    np.testing.assert_allclose(out, project_simplex(U), atol=1e-12)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)


def test_clip_with_infinite_bounds_is_identity():
    module = ct.torch_activation(get_activation("clip", lo=-np.inf, hi=np.inf))
    assert isinstance(module, torch.nn.Identity)


# ------------------------------------------------------------------------------ initialisers
SIZES = [300, 200, 10]


def _weights(model):
    return [lin.weight.detach().double().numpy() for lin in ct.linear_layers(model)]


def _biases(model):
    return [lin.bias.detach().double().numpy() for lin in ct.linear_layers(model)]


@pytest.mark.parametrize(
    ("init", "variance"),
    [
        ("normal", lambda n_in, n_out: 0.1),
        ("xavier", lambda n_in, n_out: 2.0 / (n_in + n_out)),
        ("variance_scaling", lambda n_in, n_out: 1.0 / n_in),
    ],
)
def test_initialiser_statistics(init, variance):
    model = ct.initialize(init, SIZES, seed=0)
    Ws, bs = _weights(model), _biases(model)
    assert [W.shape for W in Ws] == [(200, 300), (10, 200)]
    assert model[0].weight.dtype == torch.float32
    assert isinstance(model[1], torch.nn.ReLU) and len(model) == 3
    for W, b, n_in, n_out in zip(Ws, bs, SIZES[:-1], SIZES[1:], strict=True):
        assert abs(W.mean()) < 0.05 * math.sqrt(variance(n_in, n_out))
        assert W.var() == pytest.approx(variance(n_in, n_out), rel=0.1)
        np.testing.assert_allclose(b, 0.1, atol=1e-7)


def test_variance_scaling_is_truncated_at_two_std():
    W = _weights(ct.variance_scaling_init(SIZES, seed=1))[0]
    std = math.sqrt(1.0 / 300) / 0.87962566103423978
    assert np.abs(W).max() <= 2 * std + 1e-7
    W_he = _weights(ct.variance_scaling_init(SIZES, scale=2.0, seed=1))[0]
    assert W_he.var() == pytest.approx(2.0 / 300, rel=0.1)
    W_uniform = _weights(ct.variance_scaling_init(SIZES, distribution="uniform", seed=1))[0]
    assert W_uniform.var() == pytest.approx(1.0 / 300, rel=0.1)


def test_initialisers_are_seeded_and_validate():
    a, b = ct.xavier_init(SIZES, seed=3), ct.xavier_init(SIZES, seed=3)
    c = ct.xavier_init(SIZES, seed=4)
    np.testing.assert_array_equal(_weights(a)[0], _weights(b)[0])
    assert not np.array_equal(_weights(a)[0], _weights(c)[0])
    assert ct.normal_init([4, 3], seed=0, dtype=np.float64)[0].weight.dtype == torch.float64
    with pytest.raises(ValueError, match="unknown initialisation"):
        ct.initialize("he", SIZES)
    with pytest.raises(ValueError, match="needs the fitted lifted network"):
        ct.initialize("lifted", SIZES)
    with pytest.raises(ValueError, match="sizes"):
        ct.xavier_init([10])
    with pytest.raises(ValueError, match="sigma2"):
        ct.normal_init(SIZES, sigma2=0.0)
    with pytest.raises(ValueError, match="mode"):
        ct.variance_scaling_init(SIZES, mode="fan_sideways")


@pytest.mark.parametrize("balance", [False, True])
def test_lifted_init_scales_the_logits(balance):
    net = _random_net([6, 8, 5, 3], "relu_fenchel", output="simplex_xent")
    X = _inputs(20, 6, np.float64)
    model = ct.lifted_init(net, output_scale=7.0, balance=balance, dtype=np.float64)
    with torch.no_grad():
        logits = model(torch.from_numpy(X)).numpy()
    U = net.preactivation(net.n_hidden, net.forward(X)[-2])
    np.testing.assert_allclose(logits, 7.0 * U, rtol=1e-10, atol=1e-10)
    bs = _biases(model)
    if balance:
        norms = [np.linalg.norm(W) for W in _weights(model)]
        base = [np.linalg.norm(W) for W in net.weights]
        np.testing.assert_allclose(np.array(norms) / base, 7.0 ** (1 / 3))
    else:
        np.testing.assert_allclose(bs[0], net.biases[0])
    sigmoid_net = _random_net([6, 4, 3], "sigmoid", output="simplex_xent")
    with pytest.raises(ValueError, match="homogeneous"):
        ct.lifted_init(sigmoid_net, output_scale=2.0, balance=True)


def test_fit_output_scale_minimises_the_cross_entropy(digits):
    from scipy.special import log_softmax

    X, y, _, _ = digits
    net = cl.LiftedNetwork([64, 16, 10], activation="relu_fenchel", output="simplex_xent")
    net.fit(X, np.eye(10)[y], max_iter=3, random_state=0)
    s = ct.fit_output_scale(net, X, y)
    U = net.preactivation(1, net.forward(X)[0])

    def loss(scale):
        return -np.mean(log_softmax(scale * U, axis=1)[np.arange(len(y)), y])

    assert s > 1.0  # sparsemax scores are too flat for a softmax
    assert loss(s) <= min(loss(1.0), loss(0.8 * s), loss(1.25 * s)) + 1e-9


def test_paper_learning_rate():
    assert ct.paper_learning_rate(1e-5) == pytest.approx(1e-3)
    assert ct.paper_learning_rate(1e-6) == pytest.approx(1e-4)
    with pytest.raises(ValueError):
        ct.paper_learning_rate(-1.0)


# ------------------------------------------------------------------------------ trainer
def test_train_reduces_the_loss_and_is_deterministic(digits):
    X, y, Xt, yt = digits

    def run(seed):
        model = ct.xavier_init([64, 32, 10], seed=0)
        return ct.train(model, X, y, Xt, yt, epochs=4, batch_size=20, lr=0.3, seed=seed)

    a, b, c = run(0), run(0), run(1)
    assert len(a.test_accuracy) == len(a.train_loss) == len(a.seconds) == 5
    assert a.train_loss[-1] < 0.5 * a.train_loss[0]
    assert a.test_accuracy[-1] > a.test_accuracy[0] + 0.3
    assert a.test_accuracy == b.test_accuracy and a.train_loss == b.train_loss
    assert a.train_loss != c.train_loss  # a different batch order
    assert a.seconds[0] == 0.0 and all(np.diff(a.seconds) >= 0)
    assert not a.diverged
    assert a.epochs_to_reach(a.test_accuracy[-1]) <= 4
    assert a.seconds_to_reach(2.0) is None
    assert a.as_dict()["config"]["lr"] == 0.3


def test_train_adam_and_penalty(digits):
    X, y, Xt, yt = digits
    model = ct.variance_scaling_init([64, 16, 10], seed=0)
    kw = {"epochs": 2, "batch_size": 20, "lr": 1e-2, "optimizer": "adam", "rho": 0.0, "seed": 0}
    res = ct.train(model, X, y, Xt, yt, **kw)
    assert res.test_accuracy[-1] > 0.5
    # a huge penalty drives the weights towards zero
    model = ct.xavier_init([64, 16, 10], seed=0)
    before = float(ct.linear_layers(model)[0].weight.detach().norm())
    ct.train(model, X, y, Xt, yt, epochs=2, lr=0.1, rho=1.0, seed=0)
    assert float(ct.linear_layers(model)[0].weight.detach().norm()) < 0.2 * before


def test_train_divergence_is_recorded(digits):
    X, y, Xt, yt = digits
    model = ct.normal_init([64, 16, 10], seed=0)
    res = ct.train(model, X, y, Xt, yt, epochs=3, lr=1e12, seed=0)
    assert res.diverged
    assert len(res.test_accuracy) == 4 and len(res.seconds) == 4


def test_train_rejects_bad_input(digits):
    X, y, Xt, yt = digits
    model = ct.xavier_init([64, 8, 10], seed=0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        ct.train(model, X, y, Xt, yt, optimizer="lbfgs")
    with pytest.raises(ValueError, match="lr"):
        ct.train(model, X, y, Xt, yt, lr=0.0)
    with pytest.raises(ValueError, match="batch_size"):
        ct.train(model, X, y, Xt, yt, batch_size=0)
    with pytest.raises(ValueError, match="one label per row"):
        ct.train(model, X, y[:-1], Xt, yt)


def test_from_torch_reads_a_trained_model_back_and_refuses_another_function():
    net = cl.LiftedNetwork([4, 8, 6, 3], activation="tanh", output="softmax_xent").initialize(0)
    model = ct.to_torch(net, dtype=np.float64)
    with torch.no_grad():  # as if Adam had trained it
        for p in model.parameters():
            p.add_(0.1)
    back = ct.from_torch(model, cl.LiftedNetwork([4, 8, 6, 3], "tanh", output="softmax_xent"))
    x = np.random.default_rng(0).normal(size=(5, 4))
    probs = torch.softmax(model(torch.from_numpy(x)), dim=-1).detach().numpy()
    np.testing.assert_allclose(back.predict(x), probs, rtol=1e-12)
    # tensors that require grad are accepted by set_weights too
    linears = ct.linear_layers(model)
    back.set_weights([m.weight for m in linears], [m.bias for m in linears])
    with pytest.raises(ValueError, match=r"layer 0 the model has \['ReLU\(\)'\], which does not"):
        ct.from_torch(ct.mlp([4, 8, 6, 3], "relu"), back)
    leaky = cl.LiftedNetwork([4, 8, 3], activation=cl.get_activation("leaky_relu", alpha=0.3))
    with pytest.raises(ValueError, match=r"compute the network \(activation 'leaky_relu'\)"):
        ct.from_torch(ct.to_torch(leaky.initialize(0)), cl.LiftedNetwork([4, 8, 3], "leaky_relu"))
    relu = cl.LiftedNetwork([4, 8, 3], output="softmax_xent")
    same = torch.nn.Sequential(  # the same function written otherwise: accepted
        torch.nn.Linear(4, 8), torch.nn.ReLU(inplace=True), torch.nn.Linear(8, 3),
        torch.nn.Softmax(dim=1),
    )  # fmt: skip
    ct.from_torch(same, relu)
    signed = cl.LiftedNetwork([4, 8, 3], output="squared", output_activation="sign")
    ct.from_torch(ct.mlp([4, 8, 3]), signed)  # logits only: the head needs no torch module
    trailing = torch.nn.Sequential(*ct.to_torch(net), torch.nn.Sigmoid())
    with pytest.raises(ValueError, match=r"after Linear layer 2 the model has \['Sigmoid\(\)'\]"):
        ct.from_torch(trailing, back)
    ct.from_torch(ct.to_torch(net, "predict"), back)  # the head's softmax is its own
    with pytest.raises(ValueError, match="the model has 2 nn.Linear layers, the network 3"):
        ct.from_torch(ct.mlp([4, 8, 3]), back)


def test_a_custom_activation_with_a_torch_module_goes_to_torch_and_back():
    import cvxpy as cp

    def declare(name, module):
        return cl.custom_activation(
            name=name, register=False, torch_module=module,
            divergence=lambda u, z: 0.5 * cp.sum_squares(z - u) + 0.1 * cp.norm1(z),
            closed_form=lambda u: np.sign(u) * np.maximum(np.abs(u) - 0.1, 0.0),
        )  # fmt: skip

    soft = declare("soft_for_torch", lambda: torch.nn.Softshrink(0.1))
    net = cl.LiftedNetwork([4, 6, 3], activation=soft, output="softmax_xent").initialize(0)
    model = ct.to_torch(net, "probabilities", dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(5, 4))
    np.testing.assert_allclose(model(torch.from_numpy(x)).detach().numpy(), net.predict(x))
    ct.from_torch(model, cl.LiftedNetwork([4, 6, 3], activation=soft, output="softmax_xent"))
    wrong = declare("soft_wrong_torch", torch.nn.ReLU)
    with pytest.raises(ValueError, match=r"torch_module of 'soft_wrong_torch' \(ReLU\(\)\) does"):
        ct.to_torch(cl.LiftedNetwork([4, 6, 3], activation=wrong).initialize(0))
    with pytest.raises(ValueError, match="no torch.nn counterpart"):
        ct.torch_activation(declare("soft_no_torch", None))
    named_relu = declare("relu", lambda: torch.nn.Softshrink(0.1))  # not the built-in's module
    assert isinstance(ct.torch_activation(named_relu), torch.nn.Softshrink)
    # a module with parameters, exported in float32, and a changed parameter refused on the way back
    prelu = cl.custom_activation(
        name="prelu_zero", register=False, torch_module=lambda: torch.nn.PReLU(init=0.0),
        divergence=lambda u, z: 0.5 * cp.sum_squares(z - u), domain=lambda u, z: [z >= 0],
        closed_form=lambda u: np.maximum(u, 0.0),
    )  # fmt: skip
    net = cl.LiftedNetwork([4, 6, 3], activation=prelu, output="softmax_xent").initialize(0)
    model = ct.to_torch(net, "probabilities", dtype=np.float32)
    out = model(torch.from_numpy(x.astype(np.float32))).detach().numpy()
    np.testing.assert_allclose(out, net.predict(x), atol=1e-6)
    with torch.no_grad():
        model[1].weight.fill_(0.5)
    with pytest.raises(ValueError, match=r"PReLU\(num_parameters=1\)'\], which does not compute"):
        ct.from_torch(model, net)
    with pytest.raises(ValueError, match="not ReLU instance"):
        declare("instance", torch.nn.ReLU())
