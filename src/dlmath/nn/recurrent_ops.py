r"""Fused recurrent primitives: whole-sequence scans (``rnn_scan``, ``lstm_scan``, ``gru_scan``) and single
steps (``lstm_cell``, ``gru_cell``), each with a hand-derived VJP (backpropagation through time) and a
separately written JVP (the tangent recurrence).

Why fused: a recurrent layer written op by op costs about ten engine dispatches per time step forward and
as many backward; at hidden size 128 that overhead is as large as the arithmetic. The scans take the input
projections of *all* steps at once (``xg = x W_ih^T + b``, one GEMM done by the caller), run the recurrence
in a NumPy loop with one matrix product per step for all gates, and return the stacked states. Their
backward recomputes the gate activations of every step in one GEMM from the saved states, runs the
reverse recurrence (one matrix product per step), and forms the weight gradient in one GEMM over all
steps: $\partial L/\partial W_{hh} = \sum_t \delta_t^\top h_{t-1}$ (Werbos 1990, "Backpropagation through
time: what it does and how to do it").

The rules are written with generic arithmetic and ``dm`` ops: on plain arrays (an ordinary backward pass)
they are NumPy; on Tensors (``create_graph=True``, forward-over-reverse) every op is recorded, so higher
derivatives need no extra code.

Variable lengths: a ``mask`` keyword of shape (L, N, 1) with 1 where step t is inside sequence n. Past a
sequence's end its state is carried unchanged, $h_t = m_t\,\mathrm{cell}(h_{t-1}) + (1-m_t)\,h_{t-1}$, so the
last state is the state at the sequence's own last step (PyTorch's packed sequences).

Gate layouts are PyTorch's: LSTM (i, f, g, o), GRU (r, z, n).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np
from scipy.special import expit

from .. import autodiff as ad
from ..autodiff.core import Primitive, Tensor, unwrap

__all__ = ["gru_cell", "gru_scan", "lstm_cell", "lstm_scan", "rnn_scan"]


# ----- helpers ---------------------------------------------------------------------------------------------
def _plain(x: Any) -> Any:
    """A constant Tensor (the flop-counting paths wrap arrays so) as its array; anything else unchanged."""
    if isinstance(x, Tensor) and not x.requires_grad and x._node is None and x._tangent is None:
        return x.data
    return x


def _cat(parts: list[Any]) -> Any:
    return ad.concatenate(parts, axis=-1)


def _prev_states(S: Any, h0: Any) -> Any:
    """(L, N, H): the state entering each step, h_{t-1}, from h0 and the stacked states S."""
    return ad.concatenate([h0[None], S[:-1]], axis=0)


class _LastBackward(threading.local):
    """The sweep asks a primitive for one argument's cotangent at a time; BPTT computes all of them at
    once, so the last result is kept, keyed by the identity of the cotangent and the output."""

    key: tuple[Any, Any] | None = None
    value: Any = None


_last = _LastBackward()


def _cached(g: Any, ans: Any, compute: Any) -> Any:
    key = _last.key
    if key is not None and key[0]() is g and key[1]() is ans:
        return _last.value
    value = compute()
    try:
        _last.key = (weakref.ref(g), weakref.ref(ans))
        _last.value = value
    except TypeError:  # not weak-referenceable: no caching, recompute next time
        _last.key = None
    return value


_saved_acts: dict[int, tuple[Any, Any]] = {}


def _save(S: np.ndarray, acts: Any) -> None:
    """Keep a forward pass's activations for as long as its output array lives (PyTorch's saved tensors)."""
    key = id(S)
    _saved_acts[key] = (weakref.ref(S, lambda _ref, key=key: _saved_acts.pop(key, None)), acts)


def _saved_for(S: Any) -> Any:
    if not isinstance(S, np.ndarray):
        return None
    entry = _saved_acts.get(id(S))
    return entry[1] if entry is not None and entry[0]() is S else None


def _mask_of(mask: Any, dtype: Any) -> Any:
    return None if mask is None else np.asarray(mask, dtype=dtype)


def _scan_flops(out: Any, xg: Any, h0: Any, w: Any, *rest: Any, **kw: Any) -> int:
    """2 L N H G for the recurrent products plus a few elementwise operations per gate entry."""
    L, N, G = np.shape(xg)
    H = np.shape(h0)[-1]
    return int(2 * L * N * H * G + 10 * L * N * G)


# ================================================================================ Elman RNN
def _activate(pre: np.ndarray, nonlinearity: str) -> np.ndarray:
    return np.tanh(pre) if nonlinearity == "tanh" else np.maximum(pre, 0)


def _rnn_forward(xg: np.ndarray, h0: np.ndarray, w_hh: np.ndarray, nonlinearity: str = "tanh",
                 mask: Any = None) -> np.ndarray:
    r"""$h_t = f(x_t W_{ih}^\top + b + h_{t-1} W_{hh}^\top)$ for t = 1..L; returns (L, N, H)."""
    L = xg.shape[0]
    S = np.empty(xg.shape, dtype=np.result_type(xg, h0, w_hh))
    wT = w_hh.T
    h = h0
    m = _mask_of(mask, S.dtype)
    for t in range(L):
        new = _activate(xg[t] + h @ wT, nonlinearity)
        h = new if m is None else np.where(m[t] > 0, new, h)
        S[t] = h
    return S


def _rnn_derivative(S: Any, nonlinearity: str) -> Any:
    """f'(pre) from the output: 1 - h^2 for tanh, 1[h > 0] for relu (exact at the steps that count)."""
    if nonlinearity == "tanh":
        return 1 - S * S
    return (unwrap(S) > 0).astype(unwrap(S).dtype)


def _rnn_bptt(g: Any, S: Any, xg: Any, h0: Any, w: Any, nonlinearity: str, mask: Any) -> tuple[Any, Any, Any]:
    r"""BPTT: $\delta_t = (\bar h_t + \delta_{t+1} W_{hh}) \odot f'(a_t)$; returns (d xg, d h0, d W_hh)."""
    D = _rnn_derivative(S, nonlinearity)
    m = _mask_of(mask, unwrap(S).dtype)
    L = unwrap(S).shape[0]
    carry: Any = 0
    deltas: list[Any] = [None] * L
    for t in range(L - 1, -1, -1):
        dh = g[t] + carry
        if m is None:
            delta = dh * D[t]
            carry = delta @ w
        else:
            delta = dh * (m[t] * D[t])
            carry = delta @ w + dh * (1 - m[t])
        deltas[t] = delta
    dxg = ad.stack(deltas, axis=0)
    hp = _prev_states(S, h0)
    n = dxg.shape[0] * dxg.shape[1]
    dw = dxg.reshape(n, dxg.shape[-1]).T @ hp.reshape(n, hp.shape[-1])
    return dxg, carry, dw


def _rnn_tangent(S: Any, h0: Any, w: Any, nonlinearity: str, mask: Any, dpre: Any, dh: Any) -> Any:
    r"""The tangent recurrence $\dot h_t = f'(a_t)\odot(\dot a^{ext}_t + \dot h_{t-1} W_{hh}^\top)$."""
    D = _rnn_derivative(S, nonlinearity)
    m = _mask_of(mask, unwrap(S).dtype)
    L = unwrap(S).shape[0]
    out = []
    for t in range(L):
        a = 0 if dpre is None else dpre[t]
        if dh is not None:
            a = a + dh @ w.T
        new = D[t] * a
        if m is not None:
            new = m[t] * new + (1 - m[t]) * (0 if dh is None else dh)
        dh = new
        out.append(new)
    return ad.stack(out, axis=0)


def _rnn_vjp(i: int) -> Any:
    def rule(g: Any, ans: Any, xg: Any, h0: Any, w: Any, nonlinearity: str = "tanh", mask: Any = None) -> Any:
        g, ans, xg, h0, w = (_plain(a) for a in (g, ans, xg, h0, w))
        return _cached(g, ans, lambda: _rnn_bptt(g, ans, xg, h0, w, nonlinearity, mask))[i]
    return rule


def _rnn_jvp_xg(t: Any, ans: Any, xg: Any, h0: Any, w: Any, nonlinearity: str = "tanh", mask: Any = None) -> Any:
    return _rnn_tangent(ans, h0, w, nonlinearity, mask, t, None)


def _rnn_jvp_h0(t: Any, ans: Any, xg: Any, h0: Any, w: Any, nonlinearity: str = "tanh", mask: Any = None) -> Any:
    return _rnn_tangent(ans, h0, w, nonlinearity, mask, None, t)


def _rnn_jvp_w(t: Any, ans: Any, xg: Any, h0: Any, w: Any, nonlinearity: str = "tanh", mask: Any = None) -> Any:
    return _rnn_tangent(ans, h0, w, nonlinearity, mask, _prev_states(ans, h0) @ t.T, None)


rnn_scan = Primitive(
    "rnn_scan", _rnn_forward, flops=_scan_flops, reads_output=True,
    doc=r"""Elman recurrence over a whole sequence: xg (L, N, H) = x W_ih^T + b_ih + b_hh, h0 (N, H),
    w_hh (H, H) -> states (L, N, H), $h_t = f(xg_t + h_{t-1} W_{hh}^\top)$, f = tanh or relu (Elman 1990).""",
).defvjp(_rnn_vjp(0), _rnn_vjp(1), _rnn_vjp(2)).defjvp(_rnn_jvp_xg, _rnn_jvp_h0, _rnn_jvp_w)


# ================================================================================ LSTM
def _lstm_forward(xg: np.ndarray, h0: np.ndarray, c0: np.ndarray, w_hh: np.ndarray, mask: Any = None) -> np.ndarray:
    r"""The LSTM recurrence (gate order i, f, g, o) over L steps; returns (L, 2, N, H): [h_t, c_t] per step.

    $i,f,o = \sigma(\cdot)$, $g = \tanh(\cdot)$ of $xg_t + h_{t-1}W_{hh}^\top$; $c_t = f c_{t-1} + i g$;
    $h_t = o \tanh c_t$ (Hochreiter & Schmidhuber 1997; forget gate: Gers, Schmidhuber & Cummins 2000)."""
    L, N, G = xg.shape
    H = G // 4
    dtype = np.result_type(xg, h0, c0, w_hh)
    half = dtype.type(0.5)
    # h_t and c_t each contiguous, so that every write below and the next step's product read whole blocks
    S = np.empty((L, 2, N, H), dtype=dtype)
    # kept for the backward pass (see _save): every step's gates in the internal order i, f, o, g (the three
    # sigmoids one contiguous block, so that each step applies them with two scalar ufuncs) and, per step, the
    # factors the gate derivatives multiply, [g_t, c_{t-1}, tanh c_t], laid out beside the sigmoids they meet
    gates = np.empty((L, N, G), dtype=dtype)
    aux = np.empty((L, N, 3 * H), dtype=dtype)
    # sigma(x) = (1 + tanh(x/2)) / 2: one tanh pass over all four gates, several times faster than scipy's expit
    # on float32; the 1/2 is folded into the (reordered) W_hh and xg once
    perm = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]
    scale = np.full(G, 0.5, dtype=dtype)
    scale[3 * H:] = 1
    wT = np.ascontiguousarray((np.asarray(w_hh)[perm] * scale[:, None]).T, dtype=dtype)
    xs = np.empty((L, N, G), dtype=dtype)
    np.multiply(xg[..., :2 * H], half, out=xs[..., :2 * H])
    np.multiply(xg[..., 3 * H:], half, out=xs[..., 2 * H:3 * H])
    xs[..., 3 * H:] = xg[..., 2 * H:3 * H]
    pre = np.empty((N, G), dtype=dtype)
    ig = np.empty((N, H), dtype=dtype)
    h, c = h0, c0
    m = _mask_of(mask, dtype)
    for t in range(L):
        np.matmul(h, wT, out=pre)
        pre += xs[t]
        a = np.tanh(pre, out=gates[t])
        sig = a[:, :3 * H]
        sig *= half
        sig += half
        ax = aux[t]
        ax[:, :H] = a[:, 3 * H:]
        ax[:, H:2 * H] = c
        c_new = np.multiply(a[:, H:2 * H], c, out=S[t, 1])
        c_new += np.multiply(a[:, :H], a[:, 3 * H:], out=ig)
        h_new = np.multiply(np.tanh(c_new, out=ax[:, 2 * H:]), a[:, 2 * H:3 * H], out=S[t, 0])
        if m is not None:
            keep = m[t] > 0
            h_new[...] = np.where(keep, h_new, h)
            c_new[...] = np.where(keep, c_new, c)
        h, c = h_new, c_new
    _save(S, (gates, aux))
    return S


def _lstm_activations(S: Any, xg: Any, h0: Any, c0: Any, w: Any) -> dict[str, Any]:
    """Every step's gates: those the forward pass kept (plain arrays), else recomputed at once from the saved
    states (one GEMM over all steps; on Tensors, so that the rules can be differentiated again)."""
    H = unwrap(h0).shape[-1]
    hp = ad.concatenate([h0[None], S[:-1, 0]], axis=0)
    cp = ad.concatenate([c0[None], S[:-1, 1]], axis=0)
    saved = _saved_for(S)
    if saved is not None and not isinstance(xg, Tensor) and not isinstance(w, Tensor):
        gates, aux = saved  # internal gate order i, f, o, g; aux = [g, c_{t-1}, tanh c_t] (see _lstm_forward)
        return {"hp": hp, "cp": cp, "i": gates[..., :H], "f": gates[..., H:2 * H], "g": gates[..., 3 * H:],
                "o": gates[..., 2 * H:3 * H], "tc": aux[..., 2 * H:], "H": H}
    pre = xg + hp @ w.T
    i = ad.sigmoid(pre[..., :H])
    f = ad.sigmoid(pre[..., H:2 * H])
    g = ad.tanh(pre[..., 2 * H:3 * H])
    o = ad.sigmoid(pre[..., 3 * H:])
    tc = ad.tanh(S[:, 1])
    return {"hp": hp, "cp": cp, "i": i, "f": f, "g": g, "o": o, "tc": tc, "H": H}


def _lstm_bptt(gS: Any, S: Any, xg: Any, h0: Any, c0: Any, w: Any, mask: Any) -> tuple[Any, Any, Any, Any]:
    r"""BPTT for the LSTM. With $\bar c_t = \bar c^{in}_t + \bar h_t\,o_t(1-\tanh^2 c_t)$:
    $\bar a_i = \bar c_t g_t i_t(1-i_t)$, $\bar a_f = \bar c_t c_{t-1} f_t(1-f_t)$,
    $\bar a_g = \bar c_t i_t(1-g_t^2)$, $\bar a_o = \bar h_t \tanh(c_t) o_t(1-o_t)$;
    $\bar c_{t-1} \mathrel{+}= \bar c_t f_t$, $\bar h_{t-1} \mathrel{+}= \bar a W_{hh}$.
    Returns (d xg, d h0, d c0, d W_hh)."""
    A = _lstm_activations(S, xg, h0, c0, w)
    H, i, f, g, o, tc = A["H"], A["i"], A["f"], A["g"], A["o"], A["tc"]
    P = o * (1 - tc * tc)
    Q = _cat([g * i * (1 - i), A["cp"] * f * (1 - f), i * (1 - g * g), tc * o * (1 - o)])
    m = _mask_of(mask, unwrap(S).dtype)
    L = unwrap(S).shape[0]
    gh, gc = gS[:, 0], gS[:, 1]
    carry_h: Any = 0
    carry_c: Any = 0
    deltas: list[Any] = [None] * L
    for t in range(L - 1, -1, -1):
        dh = gh[t] + carry_h
        dc_in = gc[t] + carry_c
        if m is not None:
            keep, drop = m[t], 1 - m[t]
            pass_h, pass_c = dh * drop, dc_in * drop
            dh, dc_in = dh * keep, dc_in * keep
        dc = dc_in + dh * P[t]
        delta = _cat([dc, dc, dc, dh]) * Q[t]
        deltas[t] = delta
        carry_h = delta @ w
        carry_c = dc * f[t]
        if m is not None:
            carry_h = carry_h + pass_h
            carry_c = carry_c + pass_c
    dxg = ad.stack(deltas, axis=0)
    hp = A["hp"]
    n = dxg.shape[0] * dxg.shape[1]
    dw = dxg.reshape(n, dxg.shape[-1]).T @ hp.reshape(n, H)
    return dxg, carry_h, carry_c, dw


def _lstm_bptt_arrays(gS: np.ndarray, S: np.ndarray, h0: np.ndarray, c0: np.ndarray, w: np.ndarray,
                      saved: tuple[np.ndarray, np.ndarray], mask: Any) -> tuple[np.ndarray, ...]:
    """`_lstm_bptt` on plain arrays with the forward pass's saved activations: the same recurrence, written with
    preallocated buffers (the engine's ordinary backward pass; `test_recurrent_torch` checks that both agree).
    The gate-derivative factors are formed inside the loop on one step's cache-resident rows rather than over
    the whole sequence beforehand (strided whole-sequence passes cost more than the recurrence itself)."""
    L, _, N, H = S.shape
    dt = S.dtype
    one = dt.type(1)
    gates, aux = saved  # gates in the internal order i, f, o, g; aux = [g, c_{t-1}, tanh c_t]
    m = _mask_of(mask, dt)
    D = np.empty((L, N, 4, H), dtype=dt)  # the gate gradients in PyTorch's order i, f, g, o
    carry_h = np.zeros((N, H), dtype=dt)
    carry_c = np.zeros((N, H), dtype=dt)
    dh = np.empty((N, H), dtype=dt)
    dc = np.empty((N, H), dtype=dt)
    u = np.empty((N, H), dtype=dt)
    q = np.empty((N, 3 * H), dtype=dt)
    q3 = q.reshape(N, 3, H)
    for t in range(L - 1, -1, -1):
        a, ax, Dt = gates[t], aux[t], D[t]
        np.add(gS[t, 0], carry_h, out=dh)
        np.add(gS[t, 1], carry_c, out=dc)
        if m is not None:
            pass_h, pass_c = dh * (1 - m[t]), dc * (1 - m[t])
            dh *= m[t]
            dc *= m[t]
        # dc += dh o (1 - tanh^2 c_t)
        tc = ax[:, 2 * H:]
        np.multiply(tc, tc, out=u)
        np.subtract(one, u, out=u)
        u *= a[:, 2 * H:3 * H]
        u *= dh
        dc += u
        # [i(1-i) g, f(1-f) c_{t-1}, o(1-o) tanh c_t] in one pass over the sigmoid block
        sig = a[:, :3 * H]
        np.subtract(one, sig, out=q)
        q *= sig
        q *= ax
        np.multiply(q3[:, :2], dc[:, None, :], out=Dt[:, :2])
        np.multiply(q3[:, 2], dh, out=Dt[:, 3])
        g = a[:, 3 * H:]
        np.multiply(g, g, out=u)
        np.subtract(one, u, out=u)
        u *= a[:, :H]
        np.multiply(u, dc, out=Dt[:, 2])
        np.matmul(Dt.reshape(N, 4 * H), w, out=carry_h)
        np.multiply(dc, a[:, H:2 * H], out=carry_c)
        if m is not None:
            carry_h += pass_h
            carry_c += pass_c
    dxg = D.reshape(L, N, 4 * H)
    hp = np.empty((L, N, H), dtype=dt)
    hp[0] = h0
    hp[1:] = S[:-1, 0]
    dw = dxg.reshape(L * N, 4 * H).T @ hp.reshape(L * N, H)
    return dxg, carry_h, carry_c, dw


def _lstm_tangent(S: Any, xg: Any, h0: Any, c0: Any, w: Any, mask: Any, dpre: Any, dh: Any, dc: Any) -> Any:
    r"""The tangent recurrence: $\dot a_t = \dot a^{ext}_t + \dot h_{t-1}W_{hh}^\top$,
    $\dot c_t = \dot f c_{t-1} + f\dot c_{t-1} + \dot i g + i\dot g$,
    $\dot h_t = \dot o\tanh c_t + o(1-\tanh^2c_t)\dot c_t$
    with $\dot i = i(1-i)\dot a_i$ etc. Returns the tangent of the stacked [h_t, c_t]."""
    A = _lstm_activations(S, xg, h0, c0, w)
    H, i, f, g, o, tc, cp = A["H"], A["i"], A["f"], A["g"], A["o"], A["tc"], A["cp"]
    di, df, dg, do = i * (1 - i), f * (1 - f), 1 - g * g, o * (1 - o)
    m = _mask_of(mask, unwrap(S).dtype)
    L = unwrap(S).shape[0]
    out = []
    for t in range(L):
        a = 0 if dpre is None else dpre[t]
        if dh is not None:
            a = a + dh @ w.T
        if isinstance(a, int):  # no tangent reaches this step yet
            a = unwrap(xg[t]) * 0
        c_new = a[:, H:2 * H] * df[t] * cp[t] + a[:, :H] * di[t] * g[t] + a[:, 2 * H:3 * H] * dg[t] * i[t]
        if dc is not None:
            c_new = c_new + f[t] * dc
        h_new = a[:, 3 * H:] * do[t] * tc[t] + o[t] * (1 - tc[t] * tc[t]) * c_new
        if m is not None:
            h_new = m[t] * h_new + (1 - m[t]) * (0 if dh is None else dh)
            c_new = m[t] * c_new + (1 - m[t]) * (0 if dc is None else dc)
        dh, dc = h_new, c_new
        out.append(ad.stack([h_new, c_new], axis=0))
    return ad.stack(out, axis=0)


def _lstm_vjp(k: int) -> Any:
    def rule(g: Any, ans: Any, xg: Any, h0: Any, c0: Any, w: Any, mask: Any = None) -> Any:
        g, ans, xg, h0, c0, w = (_plain(a) for a in (g, ans, xg, h0, c0, w))
        saved = _saved_for(ans)
        if saved is not None and all(type(a) is np.ndarray for a in (g, h0, c0, w)):
            return _cached(g, ans, lambda: _lstm_bptt_arrays(g, ans, h0, c0, w, saved, mask))[k]
        return _cached(g, ans, lambda: _lstm_bptt(g, ans, xg, h0, c0, w, mask))[k]
    return rule


def _lstm_jvp_xg(t: Any, ans: Any, xg: Any, h0: Any, c0: Any, w: Any, mask: Any = None) -> Any:
    return _lstm_tangent(ans, xg, h0, c0, w, mask, t, None, None)


def _lstm_jvp_h0(t: Any, ans: Any, xg: Any, h0: Any, c0: Any, w: Any, mask: Any = None) -> Any:
    return _lstm_tangent(ans, xg, h0, c0, w, mask, None, t, None)


def _lstm_jvp_c0(t: Any, ans: Any, xg: Any, h0: Any, c0: Any, w: Any, mask: Any = None) -> Any:
    return _lstm_tangent(ans, xg, h0, c0, w, mask, None, None, t)


def _lstm_jvp_w(t: Any, ans: Any, xg: Any, h0: Any, c0: Any, w: Any, mask: Any = None) -> Any:
    hp = ad.concatenate([h0[None], ans[:-1, 0]], axis=0)
    return _lstm_tangent(ans, xg, h0, c0, w, mask, hp @ t.T, None, None)


lstm_scan = Primitive(
    "lstm_scan", _lstm_forward, flops=_scan_flops, reads_output=True,
    doc=r"""LSTM over a whole sequence: xg (L, N, 4H) = x W_ih^T + b_ih + b_hh (gates i, f, g, o), h0, c0
    (N, H), w_hh (4H, H) -> (L, 2, N, H), the states h_t (``[:, 0]``) and c_t (``[:, 1]``).""",
).defvjp(_lstm_vjp(0), _lstm_vjp(1), _lstm_vjp(2), _lstm_vjp(3)).defjvp(
    _lstm_jvp_xg, _lstm_jvp_h0, _lstm_jvp_c0, _lstm_jvp_w)


# ================================================================================ GRU
def _gru_forward(xg: np.ndarray, h0: np.ndarray, w_hh: np.ndarray, b_hh: np.ndarray, mask: Any = None) -> np.ndarray:
    r"""The GRU recurrence in PyTorch's form (gates r, z, n) over L steps; returns (L, N, H).

    $r,z = \sigma(xg_{r,z} + (h W_{hh}^\top + b_{hh})_{r,z})$, $n = \tanh(xg_n + r\odot(h W_{hn}^\top + b_{hn}))$,
    $h_t = (1-z)\odot n + z\odot h_{t-1}$ (Cho et al. 2014, with z and 1-z exchanged as in PyTorch)."""
    L, N, G = xg.shape
    H = G // 3
    dtype = np.result_type(xg, h0, w_hh, b_hh)
    S = np.empty((L, N, H), dtype=dtype)
    wT = np.ascontiguousarray(w_hh.T)
    gh = np.empty((N, G), dtype=dtype)
    h = h0
    m = _mask_of(mask, dtype)
    for t in range(L):
        np.matmul(h, wT, out=gh)
        gh += b_hh
        rz = expit(xg[t, :, :2 * H] + gh[:, :2 * H])
        n = np.tanh(xg[t, :, 2 * H:] + rz[:, :H] * gh[:, 2 * H:])
        z = rz[:, H:]
        new = n + z * (h - n)
        h = new if m is None else np.where(m[t] > 0, new, h)
        S[t] = h
    return S


def _gru_activations(S: Any, xg: Any, h0: Any, w: Any, b: Any) -> dict[str, Any]:
    H = unwrap(h0).shape[-1]
    hp = _prev_states(S, h0)
    gh = hp @ w.T + b
    r = ad.sigmoid(xg[..., :H] + gh[..., :H])
    z = ad.sigmoid(xg[..., H:2 * H] + gh[..., H:2 * H])
    n = ad.tanh(xg[..., 2 * H:] + r * gh[..., 2 * H:])
    return {"H": H, "hp": hp, "ghn": gh[..., 2 * H:], "r": r, "z": z, "n": n}


def _gru_bptt(gS: Any, S: Any, xg: Any, h0: Any, w: Any, b: Any, mask: Any) -> tuple[Any, Any, Any, Any]:
    r"""BPTT for PyTorch's GRU. With $\bar n = \bar h (1-z)(1-n^2)$: $\bar a_r = \bar n\,(W_{hn}h+b_{hn})\,r(1-r)$,
    $\bar a_z = \bar h (h_{t-1}-n) z(1-z)$, $\bar{xg}_n = \bar n$, $\overline{gh}_n = \bar n r$;
    $\bar h_{t-1} = \bar h z + \overline{gh}\,W_{hh}$. Returns (d xg, d h0, d W_hh, d b_hh)."""
    A = _gru_activations(S, xg, h0, w, b)
    r, z, n, hp = A["r"], A["z"], A["n"], A["hp"]
    An = (1 - z) * (1 - n * n)
    ar = An * A["ghn"] * r * (1 - r)
    az = (hp - n) * z * (1 - z)
    Qx = _cat([ar, az, An])
    Qh = _cat([ar, az, An * r])
    m = _mask_of(mask, unwrap(S).dtype)
    L = unwrap(S).shape[0]
    carry: Any = 0
    dxs: list[Any] = [None] * L
    dhs: list[Any] = [None] * L
    for t in range(L - 1, -1, -1):
        dh = gS[t] + carry
        if m is not None:
            pass_h = dh * (1 - m[t])
            dh = dh * m[t]
        d3 = _cat([dh, dh, dh])
        dgh = d3 * Qh[t]
        dxs[t] = d3 * Qx[t]
        dhs[t] = dgh
        carry = dh * z[t] + dgh @ w
        if m is not None:
            carry = carry + pass_h
    dxg = ad.stack(dxs, axis=0)
    dgh_all = ad.stack(dhs, axis=0)
    nrows = dxg.shape[0] * dxg.shape[1]
    dgh2 = dgh_all.reshape(nrows, dgh_all.shape[-1])
    dw = dgh2.T @ hp.reshape(nrows, hp.shape[-1])
    db = dgh2.sum(axis=0)
    return dxg, carry, dw, db


def _gru_tangent(S: Any, xg: Any, h0: Any, w: Any, b: Any, mask: Any, dx: Any, dgh_ext: Any, dh: Any) -> Any:
    r"""Tangent recurrence: $\dot{gh} = \dot{gh}^{ext} + \dot h_{t-1}W_{hh}^\top$,
    $\dot r = r(1-r)(\dot x_r+\dot{gh}_r)$,
    $\dot z = z(1-z)(\dot x_z+\dot{gh}_z)$, $\dot n = (1-n^2)(\dot x_n + \dot r\,gh_n + r\,\dot{gh}_n)$,
    $\dot h_t = (1-z)\dot n + z\dot h_{t-1} + \dot z(h_{t-1}-n)$."""
    A = _gru_activations(S, xg, h0, w, b)
    H, r, z, n, hp, ghn = A["H"], A["r"], A["z"], A["n"], A["hp"], A["ghn"]
    dr_, dz_, dn_ = r * (1 - r), z * (1 - z), 1 - n * n
    m = _mask_of(mask, unwrap(S).dtype)
    L = unwrap(S).shape[0]
    out = []
    for t in range(L):
        gx = 0 if dx is None else dx[t]
        gh = 0 if dgh_ext is None else dgh_ext[t]
        if dh is not None:
            gh = gh + dh @ w.T
        a = gx + gh
        if isinstance(a, int):
            a = unwrap(xg[t]) * 0
            gx = gh = a
        rr = dr_[t] * a[:, :H]
        zz = dz_[t] * a[:, H:2 * H]
        ghn_dot = gh[:, 2 * H:] if not isinstance(gh, int) else 0
        gxn = gx[:, 2 * H:] if not isinstance(gx, int) else 0
        nn_ = dn_[t] * (gxn + rr * ghn[t] + r[t] * ghn_dot)
        new = (1 - z[t]) * nn_ + zz * (hp[t] - n[t])
        if dh is not None:
            new = new + z[t] * dh
        if m is not None:
            new = m[t] * new + (1 - m[t]) * (0 if dh is None else dh)
        dh = new
        out.append(new)
    return ad.stack(out, axis=0)


def _gru_vjp(k: int) -> Any:
    def rule(g: Any, ans: Any, xg: Any, h0: Any, w: Any, b: Any, mask: Any = None) -> Any:
        g, ans, xg, h0, w, b = (_plain(a) for a in (g, ans, xg, h0, w, b))
        return _cached(g, ans, lambda: _gru_bptt(g, ans, xg, h0, w, b, mask))[k]
    return rule


def _gru_jvp_xg(t: Any, ans: Any, xg: Any, h0: Any, w: Any, b: Any, mask: Any = None) -> Any:
    return _gru_tangent(ans, xg, h0, w, b, mask, t, None, None)


def _gru_jvp_h0(t: Any, ans: Any, xg: Any, h0: Any, w: Any, b: Any, mask: Any = None) -> Any:
    return _gru_tangent(ans, xg, h0, w, b, mask, None, None, t)


def _gru_jvp_w(t: Any, ans: Any, xg: Any, h0: Any, w: Any, b: Any, mask: Any = None) -> Any:
    return _gru_tangent(ans, xg, h0, w, b, mask, None, _prev_states(ans, h0) @ t.T, None)


def _gru_jvp_b(t: Any, ans: Any, xg: Any, h0: Any, w: Any, b: Any, mask: Any = None) -> Any:
    L, N = unwrap(xg).shape[:2]
    return _gru_tangent(ans, xg, h0, w, b, mask, None, ad.broadcast_to(t, (L, N, t.shape[-1])), None)


gru_scan = Primitive(
    "gru_scan", _gru_forward, flops=_scan_flops, reads_output=True,
    doc=r"""GRU over a whole sequence: xg (L, N, 3H) = x W_ih^T + b_ih (gates r, z, n), h0 (N, H), w_hh (3H, H),
    b_hh (3H,) -> states (L, N, H). The reset gate multiplies $W_{hn}h + b_{hn}$, as in PyTorch.""",
).defvjp(_gru_vjp(0), _gru_vjp(1), _gru_vjp(2), _gru_vjp(3)).defjvp(_gru_jvp_xg, _gru_jvp_h0, _gru_jvp_w, _gru_jvp_b)


# ================================================================================ single steps
def _lstm_cell_forward(gates: np.ndarray, c: np.ndarray) -> np.ndarray:
    r"""One LSTM step from the gate pre-activations (N, 4H) and c_{t-1}: returns [h_t, c_t] (N, 2H)."""
    H = c.shape[-1]
    i, f, o = expit(gates[..., :H]), expit(gates[..., H:2 * H]), expit(gates[..., 3 * H:])
    g = np.tanh(gates[..., 2 * H:3 * H])
    c_new = f * c + i * g
    return np.concatenate([o * np.tanh(c_new), c_new], axis=-1)


def _lstm_cell_parts(ans: Any, gates: Any, c: Any) -> tuple[Any, ...]:
    H = unwrap(c).shape[-1]
    i, f = ad.sigmoid(gates[..., :H]), ad.sigmoid(gates[..., H:2 * H])
    g, o = ad.tanh(gates[..., 2 * H:3 * H]), ad.sigmoid(gates[..., 3 * H:])
    return H, i, f, g, o, ad.tanh(ans[..., H:])


def _lstm_cell_vjp_gates(gr: Any, ans: Any, gates: Any, c: Any) -> Any:
    H, i, f, g, o, tc = _lstm_cell_parts(ans, gates, c)
    gh, gc = gr[..., :H], gr[..., H:]
    dc = gc + gh * o * (1 - tc * tc)
    return _cat([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g * g), gh * tc * o * (1 - o)])


def _lstm_cell_vjp_c(gr: Any, ans: Any, gates: Any, c: Any) -> Any:
    H, _i, f, _g, o, tc = _lstm_cell_parts(ans, gates, c)
    return (gr[..., H:] + gr[..., :H] * o * (1 - tc * tc)) * f


def _lstm_cell_jvp_gates(t: Any, ans: Any, gates: Any, c: Any) -> Any:
    H, i, f, g, o, tc = _lstm_cell_parts(ans, gates, c)
    dc = (t[..., :H] * i * (1 - i) * g + t[..., H:2 * H] * f * (1 - f) * c
          + t[..., 2 * H:3 * H] * (1 - g * g) * i)
    dh = t[..., 3 * H:] * o * (1 - o) * tc + o * (1 - tc * tc) * dc
    return _cat([dh, dc])


def _lstm_cell_jvp_c(t: Any, ans: Any, gates: Any, c: Any) -> Any:
    _H, _i, f, _g, o, tc = _lstm_cell_parts(ans, gates, c)
    dc = f * t
    return _cat([o * (1 - tc * tc) * dc, dc])


def _cell_flops(out: Any, *args: Any, **kw: Any) -> int:
    return int(12 * np.size(out))


lstm_cell = Primitive(
    "lstm_cell", _lstm_cell_forward, flops=_cell_flops, reads_output=True,
    doc=r"""One LSTM step: gates (N, 4H) = x W_ih^T + b_ih + h W_hh^T + b_hh (order i, f, g, o), c (N, H)
    -> [h', c'] (N, 2H); $c' = \sigma(a_f) c + \sigma(a_i)\tanh(a_g)$, $h' = \sigma(a_o)\tanh c'$.""",
).defvjp(_lstm_cell_vjp_gates, _lstm_cell_vjp_c).defjvp(_lstm_cell_jvp_gates, _lstm_cell_jvp_c)


def _gru_cell_forward(gi: np.ndarray, gh: np.ndarray, h: np.ndarray) -> np.ndarray:
    r"""One GRU step (PyTorch's form) from gi = x W_ih^T + b_ih and gh = h W_hh^T + b_hh (N, 3H) and h (N, H)."""
    H = h.shape[-1]
    r = expit(gi[..., :H] + gh[..., :H])
    z = expit(gi[..., H:2 * H] + gh[..., H:2 * H])
    n = np.tanh(gi[..., 2 * H:] + r * gh[..., 2 * H:])
    return (1 - z) * n + z * h


def _gru_cell_parts(gi: Any, gh: Any, h: Any) -> tuple[Any, ...]:
    H = unwrap(h).shape[-1]
    r = ad.sigmoid(gi[..., :H] + gh[..., :H])
    z = ad.sigmoid(gi[..., H:2 * H] + gh[..., H:2 * H])
    n = ad.tanh(gi[..., 2 * H:] + r * gh[..., 2 * H:])
    return H, r, z, n


def _gru_cell_bars(g: Any, gi: Any, gh: Any, h: Any) -> tuple[Any, Any, Any]:
    H, r, z, n = _gru_cell_parts(gi, gh, h)
    an = g * (1 - z) * (1 - n * n)
    ar = an * gh[..., 2 * H:] * r * (1 - r)
    az = g * (h - n) * z * (1 - z)
    return _cat([ar, az, an]), _cat([ar, az, an * r]), g * z


gru_cell = Primitive(
    "gru_cell", _gru_cell_forward, flops=_cell_flops,
    doc=r"""One GRU step: gi, gh (N, 3H), h (N, H) -> $h' = (1-z) n + z h$ with
    $n = \tanh(gi_n + r\,gh_n)$ (PyTorch's placement of the reset gate).""",
).defvjp(
    lambda g, ans, gi, gh, h: _gru_cell_bars(g, gi, gh, h)[0],
    lambda g, ans, gi, gh, h: _gru_cell_bars(g, gi, gh, h)[1],
    lambda g, ans, gi, gh, h: _gru_cell_bars(g, gi, gh, h)[2],
)


def _gru_cell_tangent(dgi: Any, dgh: Any, dh: Any, gi: Any, gh: Any, h: Any) -> Any:
    r"""$\dot h' = (1-z)\dot n + (h-n)\dot z + z\dot h$,
    $\dot n = (1-n^2)(\dot{gi}_n + \dot r\,gh_n + r\,\dot{gh}_n)$."""
    H, r, z, n = _gru_cell_parts(gi, gh, h)
    out: Any = 0
    if dgi is not None or dgh is not None:
        d = dgi if dgh is None else (dgh if dgi is None else dgi + dgh)
        rr = r * (1 - r) * d[..., :H]
        zz = z * (1 - z) * d[..., H:2 * H]
        dn = rr * gh[..., 2 * H:]
        if dgi is not None:
            dn = dn + dgi[..., 2 * H:]
        if dgh is not None:
            dn = dn + r * dgh[..., 2 * H:]
        out = (1 - z) * (1 - n * n) * dn + (h - n) * zz
    if dh is not None:
        out = out + z * dh
    return out


gru_cell.defjvp(
    lambda t, ans, gi, gh, h: _gru_cell_tangent(t, None, None, gi, gh, h),
    lambda t, ans, gi, gh, h: _gru_cell_tangent(None, t, None, gi, gh, h),
    lambda t, ans, gi, gh, h: _gru_cell_tangent(None, None, t, gi, gh, h),
)
