"""dlmath.kernels against oracles nobody here wrote: Gauss-Hermite / Monte-Carlo expectations, finite networks,
the engine's Jacobians, SciPy's matrix exponential; and the robustness cases neural-tangents' users hit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

import dlmath as dm
import dlmath.kernels as K
from dlmath.kernels import formulas as fm
from dlmath.kernels import predict


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _pairs(rng: np.random.Generator, n: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q1 = rng.uniform(0.2, 3.0, n)
    q2 = rng.uniform(0.2, 3.0, n)
    rho = rng.uniform(-0.99, 0.99, n)
    return q1, q2, rho * np.sqrt(q1 * q2)


SMOOTH = [(K.Erf(), dm.erf), (K.Gelu(), dm.gelu), (K.Sin(), dm.sin), (K.Erf(1.3, 0.7, 0.2), None),
          (K.Sin(0.8, 1.5, 0.3), None)]


@pytest.mark.parametrize("layer", [s[0] for s in SMOOTH], ids=lambda layer: layer.name)
def test_smooth_closed_forms_equal_gauss_hermite(layer: K.Elementwise) -> None:
    # quadrature of degree 80 integrates these analytic integrands to ~1e-9 (erf saturates: slower than entire fns)
    q1, q2, c = _pairs(np.random.default_rng(0))
    nngp, dot = layer.formula(q1, q2, c)
    gh_nngp, gh_dot = fm.gauss_hermite_kernel(lambda z: np.asarray(layer.fn(z)), layer.derivative, q1, q2, c, 80)
    assert _rel(nngp, gh_nngp) < 1e-8
    assert _rel(dot, gh_dot) < 1e-8


@pytest.mark.parametrize("layer", [K.Relu(), K.Abs(), K.LeakyRelu(0.2), K.ABRelu(-0.4, 1.3)],
                         ids=lambda layer: layer.name)
def test_rectifier_closed_forms_equal_monte_carlo(layer: K.Elementwise) -> None:
    # kinks defeat quadrature: sample (u, v) exactly; tolerance 5 standard errors of the sample mean
    rng = np.random.default_rng(1)
    q1, q2, c = _pairs(rng, 4)
    nngp, dot = layer.formula(q1, q2, c)
    n = 400_000
    for i in range(4):
        L = np.linalg.cholesky(np.array([[q1[i], c[i]], [c[i], q2[i]]]))
        u, v = L @ rng.standard_normal((2, n))
        fu, fv = np.asarray(layer.fn(u)), np.asarray(layer.fn(v))
        du, dv = layer.derivative(u), layer.derivative(v)
        for closed, sample in ((nngp[i], fu * fv), (dot[i], du * dv)):
            se = sample.std() / np.sqrt(n)
            assert abs(closed - sample.mean()) < 5 * se + 1e-12, (layer.name, i, closed, sample.mean(), se)


def test_arccos_kernels_are_cho_and_saul() -> None:
    # k_n(x, y) = 2 E[Theta(w.x)(w.x)^n Theta(w.y)(w.y)^n], w ~ N(0, I), by Monte-Carlo in 3-d
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal(3), rng.standard_normal(3)
    w = rng.standard_normal((1_000_000, 3))
    a, b = w @ x, w @ y
    s, theta = fm.arccos_angle(np.sqrt(x @ x * (y @ y)), np.array(x @ y))
    k1 = 2 * np.maximum(a, 0) * np.maximum(b, 0)
    k0 = 2 * (a > 0) * (b > 0)
    assert abs(fm.arccos_kernel_degree1(s, theta, np.array(x @ y)) - k1.mean()) < 5 * k1.std() / 1000
    assert abs(fm.arccos_kernel_degree0(theta) - k0.mean()) < 5 * k0.std() / 1000


def _mlp(act: K.Layer, width: int, depth: int = 2, W_std: float = 1.5, b_std: float = 0.1) -> K.Layer:
    layers: list[K.Layer] = []
    for _ in range(depth):
        layers += [K.Dense(width, W_std, b_std), act]
    return K.serial(*layers, K.Dense(1, W_std, b_std))


@pytest.mark.parametrize("act", [K.Relu(), K.Erf(), K.Tanh()], ids=lambda a: a.name)
def test_analytic_ntk_is_the_mean_of_finite_wide_networks(act: K.Layer) -> None:
    # E over initialisations of the empirical NTK -> analytic NTK, with O(1/width) bias; the spread over seeds of
    # the mean of 8 draws at width 1024 is ~ 3% here, so 10% relative is > 3 standard errors
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4))
    arch = _mlp(act, 1024)
    analytic = arch.kernel(x).ntk
    mc = K.monte_carlo(arch, x, n_samples=8, seed=4, get=("ntk",)).ntk
    assert _rel(mc, analytic) < 0.1


@pytest.mark.parametrize("arch", [
    _mlp(K.Relu(), 7, depth=3),
    K.serial(K.Dense(6, 1.2, None, "standard"), K.Gelu(), K.Dense(3, 0.8, 0.4, "standard")),
    K.serial(K.Dense(5, 1.1, 0.3), K.Sigmoid(), K.Dense(4, 1.0, 0.0), K.Sin(), K.Dense(2, 1.3, 0.2)),
], ids=["relu-ntk", "gelu-standard", "sigmoid-sin-2out"])
def test_structured_empirical_ntk_equals_jacobian_contraction(arch: K.Layer) -> None:
    rng = np.random.default_rng(5)
    x1, x2 = rng.standard_normal((6, 3)), rng.standard_normal((4, 3))
    params = arch.init(6, x1.shape)
    for a, b in ((x1, None), (x1, x2)):
        s = K.empirical_ntk_structured(arch, params, a, b)
        g = K.empirical_ntk_generic(arch, params, a, b)
        assert _rel(s, g) < 1e-12


def test_empirical_ntk_by_finite_differences() -> None:
    # the definition: the NTK is the inner product of parameter gradients, here by central differences
    rng = np.random.default_rng(7)
    arch = K.serial(K.Dense(4, 1.3, 0.2), K.Tanh(), K.Dense(1, 1.0, 0.1))
    x = rng.standard_normal((3, 2))
    params = arch.init(8, x.shape)
    leaves = [params[0][0], params[0][1], params[2][0], params[2][1]]
    h, grads = 1e-6, []
    for leaf in leaves:
        g = np.zeros((3, leaf.size))
        for j in range(leaf.size):
            old = leaf.flat[j]
            leaf.flat[j] = old + h
            up = arch.apply(params, x)[:, 0]
            leaf.flat[j] = old - h
            down = arch.apply(params, x)[:, 0]
            leaf.flat[j] = old
            g[:, j] = (up - down) / (2 * h)
        grads.append(g)
    J = np.concatenate(grads, axis=1)
    assert _rel(K.empirical_ntk(arch, params, x), J @ J.T) < 1e-8


def test_residual_and_branches_generic_ntk_agrees_with_monte_carlo_and_is_finite() -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 3))
    block = K.serial(K.Relu(), K.Dense(256, 1.2, 0.1))
    arch = K.serial(K.Dense(256, 1.4, 0.1), K.residual(block), K.FanOut(2),
                    K.parallel(K.serial(K.Erf(), K.Dense(128)), K.serial(K.Relu(), K.Dense(128))),
                    K.FanInConcat(), K.Relu(), K.Dense(1))
    analytic = arch.kernel(x)
    mc = K.monte_carlo(arch, x, n_samples=4, seed=10, get=("ntk",))
    assert _rel(mc.ntk, analytic.ntk) < 0.15  # width 128-256, 4 draws: a few % spread, 15% is > 3 sigma


def test_apply_is_differentiable_on_the_engine() -> None:
    arch = _mlp(K.Gelu(), 5)
    x = np.random.default_rng(11).standard_normal((4, 3))
    params = arch.init(0, x.shape)
    gx = dm.grad(lambda z: dm.sum(arch.apply(params, z)))(x)
    h, num = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        num[i] = (np.sum(arch.apply(params, x + e)) - np.sum(arch.apply(params, x - e))) / (2 * h)
    assert _rel(gx, num) < 1e-7


# ----- robustness -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_equal_and_parallel_inputs_give_finite_symmetric_kernels(dtype: type) -> None:
    rng = np.random.default_rng(12)
    x = rng.standard_normal((6, 5))
    x[1] = 0
    x[2] = x[0]
    x[3] = 3 * x[0] * (1 + 1e-9)
    x[4] = -x[0]
    for act in (K.Relu(), K.Erf(), K.Gelu(), K.Abs(), K.Sin()):
        k = _mlp(act, 10, depth=3, b_std=0.0).kernel(x, dtype=dtype)
        for m in (k.nngp, k.ntk):
            assert m.dtype == dtype and np.all(np.isfinite(m)), act.name
            np.testing.assert_array_equal(m, m.T)
        np.testing.assert_allclose(np.diag(k.nngp), k.cov1, rtol=10 * np.finfo(dtype).eps)


@pytest.mark.parametrize("act", [K.Relu(), K.Erf(), K.LeakyRelu(0.1)], ids=lambda a: a.name)
@pytest.mark.parametrize("W_std", [0.5, 1.0, 4.0])
def test_deep_kernels_stay_finite_and_symmetric(act: K.Layer, W_std: float) -> None:
    # depth 100, W_std up to 4, float64: ReLU variance grows like (W_std^2/2)^depth = 8^100 ~ 1e90, still finite
    x = np.random.default_rng(13).standard_normal((5, 4))
    x[1] = x[0]
    k = _mlp(act, 8, depth=100, W_std=W_std, b_std=0.05).kernel(x, dtype=np.float64)
    for m in (k.nngp, k.ntk):
        assert np.all(np.isfinite(m))
        np.testing.assert_array_equal(m, m.T)


@pytest.mark.parametrize("act", [K.Relu(), K.Erf(), K.Gelu()], ids=lambda a: a.name)
def test_deep_float32_kernels_stay_finite_where_representable(act: K.Layer) -> None:
    # float32 is finite wherever the exact kernel is representable (< 3e38): ReLU's variance grows like
    # (W_std^2/2)^depth (W_std=2: 2^100 ~ 1e30), the erf NTK like (W_std^2 E[erf'^2])^depth (W_std=2: ~1e9); past
    # that (ReLU W_std=4 depth 100: 1e90) float32 overflows to inf and float64 is needed (docs/kernels.md)
    x = np.random.default_rng(14).standard_normal((5, 4)).astype(np.float32)
    W_std = {"Relu": 2.0, "Gelu": 1.5}.get(act.name, 2.0)
    k32 = _mlp(act, 8, depth=100, W_std=W_std, b_std=0.05).kernel(x)
    k64 = _mlp(act, 8, depth=100, W_std=W_std, b_std=0.05).kernel(x, dtype=np.float64)
    assert k32.ntk.dtype == np.float32
    for m in (k32.nngp, k32.ntk):
        assert np.all(np.isfinite(m))
        np.testing.assert_array_equal(m, m.T)
    assert _rel(k32.nngp, k64.nngp) < 1e-2  # 100 layers of rounding: float32 keeps ~2-3 digits


def test_batch_size_gives_the_same_kernel() -> None:
    rng = np.random.default_rng(15)
    x1, x2 = rng.standard_normal((11, 4)), rng.standard_normal((7, 4))
    arch = _mlp(K.Relu(), 10)
    for a, b in ((x1, None), (x1, x2)):
        full = arch.kernel(a, b)
        blocked = arch.kernel(a, b, batch_size=3)
        np.testing.assert_allclose(blocked.nngp, full.nngp, rtol=1e-13, atol=0)
        np.testing.assert_allclose(blocked.ntk, full.ntk, rtol=1e-13, atol=0)
    np.testing.assert_array_equal(arch.kernel(x1, batch_size=4, get="ntk"), arch.kernel(x1, batch_size=4).ntk)


def test_errors_are_clear() -> None:
    x = np.ones((2, 3))
    no_kernel = K.serial(K.Dense(4), K.custom(lambda p, z: dm.softmax(z, axis=-1), name="Softmax"), K.Dense(1))
    with pytest.raises(K.NoAnalyticKernelError, match="monte_carlo"):
        no_kernel.kernel(x)
    assert np.all(np.isfinite(K.monte_carlo(no_kernel, x, n_samples=2, seed=0).ntk))
    with pytest.raises(ValueError, match="Gaussian"):
        K.serial(K.Relu(), K.Dense(1)).kernel(x)
    with pytest.raises(dm.ShapeError, match="batch, features"):
        _mlp(K.Relu(), 3).kernel(np.ones(3))
    with pytest.raises(ValueError, match="get"):
        _mlp(K.Relu(), 3).kernel(x, get="ntkk")
    with pytest.raises(ValueError, match="parameterization"):
        K.Dense(3, parameterization="mup")
    with pytest.raises(dm.DtypeError):
        _mlp(K.Relu(), 3).kernel(x, dtype=np.int64)


# ----- predictions ----------------------------------------------------------------------------------------
def _spd(rng: np.random.Generator, n: int) -> np.ndarray:
    A = rng.standard_normal((n, n))
    return A @ A.T / n + 0.1 * np.eye(n)


def test_gradient_descent_mse_equals_matrix_exponential() -> None:
    rng = np.random.default_rng(16)
    n, m = 6, 3
    k_all = _spd(rng, n + m)
    k, kt = k_all[:n, :n], k_all[n:, :n]
    y, f0, ft0 = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(m)
    eta, t = 0.7, 2.3
    E = scipy.linalg.expm(-eta * t / n * k)
    expected_train = y + E @ (f0 - y)
    expected_test = ft0 + kt @ np.linalg.solve(k, (np.eye(n) - E) @ (y - f0))
    tr, te = predict.gradient_descent_mse(k, y, eta, t, kt, f0, ft0)
    assert _rel(tr, expected_train) < 1e-12 and _rel(te, expected_test) < 1e-11
    tr_inf, te_inf = predict.gradient_descent_mse(k, y, eta, np.inf, kt, f0, ft0)
    assert _rel(tr_inf, y) < 1e-12  # interpolation
    assert _rel(te_inf, ft0 + kt @ np.linalg.solve(k, y - f0)) < 1e-10


def test_predictions_survive_singular_and_slightly_negative_kernels() -> None:
    rng = np.random.default_rng(17)
    X = rng.standard_normal((6, 2))
    k = X @ X.T                                   # rank 2
    k[0, 0] -= 1e-13                              # a rounding-size negative eigenvalue
    y = X @ np.array([1.0, -2.0])                 # in the range of k
    tr = predict.gradient_descent_mse(k, y, 1.0, np.inf)
    assert np.all(np.isfinite(tr)) and _rel(tr, y) < 1e-8
    post = predict.gp_inference(k, y, k, k)
    assert np.all(np.isfinite(post.mean)) and _rel(post.mean, y) < 1e-8
    assert np.all(np.isfinite(post.covariance)) and np.max(np.abs(post.covariance)) < 1e-8


def test_gp_inference_equals_the_textbook_solve() -> None:
    rng = np.random.default_rng(18)
    k_all = _spd(rng, 9)
    k, kt, kss = k_all[:6, :6], k_all[6:, :6], k_all[6:, 6:]
    y = rng.standard_normal((6, 2))
    reg = 0.1 * np.mean(np.diag(k))
    post = predict.gp_inference(k, y, kt, kss, diag_reg=0.1)
    assert _rel(post.mean, kt @ np.linalg.solve(k + reg * np.eye(6), y)) < 1e-12
    assert _rel(post.covariance, kss - kt @ np.linalg.solve(k + reg * np.eye(6), kt.T)) < 1e-11


def test_automatic_blocks_give_the_same_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    from dlmath.kernels import stax
    rng = np.random.default_rng(19)
    x1, x2 = rng.standard_normal((13, 4)), rng.standard_normal((9, 4))
    arch = _mlp(K.Erf(), 10)
    full = [arch.kernel(x1), arch.kernel(x1, x2)]
    monkeypatch.setattr(stax, "AUTO_BLOCK", 4)
    for f, b in zip(full, [arch.kernel(x1), arch.kernel(x1, x2)], strict=True):
        np.testing.assert_allclose(b.nngp, f.nngp, rtol=1e-13, atol=0)
        np.testing.assert_allclose(b.ntk, f.ntk, rtol=1e-13, atol=0)
        np.testing.assert_array_equal(b.cov1, f.cov1)


def test_dropout_and_layernorm_kernels_equal_monte_carlo_of_wide_networks() -> None:
    """Finite networks (width 1024, 512 outputs averaged by the empirical NNGP) with fresh dropout masks per draw;
    x with itself, so the diagonal (a sample sharing its mask with itself) carries the 1/(1-p) factor."""
    rng = np.random.default_rng(21)
    x = rng.standard_normal((4, 3))
    arch = K.serial(K.Dense(1024, 1.5, 0.1), K.Relu(), K.Dropout(0.4, seed=1), K.Dense(1024, 1.2, 0.1),
                    K.LayerNorm(), K.Erf(), K.Dense(512, 1.0, 0.2))
    analytic = arch.kernel(x, get="nngp")
    mc = K.monte_carlo(arch, x, n_samples=6, seed=2, get=("nngp",)).nngp
    # width 1024 and 6 x 512 output channels: the spread is ~1-2%; 6% is > 3 sigma
    assert _rel(mc, analytic) < 0.06
    # without the 1/(1-p) on the diagonal the kernel is measurably off: the test can see Dropout's factor
    off = analytic.copy()
    np.fill_diagonal(off, np.diag(off) * 0.6)
    assert _rel(mc, off) > 0.1


def test_flatten_layernorm_dropout_apply_and_errors() -> None:
    x = np.random.default_rng(22).standard_normal((3, 2, 4))
    assert K.Flatten().apply((), x).shape == (3, 8)
    assert K.Flatten().output_shape((3, 2, 4)) == (3, 8)
    y = np.asarray(K.LayerNorm().apply((), x))
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(-1), 1, rtol=1e-9)
    ref = torch.nn.functional.layer_norm(torch.tensor(x), (4,), eps=1e-5).numpy()
    np.testing.assert_allclose(np.asarray(K.LayerNorm(1e-5).apply((), x)), ref, rtol=1e-10, atol=1e-12)
    d = K.Dropout(0.25, seed=0).apply((), np.ones((200, 200)))
    assert set(np.unique(d)) <= {0.0, 1 / 0.75} and abs(d.mean() - 1) < 0.02
    gx = dm.grad(lambda z: dm.sum(K.LayerNorm().apply((), z) ** 3))(x)
    assert np.all(np.isfinite(gx))
    with pytest.raises(ValueError, match="Dropout"):
        K.Dropout(1.0)
    with pytest.raises(ValueError, match="LayerNorm"):
        K.serial(K.Dense(4), K.Relu(), K.LayerNorm()).kernel(x[:, 0])


@pytest.mark.parametrize("filt,padding", [((3,), "SAME"), ((2,), "VALID"), ((3, 2), "SAME"), ((2, 3), "VALID")])
def test_conv_and_avgpool_apply_equal_torch_and_numpy(filt: tuple[int, ...], padding: str) -> None:
    ns = len(filt)
    rng = np.random.default_rng(23)
    x = rng.standard_normal((2, *(5, 4)[:ns], 3))
    conv = K.Conv(4, filt, padding, W_std=1.3, b_std=0.2)
    W, b = conv.init(1, x.shape)
    ours = np.asarray(conv.apply((W, b), x))
    assert ours.shape == conv.output_shape(x.shape)
    tconv = torch.nn.functional.conv1d if ns == 1 else torch.nn.functional.conv2d
    perm = (0, ns + 1, *range(1, ns + 1))
    ref = tconv(torch.tensor(x).permute(perm), torch.tensor(W).permute(ns + 1, ns, *range(ns)),
                padding=padding.lower()).permute(0, *range(2, ns + 2), 1).numpy()
    ref = ref * 1.3 / np.sqrt(np.prod(W.shape[:-1])) + 0.2 * b
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    pool = K.AvgPool(filt, padding)
    pads = [(0, 0)] + [((f - 1) // 2, f // 2) if padding == "SAME" else (0, 0) for f in filt] + [(0, 0)]
    win = np.lib.stride_tricks.sliding_window_view(np.pad(x, pads), filt, axis=tuple(range(1, ns + 1)))
    expect = win.mean(axis=tuple(range(-ns, 0)))
    got = np.asarray(pool.apply((), x))
    assert got.shape == pool.output_shape(x.shape)
    np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-14)


def test_convolutional_kernels_equal_monte_carlo_of_wide_networks() -> None:
    """A finite conv net of 192 channels: the analytic NNGP/NTK (the CNTK of Arora et al. 2019) against the mean of
    its empirical kernels over draws (generic Jacobian contraction for the NTK)."""
    x = np.random.default_rng(24).standard_normal((3, 4, 3, 2))

    def arch(channels: int, *readout: K.Layer) -> K.Layer:
        return K.serial(K.Conv(channels, (2, 2), "SAME", 1.4, 0.1), K.Relu(), K.AvgPool((2, 1), "VALID"),
                        K.Conv(channels, (2, 2), "VALID", 1.3, 0.2), K.Erf(), K.GlobalAvgPool(), *readout)
    # NNGP: the 512 pooled channels themselves (a Dense readout would add its own sampling noise); NTK: one output
    nngp = K.monte_carlo(arch(512), x, n_samples=16, seed=5, get=("nngp",)).nngp
    ntk = K.monte_carlo(arch(256, K.Dense(1, 1.0, 0.1)), x, n_samples=4, seed=6, get=("ntk",)).ntk
    # measured spread of one draw at these widths: ~4% (NNGP, 512 channels), ~8% (NTK, 256): 16 draws -> ~1%,
    # 4 draws -> ~4%; tolerances > 3 sigma
    assert _rel(nngp, arch(1).kernel(x, get="nngp")) < 0.05
    assert _rel(ntk, arch(1, K.Dense(1, 1.0, 0.1)).kernel(x, get="ntk")) < 0.15


def test_conv_apply_is_differentiable_and_bad_shapes_are_named() -> None:
    x = np.random.default_rng(25).standard_normal((2, 4, 3, 2))
    arch = K.serial(K.Conv(3, (2, 2), "SAME"), K.Gelu(), K.AvgPool((2, 2)), K.Flatten(), K.Dense(1))
    params = arch.init(0, x.shape)
    gx = np.asarray(dm.grad(lambda z: dm.sum(arch.apply(params, z)))(x))
    h, e = 1e-6, np.zeros_like(x)
    e[1, 2, 0, 1] = h
    num = (np.sum(arch.apply(params, x + e)) - np.sum(arch.apply(params, x - e))) / (2 * h)
    assert abs(gx[1, 2, 0, 1] - num) < 1e-7
    with pytest.raises(dm.ShapeError, match="Conv"):
        K.Conv(3, (2, 2)).apply(K.Conv(3, (2, 2)).init(0, x.shape), x[:, 0])
    with pytest.raises(dm.ShapeError, match="Flatten or GlobalAvgPool"):
        K.serial(K.Conv(3, (2,)), K.Relu()).kernel(x[:, :, 0])
    with pytest.raises(ValueError, match="padding"):
        K.Conv(3, (2,), "FULL")


def test_structured_empirical_ntk_of_residual_and_branching_stacks_equals_the_jacobian_contraction() -> None:
    """Novak et al. (2022) structured derivatives swept through residual blocks and FanOut/parallel/FanInSum branches
    equal the engine's Jacobian contraction; 'auto' picks the structured form for them and the generic one for
    convolutional nets (where both are not built)."""
    rng = np.random.default_rng(26)
    x1, x2 = rng.standard_normal((5, 4)), rng.standard_normal((3, 4))
    block = K.serial(K.Relu(), K.Dense(24, 1.2, 0.1), K.Gelu(), K.Dense(24, 0.9, None))
    arch = K.serial(K.Dense(24, 1.4, 0.1), K.residual(block), K.residual(K.serial(K.Erf(), K.Dense(24, 1.1, 0.2))),
                    K.FanOut(2), K.parallel(K.serial(K.Tanh(), K.Dense(24, 1.0, 0.0, "standard")), K.Identity()),
                    K.FanInSum(), K.Relu(), K.Dense(3, 1.0, 0.1))
    params = arch.init(0, x1.shape)
    for b in (None, x2):
        structured = K.empirical_ntk_structured(arch, params, x1, b)
        generic = K.empirical_ntk_generic(arch, params, x1, b)
        assert _rel(structured, generic) < 1e-12
        assert _rel(K.empirical_ntk(arch, params, x1, b), structured) == 0.0
    assert np.all(K.empirical_ntk_structured(K.Relu(), (), x1) == 0)
    conv = K.serial(K.Conv(4, (2,), "SAME"), K.Relu(), K.Flatten(), K.Dense(1))
    xc = rng.standard_normal((3, 5, 2))
    with pytest.raises(TypeError, match="empirical_ntk_generic"):
        K.empirical_ntk_structured(conv, conv.init(0, xc.shape), xc)
    assert K.empirical_ntk(conv, conv.init(0, xc.shape), xc).shape == (3, 3)
