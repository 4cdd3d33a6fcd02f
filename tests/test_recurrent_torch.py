"""RNN, LSTM, GRU, their cells and the fused recurrent primitives against PyTorch, float64.

Layers: same weights (the torch module's state dict), forward and backward (input, initial states, every
parameter), over random configurations. Primitives: VJP (`compare`) and JVP (`check_jvp`, with the
transpose identity) against a torch implementation of the same recurrence; grad-of-grad once.
Variable lengths: against torch's packed sequences.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import dlmath as dm
from dlmath import nn
from dlmath.nn import recurrent_ops as ro
from test_jvp_torch import check_jvp
from test_ops_torch import compare

TOL = 1e-10
TORCH = {"RNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}
DM = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}


def _close(a: Any, b: Any, what: str, tol: float = TOL) -> None:
    a = np.asarray(a.data if isinstance(a, dm.Tensor) else a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=what)


def _pair(kind: str, inp: int, hid: int, seed: int = 0, **kw: Any) -> tuple[Any, Any]:
    torch.manual_seed(seed)
    tm = TORCH[kind](inp, hid, **kw).double()
    m = DM[kind](inp, hid, dtype=np.float64, **kw)
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return m, tm


def _loss(out: Any, hn: Any, weights: list[np.ndarray], lib: Any) -> Any:
    """A loss that weighs every output and final state differently (so no gradient term can cancel)."""
    parts = [out] + (list(hn) if isinstance(hn, tuple) else [hn])
    total = 0
    for p, w in zip(parts, weights, strict=True):
        w = torch.from_numpy(w) if lib is torch else w
        total = total + (p * w).sum() + (p * p).sum()
    return total


def _run_both(kind: str, m: Any, tm: Any, x: np.ndarray, h0: Any, lengths: Any = None,
              rng: np.random.Generator | None = None) -> None:
    rng = rng or np.random.default_rng(0)
    tx = torch.tensor(x, requires_grad=True)
    xx = dm.tensor(x, requires_grad=True)
    th0 = dh0 = None
    if h0 is not None:
        if kind == "LSTM":
            th0 = tuple(torch.tensor(a, requires_grad=True) for a in h0)
            dh0 = tuple(dm.tensor(a, requires_grad=True) for a in h0)
        else:
            th0 = torch.tensor(h0, requires_grad=True)
            dh0 = dm.tensor(h0, requires_grad=True)
    if lengths is None:
        tout, thn = tm(tx, th0)
    else:
        packed = pack_padded_sequence(tx, torch.tensor(lengths), batch_first=tm.batch_first, enforce_sorted=False)
        tp, thn = tm(packed, th0)
        tout, _ = pad_packed_sequence(tp, batch_first=tm.batch_first, total_length=x.shape[1 if tm.batch_first else 0])
    out, hn = m(xx, dh0, lengths=lengths)
    _close(out, tout, "output")
    for a, b in zip(hn if isinstance(hn, tuple) else (hn,), thn if isinstance(thn, tuple) else (thn,), strict=True):
        _close(a, b, "final state")
    shapes = [tuple(tout.shape)] + [tuple(t.shape) for t in (thn if isinstance(thn, tuple) else (thn,))]
    weights = [rng.standard_normal(s) for s in shapes]
    _loss(tout, thn, weights, torch).backward()
    _loss(out, hn, weights, dm).backward()
    _close(xx.grad, tx.grad, "input gradient")
    if h0 is not None:
        for a, b in zip(dh0 if isinstance(dh0, tuple) else (dh0,), th0 if isinstance(th0, tuple) else (th0,),
                        strict=True):
            _close(a.grad, b.grad, "initial-state gradient")
    params = dict(m.named_parameters())
    assert set(params) == {k for k, _ in tm.named_parameters()}
    for k, p in tm.named_parameters():
        _close(params[k].grad, p.grad, f"gradient of {k}")


configs = st.fixed_dictionaries({
    "kind": st.sampled_from(["RNN", "LSTM", "GRU"]),
    "num_layers": st.integers(1, 2),
    "bidirectional": st.booleans(),
    "batch_first": st.booleans(),
    "bias": st.booleans(),
    "with_h0": st.booleans(),
    "L": st.integers(1, 5),
    "N": st.integers(1, 3),
    "relu": st.booleans(),
})


@settings(max_examples=12, deadline=None)
@given(configs, st.integers(0, 2**16))
def test_layers_match_torch(cfg: dict[str, Any], seed: int) -> None:
    kind = cfg["kind"]
    kw = dict(num_layers=cfg["num_layers"], bidirectional=cfg["bidirectional"], batch_first=cfg["batch_first"],
              bias=cfg["bias"])
    if kind == "RNN" and cfg["relu"]:
        kw["nonlinearity"] = "relu"
    m, tm = _pair(kind, 3, 4, seed, **kw)
    rng = np.random.default_rng(seed)
    L, N = cfg["L"], cfg["N"]
    x = rng.standard_normal((N, L, 3) if cfg["batch_first"] else (L, N, 3))
    h0 = None
    if cfg["with_h0"]:
        shape = (cfg["num_layers"] * (2 if cfg["bidirectional"] else 1), N, 4)
        h0 = (rng.standard_normal(shape), rng.standard_normal(shape)) if kind == "LSTM" else rng.standard_normal(shape)
    _run_both(kind, m, tm, x, h0, rng=rng)


@settings(max_examples=8, deadline=None)
@given(configs, st.integers(0, 2**16))
def test_lengths_match_torch_packed_sequences(cfg: dict[str, Any], seed: int) -> None:
    kind = cfg["kind"]
    kw = dict(num_layers=cfg["num_layers"], bidirectional=cfg["bidirectional"], batch_first=cfg["batch_first"])
    m, tm = _pair(kind, 3, 4, seed, **kw)
    rng = np.random.default_rng(seed)
    L, N = cfg["L"] + 1, cfg["N"] + 1
    lengths = rng.integers(1, L + 1, size=N)
    lengths[0] = L  # pad_packed_sequence pads to the longest one
    x = rng.standard_normal((N, L, 3) if cfg["batch_first"] else (L, N, 3))
    h0 = None
    if cfg["with_h0"]:
        shape = (cfg["num_layers"] * (2 if cfg["bidirectional"] else 1), N, 4)
        h0 = (rng.standard_normal(shape), rng.standard_normal(shape)) if kind == "LSTM" else rng.standard_normal(shape)
    _run_both(kind, m, tm, x, h0, lengths=lengths.tolist(), rng=rng)


def test_padding_does_not_change_shorter_sequences() -> None:
    m, _ = _pair("LSTM", 3, 4, bidirectional=True)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 2, 3))
    out, (h, c) = m(x, lengths=[6, 3])
    alone, (h1, c1) = m(x[:3, 1:2])
    _close(out[:3, 1:2], alone.data, "short sequence, padded vs alone")
    _close(h[:, 1:2], h1.data, "h_n, padded vs alone")
    _close(c[:, 1:2], c1.data, "c_n, padded vs alone")
    assert np.all(out.data[3:, 1] == 0)
    x2 = x.copy()
    x2[3:, 1] = 1e3  # different padding, same result
    out2, _ = m(x2, lengths=[6, 3])
    _close(out2, out.data, "padding values")


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_unbatched_input(kind: str) -> None:
    m, tm = _pair(kind, 3, 4, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 3))
    shape = (4, 4)
    h0 = (rng.standard_normal(shape), rng.standard_normal(shape)) if kind == "LSTM" else rng.standard_normal(shape)
    _run_both(kind, m, tm, x, h0, rng=rng)


def test_truncated_bptt_detach_between_chunks() -> None:
    """Chunks of 3 steps with the state detached in between: dlmath and torch agree, and the gradient of the
    second chunk's loss does not reach the first chunk's inputs."""
    m, tm = _pair("LSTM", 3, 4)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 2, 3))
    xx, tx = dm.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    state, tstate = None, None
    for k in (0, 3):
        out, state = m(xx[k:k + 3], state)
        tout, tstate = tm(tx[k:k + 3], tstate)
        (out * out).sum().backward()
        (tout * tout).sum().backward()
        state = (state[0].detach(), state[1].detach())
        tstate = (tstate[0].detach(), tstate[1].detach())
    _close(xx.grad, tx.grad, "input gradient")
    for k, p in tm.named_parameters():
        _close(dict(m.named_parameters())[k].grad, p.grad, k)
    # the second chunk alone, from the detached state, gives the same input gradient for steps 3..5
    m.zero_grad()
    x2 = dm.tensor(x, requires_grad=True)
    out, s = m(x2[:3])
    out2, _ = m(x2[3:], (s[0].detach(), s[1].detach()))
    (out2 * out2).sum().backward()
    assert np.all(x2.grad.data[:3] == 0)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("bias", [True, False])
def test_cells_match_torch(kind: str, bias: bool) -> None:
    tcls = {"RNN": torch.nn.RNNCell, "LSTM": torch.nn.LSTMCell, "GRU": torch.nn.GRUCell}[kind]
    cls = {"RNN": nn.RNNCell, "LSTM": nn.LSTMCell, "GRU": nn.GRUCell}[kind]
    torch.manual_seed(0)
    tm = tcls(3, 5, bias=bias).double()
    m = cls(3, 5, bias=bias, dtype=np.float64)
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    rng = np.random.default_rng(4)
    for batch in ((4,), ()):
        x = rng.standard_normal(batch + (3,))
        hs = [rng.standard_normal(batch + (5,)) for _ in range(2 if kind == "LSTM" else 1)]
        xx, tx = dm.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        dh, th = [dm.tensor(h, requires_grad=True) for h in hs], [torch.tensor(h, requires_grad=True) for h in hs]
        out = m(xx, tuple(dh) if kind == "LSTM" else dh[0])
        tout = tm(tx, tuple(th) if kind == "LSTM" else th[0])
        outs, touts = (out, tout) if kind == "LSTM" else ((out,), (tout,))
        w = [rng.standard_normal(o.shape) for o in outs]
        sum(((o * wi) ** 2).sum() for o, wi in zip(outs, w, strict=True)).backward()
        sum(((o * torch.from_numpy(wi)) ** 2).sum() for o, wi in zip(touts, w, strict=True)).backward()
        for a, b in zip(outs, touts, strict=True):
            _close(a, b, "cell output")
        _close(xx.grad, tx.grad, "cell input gradient")
        for a, b in zip(dh, th, strict=True):
            _close(a.grad, b.grad, "cell state gradient")
        for k, p in tm.named_parameters():
            _close(dict(m.named_parameters())[k].grad, p.grad, k)
            p.grad = None
        m.zero_grad()
    out = m(rng.standard_normal((2, 3)))  # no initial state: zeros, as torch
    tout = tm(torch.from_numpy(rng.standard_normal((2, 3))))
    assert (out[0] if kind == "LSTM" else out).shape == tuple((tout[0] if kind == "LSTM" else tout).shape)


# ----- the primitives, against torch implementations of the same recurrences ---------------------------------
def _t_rnn(xg: torch.Tensor, h: torch.Tensor, w: torch.Tensor, relu: bool = False, mask: Any = None) -> Any:
    outs = []
    for t in range(xg.shape[0]):
        a = xg[t] + h @ w.T
        new = torch.relu(a) if relu else torch.tanh(a)
        h = new if mask is None else mask[t] * new + (1 - mask[t]) * h
        outs.append(h)
    return torch.stack(outs)


def _t_lstm(xg: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w: torch.Tensor, mask: Any = None) -> Any:
    H = h.shape[-1]
    outs = []
    for t in range(xg.shape[0]):
        a = xg[t] + h @ w.T
        i, f, g, o = torch.sigmoid(a[:, :H]), torch.sigmoid(a[:, H:2 * H]), torch.tanh(a[:, 2 * H:3 * H]), \
            torch.sigmoid(a[:, 3 * H:])
        c_new = f * c + i * g
        h_new = o * torch.tanh(c_new)
        if mask is not None:
            h_new, c_new = mask[t] * h_new + (1 - mask[t]) * h, mask[t] * c_new + (1 - mask[t]) * c
        h, c = h_new, c_new
        outs.append(torch.stack([h, c]))
    return torch.stack(outs)


def _t_gru(xg: torch.Tensor, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, mask: Any = None) -> Any:
    H = h.shape[-1]
    outs = []
    for t in range(xg.shape[0]):
        gh = h @ w.T + b
        r = torch.sigmoid(xg[t, :, :H] + gh[:, :H])
        z = torch.sigmoid(xg[t, :, H:2 * H] + gh[:, H:2 * H])
        n = torch.tanh(xg[t, :, 2 * H:] + r * gh[:, 2 * H:])
        new = (1 - z) * n + z * h
        h = new if mask is None else mask[t] * new + (1 - mask[t]) * h
        outs.append(h)
    return torch.stack(outs)


def _mask(L: int, N: int) -> np.ndarray:
    lengths = np.arange(N) % L + 1
    return (np.arange(L)[:, None] < lengths[None]).astype(np.float64)[..., None]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("relu", [False, True])
def test_rnn_scan_vjp_jvp(masked: bool, relu: bool) -> None:
    rng = np.random.default_rng(5)
    L, N, H = 4, 3, 5
    args = (rng.standard_normal((L, N, H)), rng.standard_normal((N, H)), rng.standard_normal((H, H)) * 0.5)
    mk = _mask(L, N) if masked else None
    nl = "relu" if relu else "tanh"
    tmk = None if mk is None else torch.from_numpy(mk)
    compare(lambda *a: ro.rnn_scan(*a, nonlinearity=nl, mask=mk), lambda *a: _t_rnn(*a, relu=relu, mask=tmk), *args)
    check_jvp(ro.rnn_scan, lambda *a: ro.rnn_scan(*a, nonlinearity=nl, mask=mk),
              lambda *a: _t_rnn(*a, relu=relu, mask=tmk), *args)


@pytest.mark.parametrize("masked", [False, True])
def test_lstm_scan_vjp_jvp(masked: bool) -> None:
    rng = np.random.default_rng(6)
    L, N, H = 4, 3, 5
    args = (rng.standard_normal((L, N, 4 * H)), rng.standard_normal((N, H)), rng.standard_normal((N, H)),
            rng.standard_normal((4 * H, H)) * 0.5)
    mk = _mask(L, N) if masked else None
    tmk = None if mk is None else torch.from_numpy(mk)
    compare(lambda *a: ro.lstm_scan(*a, mask=mk), lambda *a: _t_lstm(*a, mask=tmk), *args)
    check_jvp(ro.lstm_scan, lambda *a: ro.lstm_scan(*a, mask=mk), lambda *a: _t_lstm(*a, mask=tmk), *args)


@pytest.mark.parametrize("masked", [False, True])
def test_gru_scan_vjp_jvp(masked: bool) -> None:
    rng = np.random.default_rng(7)
    L, N, H = 4, 3, 5
    args = (rng.standard_normal((L, N, 3 * H)), rng.standard_normal((N, H)), rng.standard_normal((3 * H, H)) * 0.5,
            rng.standard_normal(3 * H))
    mk = _mask(L, N) if masked else None
    tmk = None if mk is None else torch.from_numpy(mk)
    compare(lambda *a: ro.gru_scan(*a, mask=mk), lambda *a: _t_gru(*a, mask=tmk), *args)
    check_jvp(ro.gru_scan, lambda *a: ro.gru_scan(*a, mask=mk), lambda *a: _t_gru(*a, mask=tmk), *args)


def test_cell_primitives_vjp_jvp() -> None:
    rng = np.random.default_rng(8)
    N, H = 3, 4

    def t_lstm_cell(gates: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        i, f = torch.sigmoid(gates[:, :H]), torch.sigmoid(gates[:, H:2 * H])
        g, o = torch.tanh(gates[:, 2 * H:3 * H]), torch.sigmoid(gates[:, 3 * H:])
        c2 = f * c + i * g
        return torch.cat([o * torch.tanh(c2), c2], -1)

    def t_gru_cell(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        r = torch.sigmoid(gi[:, :H] + gh[:, :H])
        z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        return (1 - z) * n + z * h

    a = (rng.standard_normal((N, 4 * H)), rng.standard_normal((N, H)))
    compare(ro.lstm_cell, t_lstm_cell, *a)
    check_jvp(ro.lstm_cell, ro.lstm_cell, t_lstm_cell, *a)
    b = (rng.standard_normal((N, 3 * H)), rng.standard_normal((N, 3 * H)), rng.standard_normal((N, H)))
    compare(ro.gru_cell, t_gru_cell, *b)
    check_jvp(ro.gru_cell, ro.gru_cell, t_gru_cell, *b)


def test_lstm_scan_second_order_and_both_backward_paths() -> None:
    """grad of (grad . v) through lstm_scan against torch's double backward; this runs the rules on Tensors
    (the generic BPTT), whose first-order values must equal the array fast path's."""
    rng = np.random.default_rng(9)
    L, N, H = 3, 2, 3
    arrs = [rng.standard_normal((L, N, 4 * H)), rng.standard_normal((N, H)), rng.standard_normal((N, H)),
            rng.standard_normal((4 * H, H)) * 0.5]
    v = rng.standard_normal((4 * H, H))
    xs = [dm.tensor(a, requires_grad=True) for a in arrs]
    ts = [torch.tensor(a, requires_grad=True) for a in arrs]
    tout = _t_lstm(*ts)
    (tgw,) = torch.autograd.grad((tout ** 2).sum(), ts[3], create_graph=True)
    out = ro.lstm_scan(*xs)
    (out ** 2).sum().backward()
    _close(xs[3].grad, tgw, "first-order gradient (array path)")

    def inner(*p: Any) -> Any:
        gw = dm.grad(lambda w: (ro.lstm_scan(p[0], p[1], p[2], w) ** 2).sum())(p[3])
        return (gw * v).sum()

    second = dm.grad(inner, argnums=(0, 1, 2, 3))(*arrs)
    tsecond = torch.autograd.grad((tgw * torch.from_numpy(v)).sum(), ts)
    for k, (a, b) in enumerate(zip(second, tsecond, strict=True)):
        _close(a, b, f"second-order gradient, argument {k}", tol=1e-9)


# ----- the layer's contract ----------------------------------------------------------------------------------
def test_state_dict_keys_and_init_bounds() -> None:
    torch.manual_seed(0)
    for kind in ("RNN", "LSTM", "GRU"):
        tm = TORCH[kind](3, 16, num_layers=2, bidirectional=True)
        m = DM[kind](3, 16, num_layers=2, bidirectional=True)
        assert list(m.state_dict()) == list(tm.state_dict())
        for k, v in m.state_dict().items():
            assert v.dtype == np.float32 and v.shape == tuple(tm.state_dict()[k].shape)
        values = np.concatenate([v.ravel() for v in m.state_dict().values()])
        assert 0.24 < np.abs(values).max() <= 0.25  # U(-1/sqrt(16), 1/sqrt(16))
        assert abs(values.mean()) < 0.01


def test_dropout_between_layers() -> None:
    m, _ = _pair("LSTM", 3, 4, num_layers=2, dropout=1.0)
    x = np.random.default_rng(10).standard_normal((5, 2, 3))
    single, _ = _pair("LSTM", 4, 4)
    single.load_state_dict({k.replace("_l1", "_l0"): v for k, v in m.state_dict().items() if "_l1" in k})
    out, _ = m(x)  # training mode: dropout 1 zeroes the first layer's output
    ref, _ = single(np.zeros((5, 2, 4)))
    _close(out, ref.data, "second layer on dropped-out input")
    m.eval()
    out_eval, _ = m(x)
    assert not np.allclose(out_eval.data, out.data)
    m2, tm2 = _pair("GRU", 3, 4, num_layers=2, dropout=0.5)
    m2.eval()
    tm2.eval()
    _run_both("GRU", m2, tm2, x, None)


def test_bad_input_is_a_clear_error() -> None:
    m = nn.LSTM(3, 4, dtype=np.float64)
    with pytest.raises(dm.ShapeError, match="input_size=3"):
        m(np.zeros((5, 2, 7)))
    with pytest.raises(dm.ShapeError, match="LSTM"):
        m(np.zeros((5,)))
    with pytest.raises(dm.ShapeError, match="h_0"):
        m(np.zeros((5, 2, 3)), (np.zeros((1, 3, 4)), np.zeros((1, 2, 4))))
    with pytest.raises(dm.DtypeError, match="float32"):
        m(np.zeros((5, 2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="length"):
        m(np.zeros((5, 2, 3)), lengths=[6, 1])
    with pytest.raises(ValueError, match="proj_size"):
        nn.LSTM(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size"):
        nn.GRU(3, 0)
    out, _ = m([[[0.0, 1.0, 2.0]]])  # nested lists become arrays of the layer's dtype, as torch tensors would
    assert out.shape == (1, 1, 4)
    assert nn.GRUCell(3, 4)([0.0, 1.0, 2.0]).shape == (4,)
    with pytest.raises(dm.ShapeError, match="GRUCell"):
        nn.GRUCell(3, 4, dtype=np.float64)(np.zeros((2, 5)))


def test_docs_examples_run() -> None:
    """docs/recurrent.md's code blocks (truncated BPTT; training an LSTM to > 90% accuracy) run as written."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).parents[1] / "docs" / "recurrent.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    for code in blocks:
        exec(compile(code, "docs/recurrent.md", "exec"), {})


@pytest.mark.parametrize("masked", [False, True])
def test_lstm_bptt_array_fast_path_equals_the_generic_rule(masked: bool) -> None:
    """The ordinary backward pass uses `_lstm_bptt_arrays` (saved activations, buffers); `_lstm_bptt` (generic
    ops, recomputed activations) serves create_graph. Both compute the same four cotangents."""
    rng = np.random.default_rng(11)
    L, N, H = 5, 3, 4
    xg, h0, c0 = rng.standard_normal((L, N, 4 * H)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    w = rng.standard_normal((4 * H, H)) * 0.5
    mk = _mask(L, N) if masked else None
    S = ro._lstm_forward(xg, h0, c0, w, mask=mk)
    g = rng.standard_normal(S.shape)
    fast = ro._lstm_bptt_arrays(g, S, h0, c0, w, ro._saved_for(S), mk)
    generic = ro._lstm_bptt(g, S.copy(), xg, h0, c0, w, mk)  # a copy has no saved activations: recomputed
    for k, (a, b) in enumerate(zip(fast, generic, strict=True)):
        _close(a, b, f"cotangent {k}")
