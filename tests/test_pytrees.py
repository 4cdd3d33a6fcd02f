"""Pytrees (dlmath/autodiff/pytree.py) and the transforms' pytree arguments/results and has_aux, against
torch.func (grad with has_aux, jacrev on dict inputs, vjp, jvp) and closed forms."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import torch
import torch.func as tfunc
from hypothesis import given, settings
from hypothesis import strategies as st

import dlmath as dm
from dlmath.autodiff.pytree import tree_flatten, tree_map, tree_structure, tree_unflatten

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
HYP = settings(max_examples=20, deadline=None)
seeds = st.integers(0, 2**32 - 1)
Pair = namedtuple("Pair", ["left", "right"])


def _close(a, b, tol=1e-12):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=tol, atol=tol)


def _trees_close(ours, theirs):
    leaves, d = tree_flatten(ours)
    tleaves, td = tree_flatten(theirs)
    assert d == td, (d, td)
    for x, t in zip(leaves, tleaves, strict=True):
        t = t.detach().numpy() if isinstance(t, torch.Tensor) else t
        assert isinstance(x, (np.ndarray, np.generic)), type(x)
        assert np.shape(x) == np.shape(t)
        _close(x, t)


def _torch(tree):
    return tree_map(lambda x: torch.tensor(np.asarray(x, dtype=np.float64)), tree)


# ----- the pytree module ----------------------------------------------------------------------------------------
def test_flatten_unflatten_round_trip_and_jax_order():
    tree = {"b": [1, (2, None)], "a": Pair(3, {"z": 4, "y": 5}), "c": ()}
    leaves, treedef = tree_flatten(tree)
    assert leaves == [3, 5, 4, 1, 2]  # dict keys sorted, as JAX
    back = tree_unflatten(treedef, leaves)
    assert back == tree and isinstance(back["a"], Pair)
    assert tree_unflatten(treedef, [x * 10 for x in leaves])["a"].right == {"z": 40, "y": 50}
    assert tree_flatten(None) == ([], tree_structure(None))
    assert tree_flatten(np.ones(2))[0][0].shape == (2,)
    assert tree_map(lambda x, y: x + y, (1, [2]), (10, [20])) == (11, [22])
    with pytest.raises(ValueError):
        tree_map(lambda x, y: x, (1, 2), [1, 2])
    with pytest.raises(ValueError):
        tree_unflatten(treedef, [1, 2])


# ----- grad and value_and_grad ----------------------------------------------------------------------------------
def _mlp_loss(p, x):
    h = dm.tanh(x @ p["w1"] + p["b1"])
    out = h @ p["w2"]
    return dm.sum(out * out)


def _tmlp_loss(p, x):
    h = torch.tanh(x @ p["w1"] + p["b1"])
    out = h @ p["w2"]
    return (out * out).sum()


def _params(seed):
    rng = np.random.default_rng(seed)
    return {"w1": rng.standard_normal((3, 4)), "b1": rng.standard_normal(4), "w2": rng.standard_normal((4, 2))}


@HYP
@given(seeds)
def test_grad_of_dict_params_against_torch_func(seed):
    p = _params(seed)
    x = np.random.default_rng(seed + 1).standard_normal((5, 3))
    g = dm.grad(_mlp_loss)(p, x)
    tg = tfunc.grad(_tmlp_loss)(_torch(p), torch.tensor(x))
    _trees_close(g, tg)
    v, g2 = dm.value_and_grad(_mlp_loss)(p, x)
    _close(v, _tmlp_loss(_torch(p), torch.tensor(x)).item())
    _trees_close(g2, tg)


@HYP
@given(seeds)
def test_grad_has_aux_against_torch_func(seed):
    p = _params(seed)
    x = np.random.default_rng(seed + 1).standard_normal((5, 3))

    def loss(p, x):
        value = _mlp_loss(p, x)
        return value, {"value": value, "h": dm.tanh(x @ p["w1"]), "tag": "run"}

    def tloss(p, x):
        value = _tmlp_loss(p, x)
        return value, {"value": value.detach(), "h": torch.tanh(x @ p["w1"]).detach()}
    g, aux = dm.grad(loss, has_aux=True)(p, x)
    tg, taux = tfunc.grad(tloss, has_aux=True)(_torch(p), torch.tensor(x))
    _trees_close(g, tg)
    assert aux["tag"] == "run"
    _close(aux["value"], taux["value"].numpy())
    _close(aux["h"], taux["h"].numpy())
    assert isinstance(aux["h"], np.ndarray)  # arrays at top level, cut from the tape
    (v, aux2), g2 = dm.value_and_grad(loss, has_aux=True)(p, x)
    _close(v, taux["value"].numpy())
    _trees_close(g2, tg)
    assert aux2["tag"] == "run"


def test_grad_argnums_tuple_of_pytrees_and_closed_forms():
    a = (np.array([1.0, 2.0]), [np.array(3.0)])
    b = {"k": np.array([[1.0, -1.0]])}

    def f(a, b, c):
        return dm.sum(a[0] * a[1][0]) + dm.sum(b["k"] ** 2) * c

    ga, gb = dm.grad(f, argnums=(0, 1))(a, b, 2.0)
    _close(ga[0], [3.0, 3.0])
    assert isinstance(ga, tuple) and isinstance(ga[1], list)
    _close(ga[1][0], 3.0)
    _close(gb["k"], [[4.0, -4.0]])
    gc = dm.grad(f, argnums=2)(a, b, 2.0)
    _close(gc, 2.0)
    # a list of numbers is still an array (not a pytree of scalars)
    _close(dm.grad(lambda x: dm.sum(x ** 2))([1.0, 2.0]), [2.0, 4.0])
    # None and empty containers have no leaves
    assert dm.grad(lambda x, n: dm.sum(x["a"]), argnums=(0, 1))({"a": np.ones(2)}, None)[1] is None


def test_has_aux_needs_a_pair():
    with pytest.raises(dm.GradientError, match="has_aux"):
        dm.grad(lambda x: dm.sum(x), has_aux=True)(np.ones(2))
    with pytest.raises(dm.ShapeError, match="has_aux"):
        dm.grad(lambda x: (dm.sum(x), 1.0))(np.ones(2))


def test_cut_from_the_tape_is_still_detected_with_pytrees():
    with pytest.raises(dm.GradientError, match="not connected"):
        dm.grad(lambda p: float(dm.sum(p["a"] ** 2)))({"a": np.ones(2)})


def test_grad_nested_with_pytrees():
    # d/dx of x * (d/dy sum(x*y) at y) = d/dx sum(x * x) -> 2 x, through dict arguments
    x = np.array([1.0, 3.0])
    g = dm.grad(lambda p: dm.sum(p["x"] * dm.grad(lambda q: dm.sum(p["x"] * q["y"]))({"y": x})["y"]))({"x": x})
    _close(g["x"], 2 * x)


# ----- vjp ----------------------------------------------------------------------------------------------------
@HYP
@given(seeds)
def test_vjp_with_pytree_output_and_aux_against_torch_func(seed):
    rng = np.random.default_rng(seed)
    p = {"a": rng.standard_normal(3), "b": rng.standard_normal((2, 3))}

    def f(p):
        return {"y": dm.sin(p["b"]) * p["a"], "s": (dm.sum(p["a"] ** 3),)}, dm.mean(p["a"])

    def tf(p):
        return {"y": torch.sin(p["b"]) * p["a"], "s": ((p["a"] ** 3).sum(),)}, p["a"].mean().detach()
    out, fn, aux = dm.vjp(f, p, has_aux=True)
    tout, tfn, taux = tfunc.vjp(tf, _torch(p), has_aux=True)
    _trees_close(out, tout)
    _close(aux, taux.numpy())
    ct = {"y": rng.standard_normal((2, 3)), "s": (np.array(rng.standard_normal()),)}
    (g,) = fn(ct)
    (tg,) = tfn({"y": torch.tensor(ct["y"]), "s": (torch.tensor(ct["s"][0]),)})  # torch keeps insertion order
    _trees_close(g, tg)
    with pytest.raises(dm.ShapeError, match="structure"):
        fn({"y": ct["y"]})
    with pytest.raises(dm.ShapeError, match="shape"):
        fn({"y": np.ones(3), "s": ct["s"]})


def test_vjp_plain_still_returns_a_tuple():
    out, fn = dm.vjp(lambda x, y: x * y, np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    _close(out, [3.0, 8.0])
    gx, gy = fn(np.ones(2))
    _close(gx, [3.0, 4.0])
    _close(gy, [1.0, 2.0])


# ----- jvp ----------------------------------------------------------------------------------------------------
@HYP
@given(seeds)
def test_jvp_with_pytrees_against_torch_func(seed):
    rng = np.random.default_rng(seed)
    p = (rng.standard_normal(3), {"m": rng.standard_normal((3, 3))})
    v = (rng.standard_normal(3), {"m": rng.standard_normal((3, 3))})

    def f(p, scale):
        x, d = p
        return [d["m"] @ dm.tanh(x) * scale, {"n": dm.sum(x * x)}]

    def tf(p, scale):
        x, d = p
        return [d["m"] @ torch.tanh(x) * scale, {"n": (x * x).sum()}]
    s = 1.5
    out, jv = dm.jvp(f, (p, s), (v, 0.5))
    tout, tjv = tfunc.jvp(tf, (_torch(p), torch.tensor(s)), (_torch(v), torch.tensor(0.5)))
    _trees_close(out, tout)
    _trees_close(jv, tjv)
    with pytest.raises(dm.ShapeError, match="structure"):
        dm.jvp(f, (p, s), ((v[0],), 0.5))


def test_hvp_with_pytree():
    a = np.array([1.0, 2.0])
    # f = sum(a^2 b), b fixed: H = diag(2b); v = ones -> 2b
    hv = dm.hvp(lambda p: dm.sum(p["a"] ** 2 * np.array([3.0, 4.0])), {"a": a}, {"a": np.ones(2)})
    _close(hv["a"], [6.0, 8.0])


# ----- jacobian and hessian -----------------------------------------------------------------------------------
@HYP
@given(st.sampled_from(["auto", "forward", "reverse"]), seeds)
def test_jacobian_on_dicts_against_jacrev(mode, seed):
    rng = np.random.default_rng(seed)
    p = {"a": rng.standard_normal(3), "b": rng.standard_normal((2, 3))}

    def f(p):
        return {"y": dm.sin(p["b"]) * p["a"], "s": dm.sum(p["a"] ** 3)}

    def tf(p):
        return {"y": torch.sin(p["b"]) * p["a"], "s": (p["a"] ** 3).sum()}
    _trees_close(dm.jacobian(f, mode=mode)(p), tfunc.jacrev(tf)(_torch(p)))
    # single output, dict input
    _trees_close(dm.jacobian(lambda p: f(p)["y"], mode=mode)(p), tfunc.jacrev(lambda p: tf(p)["y"])(_torch(p)))
    # single input, tuple output
    x = p["a"]
    _trees_close(dm.jacobian(lambda x: (x * 2, dm.sum(x)), mode=mode)(x),
                 tfunc.jacrev(lambda x: (x * 2, x.sum()))(torch.tensor(x)))
    jac, aux = dm.jacobian(lambda x: (dm.exp(x), {"x": x}), mode=mode, has_aux=True)(x)
    _close(jac, np.diag(np.exp(x)))
    _close(aux["x"], x)


def test_hessian_of_dict_against_torch():
    rng = np.random.default_rng(0)
    p = {"a": rng.standard_normal(2), "b": rng.standard_normal(2)}

    def f(p):
        return dm.sum(p["a"] ** 2 * dm.sin(p["b"]))

    def tf(p):
        return (p["a"] ** 2 * torch.sin(p["b"])).sum()
    _trees_close(dm.hessian(f)(p), tfunc.hessian(tf)(_torch(p)))


def test_jacobian_plain_unchanged():
    x = np.array([1.0, 2.0, 3.0])
    _close(dm.jacobian(lambda x: x ** 2)(x), np.diag(2 * x))
    _close(dm.hessian(lambda x: dm.sum(x ** 3))(x), np.diag(6 * x))


def test_bad_leaves_and_tangents_are_named_by_their_path():
    with pytest.raises(dm.DtypeError, match=r"argument 0\['b'\]"):
        dm.grad(lambda p: dm.sum(p["a"]))({"a": np.ones(2), "b": "x"})
    with pytest.raises(dm.DtypeError, match=r"argument 0\['b'\]\[0\].*complex128"):
        dm.grad(lambda p: dm.sum(p["a"]))({"a": np.ones(2), "b": [np.array([1 + 2j])]})
    with pytest.raises(dm.ShapeError, match=r"primal 0\['a'\] has shape \(3,\)"):
        dm.jvp(lambda p: p["a"], ({"a": np.ones(2)},), ({"a": np.ones(3)},))
    with pytest.raises(dm.GradientError, match="leaf 'a'"):
        dm.jacobian(lambda x: (x, "a"))(np.ones(2))
    jac, none = dm.jacobian(lambda x: (x, None))(np.ones(2))  # None is an empty subtree, as in JAX
    assert none is None
    _close(jac, np.eye(2))


def test_jvp_has_aux_against_torch_func():
    x, v = np.array([0.3, -1.2]), np.array([1.0, 2.0])
    out, jv, aux = dm.jvp(lambda x: (dm.sin(x), {"c": dm.cos(x)}), (x,), (v,), has_aux=True)
    tout, tjv, taux = tfunc.jvp(lambda x: (torch.sin(x), {"c": torch.cos(x)}), (torch.tensor(x),),
                                (torch.tensor(v),), has_aux=True)
    _close(out, tout.numpy())
    _close(jv, tjv.numpy())
    _close(aux["c"], taux["c"].numpy())


def test_other_arguments_and_keywords_pass_through():
    x = np.array([1.0, 2.0])
    p = {"w": np.array([3.0, 4.0])}
    jac = dm.jacobian(lambda x, p, scale=1.0: p["w"] * x * scale, argnums=1)(x, p)
    _close(jac["w"], np.diag(x))
    g = dm.grad(lambda p, x, scale=1.0: dm.sum(p["w"] * x) * scale)(p, x, scale=2.0)
    _close(g["w"], 2 * x)
    jac_x = dm.jacobian(lambda x, p: (p["w"] * x, dm.sum(x)), argnums=0, mode="forward")(x, p)
    _close(jac_x[0], np.diag(p["w"]))
    _close(jac_x[1], np.ones(2))
