"""Regression tests for defects found by using the engine as a new user would (issue 5, section 4).

Each test reproduces the user's code from the report and checks against an answer
computed independently (by hand, closed form or PyTorch).
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch

import dlmath as dm
from dlmath.autodiff.state import switches


# ----- complex values inside a differentiated computation ------------------------------------------------
def test_a_complex_value_made_inside_a_gradient_is_refused_at_the_op_that_made_it():
    # this used to return zeros; the true gradient of sum |x (1+i)| is sqrt(2) sign(x)
    with pytest.raises(dm.DtypeError, match="multiply made a complex result"):
        dm.grad(lambda x: dm.sum(dm.abs(x * (1 + 1j))))(np.array([1.0, -2.0]))
    with pytest.raises(dm.DtypeError, match="complex"):
        dm.jvp(lambda x: x * 1j, (np.ones(2),), (np.ones(2),))


def test_a_complex_cotangent_is_refused():
    x = dm.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    with pytest.raises(dm.DtypeError, match="complex cotangent"):
        y.backward(np.array([1 + 1j, 1.0]))
    _, vjp_fn = dm.vjp(lambda v: v * 2.0, np.ones(2))
    with pytest.raises(dm.DtypeError, match="complex"):
        vjp_fn(np.array([1j, 1.0]))


def test_complex_constants_outside_differentiation_are_still_allowed():
    out = dm.tensor([1.0, 2.0]) * 1j  # nothing requires grad: a constant
    np.testing.assert_array_equal(out.data, np.array([1j, 2j]))


# ----- functions whose output is not a differentiable array ------------------------------------------------
@pytest.mark.parametrize(("f", "match"), [
    (lambda x: None, "returned None"),
    (lambda x: "loss", "returned 'loss'"),
    (lambda x: True, "returned True"),
    (lambda x: np.bool_(True), "returned"),
    (lambda x: dm.sum(x) > 0, "dtype bool"),
])
def test_grad_of_a_function_returning_no_number_is_an_error(f, match):
    with pytest.raises((dm.GradientError, dm.DtypeError), match=match):
        dm.grad(f)(np.array([1.0, 2.0]))


@pytest.mark.parametrize("cut", [
    lambda x: float(dm.sum(x * x)),
    lambda x: dm.sum(x * x).item(),
    lambda x: dm.sum(x.data * x.data),
    lambda x: np.sum(x.numpy() ** 2),
])
@pytest.mark.parametrize("transform", ["grad", "jvp", "jacobian"])
def test_a_value_cut_from_the_tape_is_an_error_not_a_zero_gradient(cut, transform):
    x = np.array([1.0, -2.0])
    with pytest.raises(dm.GradientError, match="cut it from the tape"):
        if transform == "grad":
            dm.grad(cut)(x)
        elif transform == "jvp":
            dm.jvp(cut, (x,), (np.ones(2),))
        else:
            dm.jacobian(cut, mode="reverse")(x)


def test_a_genuinely_constant_function_has_zero_derivatives():
    x = np.array([1.0, -2.0])
    np.testing.assert_array_equal(dm.grad(lambda v: 3.0)(x), np.zeros(2))
    np.testing.assert_array_equal(dm.grad(lambda v: np.float64(3.0) * dm.sum(v) * 0.0 + 1.0)(x), np.zeros(2))
    _, t = dm.jvp(lambda v: np.ones(3), (x,), (np.ones(2),))
    np.testing.assert_array_equal(t, np.zeros(3))


# ----- plain arrays changed in place after the forward pass -----------------------------------------------
def test_a_plain_array_changed_after_the_forward_pass_does_not_change_the_gradient():
    rng = np.random.default_rng(0)
    W0 = rng.standard_normal((3, 4))
    x = np.ones((5, 3))
    W = dm.tensor(W0, requires_grad=True)
    L = dm.sum(dm.tanh(x @ W))
    x[:] = 2  # the user reuses the buffer before calling backward
    L.backward()
    tW = torch.tensor(W0, requires_grad=True)
    torch.tanh(torch.ones(5, 3, dtype=torch.float64) @ tW).sum().backward()
    np.testing.assert_allclose(W.grad.data, tW.grad.numpy(), rtol=1e-13)


def test_as_tensor_shares_memory_deliberately():
    a = np.zeros(3)
    t = dm.as_tensor(a)
    a[0] = 5.0
    assert t.data[0] == 5.0  # as torch.from_numpy


# ----- threads -----------------------------------------------------------------------------------------------
def test_concurrent_backward_passes_in_threads_give_the_right_gradients():
    rng = np.random.default_rng(1)
    problems = [(rng.standard_normal((8, 6)), rng.standard_normal((6, 5))) for _ in range(4)]
    expected = []
    for X, W0 in problems:
        tW = torch.tensor(W0, requires_grad=True)
        (torch.tanh(torch.tensor(X) @ tW) ** 2).sum().backward()
        expected.append(tW.grad.numpy())
    errors: list[BaseException] = []
    results: dict[int, list[np.ndarray]] = {k: [] for k in range(len(problems))}
    barrier = threading.Barrier(len(problems))

    def work(k: int) -> None:
        try:
            X, W0 = problems[k]
            barrier.wait()
            for _ in range(60):
                W = dm.tensor(W0, requires_grad=True)
                loss = dm.sum(dm.tanh(X @ W) ** 2)
                if k % 2:  # half of the threads also switch grad mode off and on meanwhile
                    with dm.no_grad():
                        assert not dm.is_grad_enabled()
                        dm.tanh(X @ W)
                loss.backward()
                results[k].append(W.grad.data)
                assert dm.is_grad_enabled()
        except BaseException as exc:
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(problems))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k, grads in results.items():
        assert len(grads) == 60
        for g in grads:
            np.testing.assert_allclose(g, expected[k], rtol=1e-12)
    assert dm.is_grad_enabled()


def test_grad_mode_is_per_thread():
    seen = {}

    def other() -> None:
        seen["other"] = dm.is_grad_enabled()
    with dm.no_grad():
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert not dm.is_grad_enabled()
    assert seen["other"] is True and dm.is_grad_enabled()


def test_transforms_and_forward_mode_in_threads():
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def work(k: int) -> None:
        x = np.linspace(-1, 1, 5) * (k + 1)
        for _ in range(30):
            g = dm.grad(lambda v: dm.sum(dm.sin(v) ** 2))(x)
            _, t = dm.jvp(dm.sin, (x,), (np.ones(5),))
        out[k] = (g, t)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, (g, t) in out.items():
        x = np.linspace(-1, 1, 5) * (k + 1)
        np.testing.assert_allclose(g, np.sin(2 * x), rtol=1e-13)
        np.testing.assert_allclose(t, np.cos(x), rtol=1e-13)
    assert switches.forward_depth == 0 and switches.transform_depth == 0


# ----- switches: reusable, decorators --------------------------------------------------------------------------
def test_no_grad_can_be_reused_nested_and_used_as_a_bare_decorator():
    x = dm.tensor([1.0], requires_grad=True)
    ctx = dm.no_grad()
    with ctx:
        assert not (x * 2).requires_grad
    with ctx:  # the same object again
        with ctx:  # and nested
            assert not dm.is_grad_enabled()
        assert not dm.is_grad_enabled()
    assert dm.is_grad_enabled()

    @dm.no_grad
    def bare(t):
        return t * 2

    @dm.no_grad()
    def called(t):
        return t * 2
    assert not bare(x).requires_grad and not called(x).requires_grad
    assert bare.__name__ == "bare"
    assert (x * 2).requires_grad

    @dm.enable_grad
    def inside(t):
        return t * 2
    with dm.no_grad():
        assert inside(x).requires_grad


def test_a_decorated_function_restores_the_mode_when_it_raises():
    @dm.no_grad
    def boom():
        raise ValueError("x")
    with pytest.raises(ValueError):
        boom()
    assert dm.is_grad_enabled()


# ----- construction and memory --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["abc", None, np.array(["a"]), [object()], {"a": 1}])
def test_non_numeric_data_is_refused_at_construction(bad):
    with pytest.raises(dm.DtypeError, match="tensor: "):
        dm.tensor(bad)


def test_an_allocation_that_cannot_succeed_names_the_op_and_the_shapes():
    a, b = np.ones((200_000, 1)), np.ones((1, 10_000_000))  # the sum would need 16 TB
    with pytest.raises(dm.AllocationError, match=r"add: not enough memory .*array\(200000, 1\)"):
        dm.add(a, b)
    with pytest.raises(MemoryError):  # still a MemoryError for code that catches those
        dm.tensor(a) + b


# ----- flop counting -------------------------------------------------------------------------------------------
def test_count_flops_warns_when_it_saw_only_plain_numpy():
    a = np.ones((4, 4))
    with pytest.warns(RuntimeWarning, match="saw no dlmath op"):
        with dm.count_flops() as c:
            a @ a
    assert c.total == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with dm.count_flops() as c:
            dm.matmul(a, a)  # plain arrays through a dm function are counted
    assert c.forward == 2 * 4 * 4 * 4


# ----- forward mode: a dual number that escapes its jvp ---------------------------------------------------------
def test_a_dual_number_that_escaped_an_earlier_jvp_does_not_leak_its_tangent():
    kept = []

    def f(x):
        kept.append(x * 3.0)  # an intermediate dual number escapes through a closure
        return dm.sin(x)
    dm.jvp(f, (np.array([0.5]),), (np.array([1.0]),))
    stale = kept[0]  # value 1.5, stale tangent 3.0 from the first jvp
    # d/dy (y * stale) at y = 2 along 1 is stale = 1.5: the stale tangent must not enter (it would give 1.5 + 2*3)
    _, t = dm.jvp(lambda y: y * stale, (np.array([2.0]),), (np.array([1.0]),))
    np.testing.assert_allclose(t, [1.5], rtol=1e-15)
    # and outside any jvp, using it costs no tangent work and gives a plain value
    out = stale * 2.0
    assert out._tangent is None


# ----- NumPy-style methods ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sin", "cos", "tan", "sinh", "cosh", "arctan", "arcsinh", "expm1", "log1p", "log2",
                                  "log10", "exp2", "square", "reciprocal", "erf"])
def test_elementwise_methods_match_numpy_and_differentiate_like_the_function(name):
    x = np.array([0.3, 0.7, 1.2])
    t = dm.tensor(x, requires_grad=True)
    out = getattr(t, name)()
    reference = {"square": np.square, "reciprocal": np.reciprocal, "erf": __import__("scipy.special").special.erf}
    np.testing.assert_allclose(out.data, reference.get(name, getattr(np, name, None))(x), rtol=1e-14)
    out.sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    getattr(torch, name)(tx).sum().backward()
    np.testing.assert_allclose(t.grad.data, tx.grad.numpy(), rtol=1e-13)


def test_in_place_remainder_under_no_grad():
    t = dm.tensor([5.0, -3.0])
    t %= 2.0
    np.testing.assert_array_equal(t.data, np.remainder([5.0, -3.0], 2.0))
    w = dm.tensor([1.0], requires_grad=True)
    with pytest.raises(dm.InplaceModificationError, match="%="):
        w %= 2.0
