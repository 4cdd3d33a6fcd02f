"""Higher-order derivatives and the function transforms against PyTorch (float64).

Second and third derivatives of composite functions are compared with
``torch.autograd.grad(create_graph=True)``; ``dm.hessian``/``dm.hvp``/``dm.jvp``/
``dm.vjp``/``dm.jacobian`` with their ``torch.autograd.functional`` and ``torch.func``
counterparts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.autograd.functional as taf
import torch.func as tfunc

import dlmath as dm

RTOL = 1e-9
ATOL = 1e-11

# torch.func's internals call the deprecated torch.jit.script; not our concern
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def close(actual, desired, rtol=RTOL, atol=ATOL):
    if isinstance(actual, dm.Tensor):
        actual = actual.data
    if isinstance(desired, torch.Tensor):
        desired = desired.detach().numpy()
    actual = np.asarray(actual)
    assert actual.shape == np.shape(desired), (actual.shape, np.shape(desired))
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol, equal_nan=False)


def T(a):
    return torch.tensor(np.asarray(a, dtype=np.float64))


RNG = np.random.default_rng(2024)
X = RNG.standard_normal((3, 4))
W1 = RNG.standard_normal((4, 5)) * 0.7
W2 = RNG.standard_normal((5, 3)) * 0.7
B1 = RNG.standard_normal(5) * 0.1
LABELS = np.array([0, 2, 1])
ONEHOT = np.eye(3)[LABELS]


# Scalar functions of one array argument, written once for dm and once for torch.
def mlp_dm(w):
    return (dm.tanh(X @ w + B1) @ W2).sum() ** 2 / 10


def mlp_t(w):
    return (torch.tanh(T(X) @ w + T(B1)) @ T(W2)).sum() ** 2 / 10


def xent_dm(w):
    logits = dm.tanh(X @ W1) @ w
    return -(dm.log_softmax(logits, axis=-1) * ONEHOT).sum(axis=-1).mean()


def xent_t(w):
    logits = torch.tanh(T(X) @ T(W1)) @ w
    return -(torch.log_softmax(logits, -1) * T(ONEHOT)).sum(-1).mean()


def xent_softmax_dm(w):  # cross-entropy through softmax then log, and labels by integer indexing
    p = dm.softmax(X @ w, axis=1)
    return -dm.log(p[np.arange(3), LABELS]).sum()


def xent_softmax_t(w):
    p = torch.softmax(T(X) @ w, 1)
    return -torch.log(p[torch.arange(3), torch.from_numpy(LABELS)]).sum()


def lse_dm(x):
    return dm.logsumexp(x) + dm.logsumexp(x, axis=0).sum() * 0.5


def lse_t(x):
    return torch.logsumexp(x, (0, 1)) + torch.logsumexp(x, 0).sum() * 0.5


def prod_dm(x):
    return dm.prod(x) + dm.prod(x, axis=1).sum() + (x[0] * x[1] * x[2]).sum()


def prod_t(x):
    return torch.prod(x) + torch.prod(x, 1).sum() + (x[0] * x[1] * x[2]).sum()


def chain_dm(a):
    return dm.sin(a @ a.T @ a).sum() + (a.T @ a).var(ddof=1) + dm.sqrt((a * a).sum(axis=0) + 1).sum()


def chain_t(a):
    return torch.sin(a @ a.T @ a).sum() + (a.T @ a).var(correction=1) + torch.sqrt((a * a).sum(0) + 1).sum()


def misc_dm(x):
    return (dm.gelu(x) * dm.sigmoid(x) + dm.softplus(x) * dm.erf(x) + dm.exp(-x * x) / (1 + x ** 2)
            + dm.gelu(x, approximate="tanh") ** 3 + dm.log1p(x * x) * dm.cos(x)).sum() + dm.std(x)


def misc_t(x):
    tf = torch.nn.functional
    return (tf.gelu(x) * torch.sigmoid(x) + tf.softplus(x) * torch.erf(x) + torch.exp(-x * x) / (1 + x ** 2)
            + tf.gelu(x, approximate="tanh") ** 3 + torch.log1p(x * x) * torch.cos(x)).sum() \
        + torch.std(x, correction=0)


def shapes_dm(x):
    y = dm.concatenate([x, dm.flip(x, 0) ** 2], axis=1)
    z = dm.pad(dm.roll(y, 1, axis=1), ((1, 0), (0, 1)))
    return (dm.einsum("ij,kj->ik", z, z) ** 2).sum() / 100 + (dm.stack([x, x * x]).max(axis=0) ** 3).sum()


def shapes_t(x):
    y = torch.cat([x, torch.flip(x, (0,)) ** 2], 1)
    z = torch.nn.functional.pad(torch.roll(y, 1, 1), (0, 1, 1, 0))
    return (torch.einsum("ij,kj->ik", z, z) ** 2).sum() / 100 + (torch.stack([x, x * x]).amax(0) ** 3).sum()


FUNCS = {
    "mlp": (mlp_dm, mlp_t, W1),
    "xent": (xent_dm, xent_t, W2),
    "xent-softmax": (xent_softmax_dm, xent_softmax_t, W1),
    "logsumexp": (lse_dm, lse_t, X),
    "prod": (prod_dm, prod_t, RNG.uniform(0.5, 1.5, (3, 4))),
    # zeros: one in a row, two in a row, one in a column (the Hessian is nonzero only through them)
    "prod-zeros": (prod_dm, prod_t, np.array([[0.0, 1.5, -0.7, 1.2], [0.0, 0.0, 2.0, 0.9], [1.1, 0.8, 1.3, 0.0]])),
    "matmul-chain": (chain_dm, chain_t, X * 0.5),
    "misc": (misc_dm, misc_t, RNG.uniform(-2, 2, (2, 3))),
    "shape-ops": (shapes_dm, shapes_t, RNG.standard_normal((3, 2))),
}
IDS = list(FUNCS)


def torch_derivs(tf, x0, v, w):
    """Gradient, Hessian-vector product Hv, and third derivative contracted D^3f[v, w, .]."""
    x = T(x0).requires_grad_()
    (g,) = torch.autograd.grad(tf(x), x, create_graph=True)
    (hv,) = torch.autograd.grad((g * T(v)).sum(), x, create_graph=True)
    (t3,) = torch.autograd.grad((hv * T(w)).sum(), x)
    return g, hv, t3


@pytest.mark.parametrize("name", IDS)
def test_second_and_third_derivatives_via_nested_grad(name):
    f, tf, x0 = FUNCS[name]
    rng = np.random.default_rng(len(name))
    v, w = rng.standard_normal(x0.shape), rng.standard_normal(x0.shape)
    g_t, hv_t, t3_t = torch_derivs(tf, x0, v, w)
    close(f(dm.tensor(x0)).item(), tf(T(x0)).item())
    g = dm.grad(f)(x0)
    close(g, g_t)
    hv = dm.grad(lambda x: (dm.grad(f)(x) * v).sum())(x0)
    close(hv, hv_t)
    t3 = dm.grad(lambda x: (dm.grad(lambda y: (dm.grad(f)(y) * v).sum())(x) * w).sum())(x0)
    close(t3, t3_t, rtol=1e-8)


@pytest.mark.parametrize("name", IDS)
def test_backward_create_graph_then_backward_again(name):
    f, tf, x0 = FUNCS[name]
    rng = np.random.default_rng(len(name) + 1)
    v, w = rng.standard_normal(x0.shape), rng.standard_normal(x0.shape)
    g_t, hv_t, t3_t = torch_derivs(tf, x0, v, w)
    x = dm.tensor(x0, requires_grad=True)
    f(x).backward(create_graph=True)
    g = x.grad
    assert isinstance(g, dm.Tensor) and g.requires_grad
    close(g, g_t)
    x.grad = None
    (g * v).sum().backward(create_graph=True)
    hv = x.grad
    close(hv, hv_t)
    x.grad = None
    (hv * w).sum().backward()
    close(x.grad, t3_t, rtol=1e-8)
    assert not x.grad.requires_grad


@pytest.mark.parametrize("name", IDS)
def test_hessian_matches_torch(name):
    f, tf, x0 = FUNCS[name]
    close(dm.hessian(f)(x0), taf.hessian(tf, T(x0)))


@pytest.mark.parametrize("name", IDS)
def test_hvp_matches_torch(name):
    f, tf, x0 = FUNCS[name]
    v = np.random.default_rng(7).standard_normal(x0.shape)
    _, hv_t = taf.hvp(tf, T(x0), T(v))
    close(dm.hvp(f, x0, v), hv_t)
    # forward-over-reverse: the JVP of the gradient is the same product
    _, hv_fwd = dm.jvp(dm.grad(f), (x0,), (v,))
    close(hv_fwd, hv_t)


def test_scalar_grad_of_grad_of_grad():
    def f(x):
        return dm.sin(x) * dm.exp(x / 2) + x ** 4 * dm.tanh(x) + dm.sigmoid(3 * x) / (1 + x * x)

    def tf(x):
        return torch.sin(x) * torch.exp(x / 2) + x ** 4 * torch.tanh(x) + torch.sigmoid(3 * x) / (1 + x * x)

    for x0 in (-1.3, 0.2, 0.9):
        x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
        derivs = []
        y = tf(x)
        for _ in range(4):
            (y,) = torch.autograd.grad(y, x, create_graph=True)
            derivs.append(y.item())
        d = f
        for k in range(4):
            d = dm.grad(d)
            close(d(x0), derivs[k], rtol=1e-8)
        assert np.ndim(dm.grad(dm.grad(f))(x0)) == 0


def test_value_and_grad_with_argnums_against_torch():
    def f(w, b, x):
        return dm.logsumexp(dm.tanh(x @ w + b), axis=1).sum() * dm.sum(w * w)

    def tf(w, b, x):
        return torch.logsumexp(torch.tanh(x @ w + b), 1).sum() * torch.sum(w * w)

    ws = [T(W1).requires_grad_(), T(B1).requires_grad_(), T(X).requires_grad_()]
    out_t = tf(*ws)
    grads_t = torch.autograd.grad(out_t, ws)
    val, grads = dm.value_and_grad(f, argnums=(0, 1, 2))(W1, B1, X)
    close(val, out_t)
    for g, gt in zip(grads, grads_t, strict=True):
        close(g, gt)
    close(dm.grad(f, argnums=1)(W1, B1, X), grads_t[1])
    close(dm.grad(f, argnums=-1)(W1, B1, X), grads_t[2])
    # mixed second derivative d/db (df/dw . V)
    V = np.random.default_rng(3).standard_normal(W1.shape)
    mixed = dm.grad(lambda w, b: (dm.grad(f, 0)(w, b, X) * V).sum(), argnums=1)(W1, B1)
    (gw,) = torch.autograd.grad(tf(ws[0], ws[1], T(X)), ws[0], create_graph=True)
    (mixed_t,) = torch.autograd.grad((gw * T(V)).sum(), ws[1])
    close(mixed, mixed_t)


# ----- vjp / jvp / jacobian --------------------------------------------------------------------------------
def vec_dm(x, w):
    return dm.tanh(x @ w) * dm.softmax(x @ w, axis=-1) + dm.sin(x).sum(axis=1, keepdims=True)


def vec_t(x, w):
    return torch.tanh(x @ w) * torch.softmax(x @ w, -1) + torch.sin(x).sum(1, keepdim=True)


def test_vjp_matches_torch_func_vjp():
    out_t, vjp_t = tfunc.vjp(vec_t, T(X), T(W1))
    out, vjp_fn = dm.vjp(vec_dm, X, W1)
    close(out, out_t)
    rng = np.random.default_rng(8)
    for _ in range(2):  # the tape is reusable
        u = rng.standard_normal(out.shape)
        for a, b in zip(vjp_fn(u), vjp_t(T(u)), strict=True):
            close(a, b)


def test_jvp_matches_torch_func_jvp():
    rng = np.random.default_rng(9)
    tx, tw = rng.standard_normal(X.shape), rng.standard_normal(W1.shape)
    out_t, jv_t = tfunc.jvp(vec_t, (T(X), T(W1)), (T(tx), T(tw)))
    out, jv = dm.jvp(vec_dm, (X, W1), (tx, tw))
    close(out, out_t)
    close(jv, jv_t)
    # one primal / tangent, and a function whose output is a scalar
    _, jv1_t = tfunc.jvp(lse_t, (T(X),), (T(tx),))
    _, jv1 = dm.jvp(lse_dm, (X,), (tx,))
    close(jv1, jv1_t)
    assert np.ndim(jv1) == 0


def test_jvp_of_function_with_piecewise_ops():
    def f(x):
        return dm.relu(x) * dm.abs(x) + dm.max(x, axis=0) + dm.clip(x, -0.5, 0.5) + dm.maximum(x, 0.3)

    def tf(x):
        return torch.relu(x) * torch.abs(x) + torch.amax(x, 0) + torch.clamp(x, -0.5, 0.5) + torch.maximum(
            x, torch.tensor(0.3, dtype=torch.float64))

    v = np.random.default_rng(10).standard_normal(X.shape)
    _, jv_t = tfunc.jvp(tf, (T(X),), (T(v),))
    _, jv = dm.jvp(f, (X,), (v,))
    close(jv, jv_t)
    close(dm.jacobian(f, mode="forward")(X), tfunc.jacrev(tf)(T(X)))


@pytest.mark.parametrize("mode", ["forward", "reverse", "auto"])
def test_jacobian_modes_match_torch_jacrev(mode):
    close(dm.jacobian(vec_dm, mode=mode)(X, W1), tfunc.jacrev(vec_t)(T(X), T(W1)))
    close(dm.jacobian(vec_dm, argnums=1, mode=mode)(X, W1), tfunc.jacrev(vec_t, argnums=1)(T(X), T(W1)))
    # a 1-D -> 1-D map with more outputs than inputs, and one with fewer
    a = np.random.default_rng(11).standard_normal((6, 2))

    def up(x):
        return dm.tanh(a @ x) ** 2

    def down(x):
        return dm.logsumexp(dm.reshape(x, (3, 4)), axis=1)

    close(dm.jacobian(up, mode=mode)(np.array([0.3, -0.8])),
          tfunc.jacrev(lambda x: torch.tanh(T(a) @ x) ** 2)(T([0.3, -0.8])))
    x12 = np.linspace(-1, 1, 12)
    close(dm.jacobian(down, mode=mode)(x12), tfunc.jacrev(lambda x: torch.logsumexp(x.reshape(3, 4), 1))(T(x12)))
    # scalar output and scalar input
    close(dm.jacobian(lse_dm, mode=mode)(X), tfunc.jacrev(lse_t)(T(X)))
    close(dm.jacobian(lambda s: dm.stack([dm.sin(s), s * s, dm.exp(s)]), mode=mode)(0.4),
          tfunc.jacrev(lambda s: torch.stack([torch.sin(s), s * s, torch.exp(s)]))(T(0.4)))


def test_jacobian_of_jacobian_and_third_order_tensor():
    x0 = np.array([0.3, -0.5, 0.9])

    def f(x):
        return dm.logsumexp(x) + (x[0] * x[1] * x[2]) + dm.sum(dm.tanh(x) ** 3)

    def tf(x):
        return torch.logsumexp(x, 0) + (x[0] * x[1] * x[2]) + torch.sum(torch.tanh(x) ** 3)

    d3_t = taf.jacobian(lambda x: taf.hessian(tf, x, create_graph=True), T(x0))
    close(dm.jacobian(dm.hessian(f))(x0), d3_t)
    close(dm.jacobian(dm.jacobian(dm.grad(f), mode="forward"), mode="reverse")(x0), d3_t)
    close(dm.hessian(f)(x0), taf.hessian(tf, T(x0)))


def test_hessian_of_vector_valued_map_composition():
    """Hessian of a function that calls transforms internally (jvp inside grad)."""
    v = np.array([0.5, -1.0, 2.0])

    def directional(x):
        _, jv = dm.jvp(lambda y: dm.sum(dm.sin(y) * dm.exp(y)), (x,), (v,))
        return jv

    def tdirectional(x):
        _, jv = tfunc.jvp(lambda y: torch.sum(torch.sin(y) * torch.exp(y)), (x,), (T(v),))
        return jv

    x0 = np.array([0.1, 0.7, -0.4])
    close(dm.grad(directional)(x0), tfunc.grad(tdirectional)(T(x0)))
    close(dm.hessian(directional)(x0), tfunc.hessian(tdirectional)(T(x0)))


def test_hessian_of_power_in_base_and_exponent_with_zero_exponents():
    z0 = np.array([0.5, 0.7, 2.0, 1.3, 1.5, 0.0, 2.0, 0.0, 3.0, -1.5])  # bases, then exponents (some zero)

    def f(z):
        return dm.sum(z[:5] ** z[5:]) + dm.sum(z[:5] ** 2.0 * z[5:])

    def tf(z):
        return torch.sum(z[:5] ** z[5:]) + torch.sum(z[:5] ** 2.0 * z[5:])

    close(dm.grad(f)(z0), tfunc.grad(tf)(T(z0)))
    h = dm.hessian(f)(z0)
    h_t = taf.hessian(tf, T(z0)).numpy().copy()
    # torch masks d(x^y)/dx where y == 0 with masked_fill, which also zeroes its derivative in y:
    # the row block d/dy(df/dx) is then 0 instead of x^(y-1) (1/x at y = 0; torch's own
    # d/dx(df/dy) block has it right). Take the mixed block from torch's correct side.
    h_t[:5, 5:] = h_t[5:, :5].T
    # at the y == 0 entries the mixed derivative is 1/x (first term) + 2x (second term)
    np.testing.assert_allclose(np.diag(h_t[:5, 5:])[[0, 2]], [1 / 0.5 + 1.0, 1 / 2.0 + 4.0], rtol=1e-12)
    close(h, h_t)
    close(h, h.T)


def test_transforms_compose_with_each_other():
    rng = np.random.default_rng(12)
    x0, w0, v, ct = rng.standard_normal(3), rng.standard_normal((2, 3)), rng.standard_normal(3), rng.standard_normal(2)
    tw = T(w0)

    def f(x, w):
        return dm.tanh(w @ x) * dm.sum(x ** 2)

    def tf(x, w):
        return torch.tanh(w @ x) * torch.sum(x ** 2)

    close(dm.hessian(lambda x, w: dm.sum(f(x, w) ** 3), argnums=1)(x0, w0),
          taf.hessian(lambda w: torch.sum(tf(T(x0), w) ** 3), tw))
    for mode in ("forward", "reverse"):
        close(dm.grad(lambda x: dm.sum(dm.jacobian(lambda y: f(y, w0), mode=mode)(x) ** 2))(x0),
              tfunc.grad(lambda x: torch.sum(tfunc.jacrev(lambda y: tf(y, tw))(x) ** 2))(T(x0)))
    # through the primal, the tangent and the cotangent
    close(dm.grad(lambda x: dm.sum(dm.vjp(lambda y: f(y, w0), x)[1](ct)[0] ** 2))(x0),
          tfunc.grad(lambda x: torch.sum(tfunc.vjp(lambda y: tf(y, tw), x)[1](T(ct))[0] ** 2))(T(x0)))
    close(dm.grad(lambda c: dm.sum(dm.vjp(lambda y: f(y, w0), x0)[1](c)[0] ** 2))(ct),
          tfunc.grad(lambda c: torch.sum(tfunc.vjp(lambda y: tf(y, tw), T(x0))[1](c)[0] ** 2))(T(ct)))
    close(dm.grad(lambda x: dm.sum(dm.jvp(lambda y: f(y, w0), (x,), (v,))[1] ** 2))(x0),
          tfunc.grad(lambda x: torch.sum(tfunc.jvp(lambda y: tf(y, tw), (x,), (T(v),))[1] ** 2))(T(x0)))
    close(dm.grad(lambda t: dm.sum(dm.jvp(lambda y: f(y, w0), (x0,), (t,))[1] ** 2))(v),
          tfunc.grad(lambda t: torch.sum(tfunc.jvp(lambda y: tf(y, tw), (T(x0),), (t,))[1] ** 2))(T(v)))


def test_backward_with_a_seed_that_requires_grad():
    rng = np.random.default_rng(13)
    x0, ct = rng.standard_normal(3), rng.standard_normal(3)
    x, s = dm.tensor(x0, requires_grad=True), dm.tensor(ct, requires_grad=True)
    (dm.sin(x) * x).backward(s, create_graph=True)
    dm.sum(x.grad ** 2).backward()
    tx, ts = T(x0).requires_grad_(), T(ct).requires_grad_()
    (gt,) = torch.autograd.grad(torch.sin(tx) * tx, tx, ts, create_graph=True)
    torch.sum(gt ** 2).backward()
    close(s.grad, ts.grad)


def test_transforms_keep_float32():
    x0 = np.array([0.3, -1.2, 0.8], dtype=np.float32)

    def f(x):
        return dm.sum(dm.tanh(x) ** 2)

    assert dm.grad(f)(x0).dtype == np.float32
    assert dm.hessian(f)(x0).dtype == np.float32
    assert dm.jacobian(lambda x: dm.tanh(x) ** 2, mode="forward")(x0).dtype == np.float32
    out, jv = dm.jvp(lambda x: dm.tanh(x) ** 2, (x0,), (x0,))
    assert out.dtype == np.float32 and jv.dtype == np.float32
    t = torch.tensor(x0)
    close(dm.hessian(f)(x0), taf.hessian(lambda x: torch.sum(torch.tanh(x) ** 2), t), rtol=1e-5, atol=1e-6)


def test_nested_transforms_see_tensors_captured_from_the_outer_one():
    # the inner function closes over the outer variable x: JAX and torch.func differentiate through it
    from torch.func import grad as tgrad

    assert dm.grad(lambda x: x * dm.grad(lambda y: x * y)(2.0))(3.0) == pytest.approx(6.0)
    t = tgrad(lambda x: x * tgrad(lambda y: x * y)(torch.tensor(2.0, dtype=torch.float64)))(
        torch.tensor(3.0, dtype=torch.float64))
    assert float(t) == pytest.approx(6.0)
    np.testing.assert_allclose(
        dm.grad(lambda x: dm.sum(dm.jacobian(lambda y: x * y)(np.ones(2))))(np.array([3.0, 1.0])), [1.0, 1.0])
    assert dm.grad(lambda x: dm.value_and_grad(lambda y: x * y)(2.0)[0])(3.0) == pytest.approx(2.0)
    assert dm.grad(lambda x: dm.jvp(lambda y: x * y, (2.0,), (1.0,))[1])(3.0) == pytest.approx(1.0)
    assert dm.grad(lambda x: dm.vjp(lambda y: x * y, 2.0)[1](1.0)[0])(3.0) == pytest.approx(1.0)
    # an inner transform's own leaf that escapes does not make the outer result a Tensor
    assert isinstance(dm.grad(lambda x: dm.value_and_grad(lambda y: x * y)(2.0)[0])(3.0), np.floating)


def test_transform_argument_errors_are_clear():
    f2 = lambda x, y: dm.sum(x * y)  # noqa: E731
    with pytest.raises(dm.GradientError, match="twice"):
        dm.grad(f2, argnums=(0, 0))(np.ones(2), np.ones(2))
    with pytest.raises(dm.GradientError, match="one argnum"):
        dm.jacobian(f2, argnums=(0, 1))
    with pytest.raises(dm.ShapeError, match="tuple"):
        dm.grad(lambda x: (dm.sum(x), dm.sum(x)))(np.ones(2))
    np.testing.assert_allclose(dm.grad(f2, argnums=np.int64(1))(np.ones(2) * 3, np.ones(2)), [3.0, 3.0])
    assert dm.jacobian(lambda x: x[:0])(np.ones(3)).shape == (0, 3)
