"""Engine behaviour: gradcheck, anomaly detection, error messages, in-place safety, grad
modes, gradient accumulation and ownership, deep graphs, flop counting.

Where PyTorch has the same behaviour (in-place checks, accumulation, flop counts,
gradcheck verdicts) the test also runs the torch side and compares.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import dlmath as dm

RNG = np.random.default_rng(77)


# ----- gradcheck ------------------------------------------------------------------------------------------
def test_gradcheck_passes_with_tiny_relative_error_and_agrees_with_torch():
    # positive data: every partial derivative is positive and of order one, so central
    # differences (error ~1e-10 absolute) are accurate to far better than 1e-7 relative
    x0, w0, b0 = RNG.uniform(0.5, 1.5, 4), RNG.uniform(0.5, 1.5, (3, 4)), RNG.uniform(0.5, 1.5, 3)

    def f(x, w, b):
        return dm.logsumexp(w @ x + b) + dm.sum(dm.exp(0.3 * (w @ x)) * b) + dm.sum(dm.sigmoid(x) * x)

    def tf(x, w, b):
        return torch.logsumexp(w @ x + b, 0) + torch.sum(torch.exp(0.3 * (w @ x)) * b) + torch.sum(torch.sigmoid(x) * x)

    report = dm.gradcheck(f, x0, w0, b0)
    assert isinstance(report, dm.GradcheckReport)
    assert report.passed
    assert report.max_rel_error < 1e-7
    assert report.max_abs_error < 1e-8
    assert report.n_checked == 4 + 12 + 3
    assert report.dtype == "float64"
    assert "passed" in str(report)
    ts = [torch.tensor(a, requires_grad=True) for a in (x0, w0, b0)]
    assert torch.autograd.gradcheck(tf, ts)
    # the analytic Jacobian gradcheck used is the torch gradient
    grads_t = torch.autograd.grad(tf(*ts), ts)
    for k, gt in enumerate(grads_t):
        np.testing.assert_allclose(dm.jacobian(f, argnums=k, mode="reverse")(x0, w0, b0), gt.numpy(), rtol=1e-10)


def _wrong_cube():
    # d(x^3)/dx is 3x^2; this rule says 2x^2
    return dm.Primitive("bad_cube", lambda x: x ** 3).defvjp(lambda g, ans, x: g * 2 * x ** 2)


class _TorchBadCube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2 * x ** 2


def test_gradcheck_catches_a_wrong_vjp_and_attaches_the_report():
    bad = _wrong_cube()
    x0 = np.array([0.5, -1.5, 2.0])
    with pytest.raises(dm.GradcheckError) as info:
        dm.gradcheck(lambda x: dm.sum(bad(x) * x), x0)
    report = info.value.report
    assert isinstance(report, dm.GradcheckReport) and not report.passed
    assert "FAILED" in str(info.value)
    # worst entry: analytic 2x^3 + x^3 = 3x^3 against the true 4x^3, at the largest |x|
    assert report.worst_input == 0 and report.worst_index == (2,)
    np.testing.assert_allclose(report.analytic, 3 * 2.0 ** 3, rtol=1e-12)
    np.testing.assert_allclose(report.numeric, 4 * 2.0 ** 3, rtol=1e-7)
    np.testing.assert_allclose(report.max_abs_error, 2.0 ** 3, rtol=1e-7)
    np.testing.assert_allclose(report.max_rel_error, 0.25, rtol=1e-6)
    quiet = dm.gradcheck(lambda x: dm.sum(bad(x) * x), x0, raise_on_failure=False)
    assert not quiet.passed
    # torch's own gradcheck rejects the same wrong backward
    with pytest.raises(RuntimeError, match="Jacobian mismatch"):
        torch.autograd.gradcheck(lambda t: (_TorchBadCube.apply(t) * t).sum(), (torch.tensor(x0, requires_grad=True),))


def test_gradcheck_reports_the_max_relative_error_over_all_inputs():
    """max_rel_error is a max over every input, not only over the input with the worst absolute error."""
    # arg 0: abs error 0.1, rel 0.1/1.1; arg 1: abs error 0.5 (the worst), rel 0.5/1000.5
    p = dm.Primitive("skewed", lambda x, y: x + 1e3 * y).defvjp(
        lambda g, ans, x, y: g * 1.1, lambda g, ans, x, y: g * 1000.5)
    report = dm.gradcheck(lambda x, y: dm.sum(p(x, y)), np.array([0.3]), np.array([0.7]), raise_on_failure=False)
    assert not report.passed and report.worst_input == 1
    np.testing.assert_allclose(report.max_abs_error, 0.5, rtol=1e-5)
    np.testing.assert_allclose(report.max_rel_error, 0.1 / 1.1, rtol=1e-5)


# ----- anomaly detection ------------------------------------------------------------------------------------
def test_detect_anomaly_names_the_forward_op_and_shapes():
    x = dm.tensor([[1.0, 0.0, 2.0]], requires_grad=True)
    with np.errstate(divide="ignore"):
        assert np.isneginf(dm.log(x).data[0, 1])  # without the mode: -inf, silently
        with dm.detect_anomaly(), pytest.raises(dm.AnomalyError) as info:
            dm.log(x)
    msg = str(info.value)
    assert "'log'" in msg and "forward" in msg and "(1, 3)" in msg and "Inf" in msg
    assert "all inputs were finite" in msg
    assert isinstance(info.value, FloatingPointError)
    # plain NumPy inputs are checked too
    with np.errstate(invalid="ignore"), dm.detect_anomaly(), pytest.raises(dm.AnomalyError, match=r"NaN.*'sqrt'"):
        dm.sqrt(np.array([-1.0, 4.0]))


def test_detect_anomaly_says_when_the_input_was_already_non_finite():
    bad = dm.tensor([np.nan, 1.0], requires_grad=True)
    with dm.detect_anomaly(), pytest.raises(dm.AnomalyError) as info:
        dm.exp(bad)
    assert "'exp'" in str(info.value) and "already non-finite" in str(info.value)


def test_detect_anomaly_in_backward_names_the_vjp_op():
    x = dm.tensor([0.0, 4.0], requires_grad=True)
    with dm.detect_anomaly():
        y = dm.sqrt(x).sum()  # forward is finite: sqrt(0) = 0
        with np.errstate(divide="ignore"), pytest.raises(dm.AnomalyError) as info:
            y.backward()
    msg = str(info.value)
    assert "backward" in msg and "'sqrt'" in msg and "Inf" in msg and "(2,)" in msg
    # a NaN made in backward: 0 * sqrt'(0) = 0 / 0
    x = dm.tensor([0.0, 4.0], requires_grad=True)
    with dm.detect_anomaly():
        y = (dm.sqrt(x) * 0.0).sum()
        with np.errstate(invalid="ignore"), pytest.raises(dm.AnomalyError, match=r"NaN.*backward.*'sqrt'"):
            y.backward()
    # without the mode the same backward silently gives torch's values
    x = dm.tensor([0.0, 4.0], requires_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        (dm.sqrt(x) * 0.0).sum().backward()
    t = torch.tensor([0.0, 4.0], dtype=torch.float64, requires_grad=True)
    (torch.sqrt(t) * 0.0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, t.grad.numpy())


# ----- clear errors ----------------------------------------------------------------------------------------------
def test_shape_errors_name_the_op_and_both_shapes():
    a, b = dm.tensor(np.ones((2, 3)), requires_grad=True), dm.tensor(np.ones(4))
    with pytest.raises(dm.ShapeError) as info:
        a + b
    msg = str(info.value)
    assert "add" in msg and "(2, 3)" in msg and "(4,)" in msg
    with pytest.raises(dm.ShapeError) as info:
        a @ dm.tensor(np.ones((4, 5)))
    msg = str(info.value)
    assert "matmul" in msg and "(2, 3)" in msg and "(4, 5)" in msg
    with pytest.raises(dm.ShapeError, match=r"matmul.*\(3,\).*\(2,\)"):
        dm.matmul(np.ones(3), np.ones(2))  # plain arrays get the same error
    with pytest.raises(ValueError):  # a ShapeError is a ValueError, as NumPy's
        dm.multiply(a, np.ones((3, 2)))
    # torch refuses the same operations
    with pytest.raises(RuntimeError):
        torch.ones(2, 3) + torch.ones(4)
    with pytest.raises(RuntimeError):
        torch.ones(2, 3) @ torch.ones(4, 5)


def test_backward_errors():
    x = dm.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(dm.GradientError, match=r"\(3,\)"):
        (x * 2).backward()
    with pytest.raises(dm.ShapeError):
        (x * 2).backward(np.ones(4))
    with pytest.raises(dm.GradientError):
        dm.tensor(np.ones(3)).sum().backward()  # nothing requires grad
    with pytest.raises(dm.GradientError):
        np.asarray(x)  # the gradient would be lost silently
    with pytest.raises(RuntimeError):  # torch: "grad can be implicitly created only for scalar outputs"
        (torch.ones(3, requires_grad=True) * 2).backward()


def test_integer_arrays_cannot_require_grad():
    with pytest.raises(dm.DtypeError, match="int"):
        dm.tensor(np.arange(3), requires_grad=True)
    with pytest.raises(dm.DtypeError):
        dm.Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(dm.DtypeError):
        dm.tensor(np.arange(3)).requires_grad_()
    with pytest.raises(dm.DtypeError):
        dm.grad(lambda x: dm.sum(x * 1.0))(np.arange(3))
    with pytest.raises(TypeError):  # a DtypeError is a TypeError
        dm.tensor(np.array([True, False]), requires_grad=True)
    with pytest.raises(RuntimeError):  # torch: "Only Tensors of floating point ... can require gradients"
        torch.tensor([1, 2, 3], requires_grad=True)
    # Python ints and lists become float64, as documented
    assert dm.tensor([1, 2, 3], requires_grad=True).dtype == np.float64


# ----- in-place modification ------------------------------------------------------------------------------------
def test_modifying_a_saved_tensor_in_place_is_detected_at_backward():
    w = dm.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    c = dm.tensor(np.array([4.0, 5.0, 6.0]))  # a constant, saved by multiply for w's gradient
    y = (w * c).sum()
    c += 1
    with pytest.raises(dm.InplaceModificationError) as info:
        y.backward()
    msg = str(info.value)
    assert "'multiply'" in msg and "(3,)" in msg
    assert isinstance(info.value, dm.GradientError)
    # item assignment counts too
    c2 = dm.tensor(np.array([4.0, 5.0, 6.0]))
    y2 = dm.exp(w * c2).sum()
    c2[0] = 0.0
    with pytest.raises(dm.InplaceModificationError, match="multiply"):
        y2.backward()
    # torch detects the same thing
    tw = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    tc = torch.tensor([4.0, 5.0, 6.0], dtype=torch.float64)
    ty = (tw * tc).sum()
    tc += 1
    with pytest.raises(RuntimeError, match="inplace"):
        ty.backward()
    # modifying a tensor that no backward needs later is fine: after the backward ran
    c3 = dm.tensor(np.array([4.0, 5.0, 6.0]))
    y3 = (w * c3).sum()
    y3.backward()
    c3 += 1
    np.testing.assert_array_equal(w.grad.data, [4.0, 5.0, 6.0])


def test_inplace_on_a_leaf_that_requires_grad():
    w = dm.tensor(np.array([1.0, 2.0]), requires_grad=True)
    for op in (lambda: w.__iadd__(1.0), lambda: w.__imul__(2.0), lambda: w.__setitem__(0, 5.0), w.zero_):
        with pytest.raises(dm.InplaceModificationError):
            op()
    np.testing.assert_array_equal(w.data, [1.0, 2.0])
    h = w * 2  # a tensor on the tape
    with pytest.raises(dm.InplaceModificationError, match="tape"):
        h -= 1
    tw = torch.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        tw += 1
    # an optimizer step: allowed under no_grad, and the tensor stays a leaf that requires grad
    (w * w).sum().backward()
    with dm.no_grad():
        w -= 0.1 * w.grad
        w[1] = 7.0
    np.testing.assert_allclose(w.data, [0.8, 7.0], rtol=1e-15)
    assert w.requires_grad and w.is_leaf
    with torch.no_grad():
        tw -= 0.1
    w.grad = None
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad.data, [1.6, 14.0], rtol=1e-15)


# ----- grad modes, plain NumPy -----------------------------------------------------------------------------------
def test_no_grad_skips_the_tape():
    x = dm.tensor(np.ones(3), requires_grad=True)
    assert dm.is_grad_enabled()
    with dm.no_grad():
        assert not dm.is_grad_enabled()
        y = dm.exp(x) * 2 + x
        with dm.enable_grad():
            z = x * 3
    assert dm.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and y.op_name is None
    assert z.requires_grad and z.op_name == "multiply"
    with pytest.raises(dm.GradientError):
        y.sum().backward()
    # the mode is restored even when the block raises
    with pytest.raises(KeyError), dm.no_grad():
        raise KeyError
    assert dm.is_grad_enabled()
    assert (x * 2).requires_grad
    assert not (x.detach() * 2).requires_grad


def test_plain_numpy_inputs_give_plain_numpy_outputs():
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((4, 2))
    ta, tb = torch.tensor(a), torch.tensor(b)
    cases = [
        (dm.exp(a), torch.exp(ta)),
        (dm.matmul(a, b), ta @ tb),
        (dm.einsum("ij,jk->ik", a, b), torch.einsum("ij,jk->ik", ta, tb)),
        (dm.softmax(a, axis=0), torch.softmax(ta, 0)),
        (dm.concatenate([a, a], axis=1), torch.cat([ta, ta], 1)),
        (dm.gelu(a), torch.nn.functional.gelu(ta)),
        (dm.var(a, axis=1, ddof=1), torch.var(ta, 1, correction=1)),
        (dm.where(a > 0, a, b[0, 0]), torch.where(ta > 0, ta, tb[0, 0])),
    ]
    for out, expected in cases:
        assert type(out) is np.ndarray
        np.testing.assert_allclose(out, expected.numpy(), rtol=1e-12, atol=1e-14)
    s = dm.sum(a)
    assert not isinstance(s, dm.Tensor) and isinstance(s, (np.ndarray, np.generic))
    np.testing.assert_allclose(s, ta.sum().item(), rtol=1e-12)
    parts = dm.split(a, 2, axis=1)
    assert all(type(p) is np.ndarray for p in parts)


# ----- gradient accumulation and ownership ------------------------------------------------------------------------
def test_gradients_accumulate_over_two_backward_calls_like_torch():
    x0 = RNG.standard_normal((2, 3))
    x = dm.tensor(x0, requires_grad=True)
    t = torch.tensor(x0, requires_grad=True)
    (dm.tanh(x) * x).sum().backward()
    dm.sin(x).sum().backward()
    (torch.tanh(t) * t).sum().backward()
    torch.sin(t).sum().backward()
    np.testing.assert_allclose(x.grad.data, t.grad.numpy(), rtol=1e-12)
    x.zero_grad()
    assert x.grad is None


def test_grad_arrays_of_two_leaves_never_alias():
    ct = np.array([1.0, 2.0, 3.0])
    builders = {
        "add": lambda x, y: x + y,
        "sub": lambda x, y: x - (-y),
        "where": lambda x, y: dm.where(np.array([True, True, True]), x, 0.0) + y,
        "concat": lambda x, y: dm.concatenate([x, y])[:3] + y * 0,
    }
    for name, build in builders.items():
        x = dm.tensor(np.zeros(3), requires_grad=True)
        y = dm.tensor(np.zeros(3), requires_grad=True)
        build(x, y).backward(ct)
        before = y.grad.data.copy()
        x.grad.data[...] = 100.0  # what an optimizer's in-place update might do
        np.testing.assert_array_equal(y.grad.data, before, err_msg=name)
        assert not np.shares_memory(x.grad.data, ct) and not np.shares_memory(y.grad.data, ct), name
    # a Tensor seed is not aliased by the gradient either
    x = dm.tensor(np.zeros(3), requires_grad=True)
    seed = dm.tensor(ct)
    x.backward(seed)
    x.grad.data[0] = -1.0
    np.testing.assert_array_equal(seed.data, ct)
    # with create_graph the two leaves get distinct gradient tensors too
    x = dm.tensor(np.zeros(3), requires_grad=True)
    y = dm.tensor(np.zeros(3), requires_grad=True)
    (x + y).backward(ct, create_graph=True)
    assert x.grad is not y.grad and not np.shares_memory(x.grad.data, y.grad.data)
    # torch, the reference, never aliases them
    tx = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    ty = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    (tx + ty).backward(torch.tensor(ct))
    assert tx.grad.data_ptr() != ty.grad.data_ptr()


def test_long_chain_backward_does_not_recurse():
    n = 5000
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # a recursive sweep over 5000 nodes would need more
    try:
        x = dm.tensor(0.3, requires_grad=True)
        y = x
        for _ in range(n):
            y = dm.sin(y) * 0.5 + y * 0.5
        y.backward()
        t = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
        ty = t
        for _ in range(n):
            ty = torch.sin(ty) * 0.5 + ty * 0.5
        ty.backward()
        np.testing.assert_allclose(y.item(), ty.item(), rtol=1e-12)
        np.testing.assert_allclose(x.grad.item(), t.grad.item(), rtol=1e-9)
        del y  # freeing the chain must not recurse either
    finally:
        sys.setrecursionlimit(old)


# ----- flop counting --------------------------------------------------------------------------------------------
def _torch_flops(a, b, ct):
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    with FlopCounterMode(display=False) as fc:
        ty = ta @ tb
        forward = fc.get_total_flops()
        ty.backward(torch.tensor(ct))
        total = fc.get_total_flops()
    return forward, total - forward


@pytest.mark.parametrize(("a_shape", "b_shape"), [((3, 4), (4, 5)), ((7, 2), (2, 6)), ((2, 3, 4), (2, 4, 5))])
def test_count_flops_of_matmul_matches_2mkn_and_torch(a_shape, b_shape):
    a, b = RNG.standard_normal(a_shape), RNG.standard_normal(b_shape)
    m, k, n = a_shape[-2], a_shape[-1], b_shape[-1]
    batch = int(np.prod(a_shape[:-2]))
    ct = RNG.standard_normal((*a_shape[:-1], n))
    x, w = dm.tensor(a, requires_grad=True), dm.tensor(b, requires_grad=True)
    with dm.count_flops() as c:
        y = x @ w
        assert c.forward == 2 * batch * m * k * n and c.backward == 0
        y.backward(ct)
    assert c.forward == 2 * batch * m * k * n
    assert c.backward == 4 * batch * m * k * n
    assert c.total == 6 * batch * m * k * n
    assert c.by_op[("backward", "matmul")] == 4 * batch * m * k * n
    assert c.calls[("backward", "matmul")] == 2
    assert (c.forward, c.backward) == _torch_flops(a, b, ct)
    # the gradients computed while counting are the right ones
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (ta @ tb).backward(torch.tensor(ct))
    np.testing.assert_allclose(x.grad.data, ta.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(w.grad.data, tb.grad.numpy(), rtol=1e-12)


def test_count_flops_only_inside_the_block_and_of_plain_arrays():
    a, b = np.ones((2, 3)), np.ones((3, 4))
    with dm.count_flops() as c:
        out = dm.matmul(a, b)
        dm.exp(out)
    assert type(out) is np.ndarray
    assert c.forward == 2 * 2 * 3 * 4 + 2 * 4
    dm.matmul(a, b)
    assert c.forward == 2 * 2 * 3 * 4 + 2 * 4


def test_detach_shares_the_version_counter_like_torch():
    w = dm.tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = dm.tensor(np.array([3.0, 4.0]))
    y = (w * c).sum()
    view = c.detach()  # shares memory with c, so changing it changes what multiply saved
    view += 1
    with pytest.raises(dm.InplaceModificationError, match="multiply"):
        y.backward()
    tw = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    tc = torch.tensor([3.0, 4.0], dtype=torch.float64)
    ty = (tw * tc).sum()
    tv = tc.detach()
    tv += 1
    with pytest.raises(RuntimeError, match="inplace"):
        ty.backward()


def test_changing_an_input_that_backward_never_reads_is_not_an_error_like_torch():
    # add, getitem, reshape... use only shapes backwards: torch accepts these, and so does dlmath
    for build in (lambda w, c: w + c, lambda w, c: w + c[::-1], lambda w, c: w + c.reshape(2)):
        w = dm.tensor(np.array([1.0, 2.0]), requires_grad=True)
        c = dm.tensor(np.array([3.0, 4.0]))
        y = build(w, c).sum()
        c += 1
        y.backward()
        np.testing.assert_array_equal(w.grad.data, [1.0, 1.0])
    tw = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    tc = torch.tensor([3.0, 4.0], dtype=torch.float64)
    ty = (tw + tc).sum()
    tc += 1
    ty.backward()


def test_weight_gradient_of_x_at_wT_is_not_copied_yet_owned():
    # dW arrives as the transpose (a view) of a fresh product: kept as is, and never shared
    rng = np.random.default_rng(5)
    W = dm.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    V = dm.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    x = rng.standard_normal((5, 3))
    ((x @ W.T) * (x @ V.T)).sum().backward()
    assert W.grad.shape == (4, 3) and not np.shares_memory(W.grad.data, V.grad.data)
    tW = torch.tensor(W.data, requires_grad=True)
    tV = torch.tensor(V.data, requires_grad=True)
    tx = torch.tensor(x)
    ((tx @ tW.T) * (tx @ tV.T)).sum().backward()
    np.testing.assert_allclose(W.grad.data, tW.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(V.grad.data, tV.grad.numpy(), rtol=1e-12)


def test_non_numeric_input_and_ragged_data_give_clear_errors():
    with pytest.raises(dm.DtypeError, match="exp: cannot apply to"):
        dm.exp(np.array(["a", "b"]))
    # non-numeric data is refused when the Tensor is made, not at the first op
    for bad in (np.array(["a", "b"]), "abc", None, [object()]):
        with pytest.raises(dm.DtypeError, match="tensor: "):
            dm.tensor(bad)
    with pytest.raises(dm.DtypeError, match="add"):
        dm.tensor([1.0, 2.0]) + "x"
    with pytest.raises(dm.ShapeError, match="rectangular"):
        dm.tensor([[1.0, 2.0], [3.0]])


def test_transform_results_are_writeable_arrays_owned_by_the_caller():
    g = dm.grad(lambda x: dm.sum(x))(np.ones(3))  # the VJP of sum is a broadcast (read-only) view
    g -= 1.0
    np.testing.assert_array_equal(g, np.zeros(3))
    ct = np.arange(3.0)
    _, vjp_fn = dm.vjp(lambda x: x * 1.0 + 0.0, np.ones(3))
    (back,) = vjp_fn(ct)
    back[0] = 99.0
    np.testing.assert_array_equal(ct, [0.0, 1.0, 2.0])


def test_views_share_the_version_counter_of_their_base_like_torch():
    w = dm.tensor(np.array([0.5, 1.0, 2.0]), requires_grad=True)
    h = w * w
    with dm.no_grad():
        v = w[0:2]
        v += 10.0
    with pytest.raises(dm.InplaceModificationError, match="multiply"):
        h.sum().backward()
    c = dm.tensor(np.array([0.5, 1.0, 2.0]))
    x = dm.tensor(np.array([0.5, 1.0, 2.0]), requires_grad=True)
    y = (x * c.reshape(3)).sum()
    c[0] = 100.0
    with pytest.raises(dm.InplaceModificationError):
        y.backward()
    tw = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    th = tw * tw
    with torch.no_grad():
        tv = tw[0:2]
        tv += 10.0
    with pytest.raises(RuntimeError, match="inplace"):
        th.sum().backward()


def test_an_output_its_backward_needs_cannot_change_in_place_like_torch():
    x = dm.tensor(np.array([0.5, 1.0, 2.0]), requires_grad=True)
    y = dm.exp(x)
    s = y.sum()
    with dm.no_grad():
        y += 1
    with pytest.raises(dm.InplaceModificationError, match="output of op 'exp'"):
        s.backward()
    tx = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    ty = torch.exp(tx)
    ts = ty.sum()
    with torch.no_grad():
        ty += 1
    with pytest.raises(RuntimeError, match="inplace"):
        ts.backward()


def test_setitem_of_a_tensor_that_requires_grad_is_refused_not_silently_dropped():
    x = dm.tensor(np.array([3.0, 1.0]), requires_grad=True)
    c = dm.tensor(np.zeros(2))
    with pytest.raises(dm.GradientError, match=r"dm\.where"):
        c[0] = x[0]


def test_casts_to_integers_are_constants_and_float_casts_carry_gradients():
    x = dm.tensor(np.array([1.5, 2.7]), requires_grad=True)
    (x.astype(np.int64) * x).sum().backward()
    tx = torch.tensor([1.5, 2.7], dtype=torch.float64, requires_grad=True)
    (tx.to(torch.int64) * tx).sum().backward()
    np.testing.assert_array_equal(x.grad.data, tx.grad.numpy())
    y = dm.tensor(np.array([1.5, 2.7]), requires_grad=True)
    (y.astype(np.float32) ** 2).sum().backward()
    assert y.grad.dtype == np.float64
    np.testing.assert_allclose(y.grad.data, [3.0, 5.4], rtol=1e-6)


def test_complex_tensors_cannot_require_grad():
    with pytest.raises(dm.DtypeError, match="complex"):
        dm.tensor(np.array([1 + 1j]), requires_grad=True)


def test_std_of_a_constant_has_zero_gradient_like_torch():
    x = dm.tensor(np.ones((3, 2)), requires_grad=True)
    dm.std(x, axis=0).sum().backward()
    tx = torch.ones((3, 2), dtype=torch.float64, requires_grad=True)
    torch.std(tx, dim=0, correction=0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, tx.grad.numpy())


def test_einsum_backward_with_size_one_broadcasting():
    a0, b0 = RNG.standard_normal((3, 1)), RNG.standard_normal((3, 4))
    a, b = dm.tensor(a0, requires_grad=True), dm.tensor(b0, requires_grad=True)
    dm.einsum("ij,ij->i", a, b).sum().backward()
    ta, tb = torch.tensor(a0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    torch.einsum("ij,ij->i", ta, tb).sum().backward()
    np.testing.assert_allclose(a.grad.data, ta.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.grad.data, tb.grad.numpy(), rtol=1e-12)


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_anomaly_inside_a_vjp_rule_is_labelled_as_backward():
    with dm.detect_anomaly():
        x = dm.tensor(np.array([0.0, 1.0]), requires_grad=True)
        with pytest.raises(dm.AnomalyError, match="backward of op 'sqrt'"):
            dm.sqrt(x).sum().backward(create_graph=True)


def test_more_bad_input_gets_dlmath_errors():
    x = dm.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    for call in (lambda: dm.swapaxes(x, 0, 5), lambda: dm.unsqueeze(x, 5), lambda: dm.squeeze(x, 3),
                 lambda: dm.split(x, 0), lambda: dm.split(x, 1, axis=5), lambda: x[10]):
        with pytest.raises(dm.ShapeError):
            call()
    with pytest.raises(dm.DtypeError, match="integers"):
        x[dm.tensor([1, 0])]
    with pytest.raises(dm.DtypeError):
        x.sum().backward(grad="abc")


def test_nested_count_flops_blocks_both_count():
    a = dm.tensor(np.ones((2, 3)), requires_grad=True)
    with dm.count_flops() as outer:
        with dm.count_flops() as inner:
            (a @ np.ones((3, 4))).sum().backward()
        dm.exp(a)
    assert inner.forward == 2 * 2 * 3 * 4 + 8 and inner.backward > 0
    assert outer.forward == inner.forward + 6 and outer.backward == inner.backward


def test_matmul_flops_of_an_mlp_step_match_torch_flop_counter():
    # the cheap-gradient claims count flops on dlmath's tape; PyTorch's FlopCounterMode counts the
    # matrix products of the same program independently (it ignores elementwise ops, so compare those)
    rng = np.random.default_rng(3)
    sizes, batch = [12, 9, 7, 4], 5
    Ws = [rng.standard_normal((o, i)) for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
    X, y = rng.standard_normal((batch, sizes[0])), rng.integers(0, sizes[-1], batch)
    params = [dm.tensor(W, requires_grad=True) for W in Ws]
    with dm.count_flops() as c:
        h = X
        for k, W in enumerate(params):
            h = h @ W.T
            h = dm.tanh(h) if k < len(params) - 1 else h
        (-dm.log_softmax(h)[np.arange(batch), y].mean()).backward()
    tparams = [torch.tensor(W, requires_grad=True) for W in Ws]
    with FlopCounterMode(display=False) as tc:
        th = torch.tensor(X)
        for k, W in enumerate(tparams):
            th = th @ W.T
            th = torch.tanh(th) if k < len(tparams) - 1 else th
        torch.nn.functional.cross_entropy(th, torch.tensor(y)).backward()
    assert c.by_op[("forward", "matmul")] + c.by_op[("backward", "matmul")] == tc.get_total_flops()


def test_numpy_reductions_delegate_to_tensor_methods_and_keep_the_tape():
    t = dm.tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    s = np.sum(t)
    assert isinstance(s, dm.Tensor) and s.requires_grad
    s.backward()
    np.testing.assert_array_equal(t.grad.data, np.ones((2, 2)))
    np.testing.assert_allclose(np.std(t, ddof=1).data, np.std(t.data, ddof=1))
    np.testing.assert_allclose(np.mean(t, axis=0).data, [2.0, 3.0])
    with pytest.raises(TypeError, match="out"):
        np.sum(t, out=np.zeros(()))


def test_softmax_and_logsumexp_of_empty_arrays_like_torch():
    assert dm.softmax(np.zeros((2, 0))).shape == (2, 0)
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(dm.logsumexp(np.zeros((3, 0)), axis=1), torch.logsumexp(
            torch.zeros((3, 0)), dim=1).numpy())
