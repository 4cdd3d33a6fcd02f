r"""Recurrent layers with PyTorch's names, parameters, shapes and return values: `RNN`, `LSTM`, `GRU` and the
single-step cells `RNNCell`, `LSTMCell`, `GRUCell`.

Each layer direction computes the input projections of all steps in one GEMM,
$xg = x W_{ih}^\top + b$, and hands them to a fused scan primitive (``recurrent_ops``) that runs the
recurrence with one matrix product per step for all gates and backpropagates through time in one
hand-derived rule. Parameters are ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``
(``_reverse`` for the backward direction), initialised $U(-1/\sqrt{H}, 1/\sqrt{H})$ as PyTorch does, so
``load_state_dict(torch_module.state_dict())`` works key for key.

Beyond PyTorch's signature, ``forward`` takes ``lengths`` (one per batch element, each in 1..L): steps past a
sequence's length give zero outputs and leave the state unchanged, so ``h_n`` is each sequence's state at its
own last step and the reverse direction starts at that step: what ``pack_padded_sequence`` /
``pad_packed_sequence`` give in PyTorch.

Truncated BPTT: carry the state between chunks with ``.detach()`` (``h = h.detach()``); the gradient then
stops at the chunk boundary (see docs/recurrent.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import autodiff as ad
from ..autodiff import DtypeError, ShapeError
from ..autodiff.core import Tensor, unwrap
from . import functional as F
from . import init
from .linear import default_dtype
from .module import Module, Parameter
from .recurrent_ops import gru_cell, gru_scan, lstm_cell, lstm_scan, rnn_scan

__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNBase", "RNNCell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(np.shape(unwrap(x)))


def _check_positive(layer: str, name: str, v: Any) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
        raise ValueError(f"{layer}: {name} must be a positive integer, got {v!r}")
    return int(v)


class RNNBase(Module):
    """Shared machinery of RNN, LSTM and GRU: parameters, input checks, layers and directions."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, dtype: Any = None, generator: np.random.Generator | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.mode = mode
        self.input_size = _check_positive(name, "input_size", input_size)
        self.hidden_size = _check_positive(name, "hidden_size", hidden_size)
        self.num_layers = _check_positive(name, "num_layers", num_layers)
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout must be a number in [0, 1], got {dropout!r}")
        if proj_size:
            raise ValueError(f"{name}: proj_size={proj_size!r} (LSTM with projections) is not supported; "
                             f"use proj_size=0, or a Linear layer on the outputs")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.proj_size = 0
        dt = default_dtype(dtype)
        gate = _GATES[mode] * self.hidden_size
        dirs = 2 if self.bidirectional else 1
        for layer in range(self.num_layers):
            layer_in = self.input_size if layer == 0 else self.hidden_size * dirs
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                setattr(self, "weight_ih" + sfx, Parameter(np.empty((gate, layer_in), dtype=dt)))
                setattr(self, "weight_hh" + sfx, Parameter(np.empty((gate, self.hidden_size), dtype=dt)))
                if self.bias:
                    setattr(self, "bias_ih" + sfx, Parameter(np.empty(gate, dtype=dt)))
                    setattr(self, "bias_hh" + sfx, Parameter(np.empty(gate, dtype=dt)))
        self.reset_parameters(generator)

    def reset_parameters(self, generator: np.random.Generator | None = None) -> None:
        r"""Every parameter $\sim U(-1/\sqrt{H}, 1/\sqrt{H})$ (PyTorch's RNNBase.reset_parameters)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound, generator)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _param(self, kind: str, layer: int, d: int) -> Any:
        return getattr(self, f"{kind}_l{layer}" + ("_reverse" if d else ""), None)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    # ----- input handling -------------------------------------------------------------------------------------
    def _check_input(self, x: Any) -> tuple[Any, bool]:
        name = type(self).__name__
        if not isinstance(x, (Tensor, np.ndarray)):
            x = np.asarray(x, dtype=self.weight_ih_l0.dtype)
        shape = _shape(x)
        if len(shape) not in (2, 3):
            raise ShapeError(f"{name}: expected input of shape (L, N, {self.input_size}), "
                             f"{'(N, L, ' if self.batch_first else '(L, N, '}{self.input_size}) or unbatched "
                             f"(L, {self.input_size}), got shape {shape}")
        if shape[-1] != self.input_size:
            raise ShapeError(f"{name}: input has {shape[-1]} features (shape {shape}), expected input_size="
                             f"{self.input_size}")
        dt = self.weight_ih_l0.dtype
        if unwrap(x).dtype != dt:
            raise DtypeError(f"{name}: input dtype {unwrap(x).dtype} differs from the parameters' dtype {dt}; "
                             f"convert the input or the module (.double(), .float())")
        if isinstance(x, np.ndarray):
            x = ad.as_tensor(x)
        unbatched = len(shape) == 2
        if unbatched:
            x = x[:, None, :]
        elif self.batch_first:
            x = ad.swapaxes(x, 0, 1)
        return x, unbatched

    def _check_state(self, h: Any, what: str, batch: int, unbatched: bool) -> Any:
        name = type(self).__name__
        want = (self.num_layers * self.num_directions, self.hidden_size)
        if not unbatched:
            want = (want[0], batch, want[1])
        if _shape(h) != want:
            raise ShapeError(f"{name}: {what} has shape {_shape(h)}, expected {want} "
                             f"(num_layers * num_directions{', batch' if not unbatched else ''}, hidden_size)")
        if isinstance(h, np.ndarray):
            h = ad.as_tensor(h)
        return h[:, None, :] if unbatched else h

    def _check_lengths(self, lengths: Any, L: int, N: int) -> np.ndarray | None:
        if lengths is None:
            return None
        name = type(self).__name__
        lens = np.asarray(unwrap(lengths))
        if lens.shape != (N,) or lens.dtype.kind not in "iuf" or np.any(lens != np.round(lens)):
            raise ShapeError(f"{name}: lengths must hold one integer per batch element ({N}), got "
                             f"{lens.dtype} of shape {lens.shape}")
        lens = lens.astype(np.int64)
        if np.any(lens < 1) or np.any(lens > L):
            raise ValueError(f"{name}: every length must be in 1..{L} (the padded sequence length), got "
                             f"{lens.tolist()}")
        return lens

    # ----- the recurrence -------------------------------------------------------------------------------------
    def _scan(self, xg: Any, h0: Any, c0: Any, layer: int, d: int, mask: Any) -> tuple[Any, Any, Any]:
        """One direction of one layer: (outputs (L, N, H), h_n, c_n or None)."""
        H = self.hidden_size
        w_hh = self._param("weight_hh", layer, d)
        if self.mode == "LSTM":
            S = lstm_scan(xg, h0, c0, w_hh, mask=mask)
            out = S[:, 0]
            # h_n read from out, not S: its gradient then joins out's, one (L, 2, N, H) scatter fewer backward
            return out, out[-1], S[-1, 1]
        if self.mode == "GRU":
            b_hh = self._param("bias_hh", layer, d)
            if b_hh is None:
                b_hh = np.zeros(3 * H, dtype=unwrap(w_hh).dtype)
            S = gru_scan(xg, h0, w_hh, b_hh, mask=mask)
        else:
            S = rnn_scan(xg, h0, w_hh, nonlinearity="tanh" if self.mode == "RNN_TANH" else "relu", mask=mask)
        return S, S[-1], None

    def _input_projection(self, x: Any, layer: int, d: int) -> Any:
        w_ih = self._param("weight_ih", layer, d)
        L, N, F_in = _shape(x)
        # one 2-D GEMM over all steps and the batch: a 3-D @ 2-D product would run L small ones, and its weight
        # gradient L more plus a reduction
        xg = (x.reshape(L * N, F_in) @ w_ih.T).reshape(L, N, w_ih.shape[0])
        b_ih, b_hh = self._param("bias_ih", layer, d), self._param("bias_hh", layer, d)
        if b_ih is not None:
            # the GRU's b_hh sits inside the reset gate's product, so it stays with the recurrence
            xg = xg + (b_ih if self.mode == "GRU" else b_ih + b_hh)
        return xg

    def _run(self, x: Any, hx: Any, cx: Any, lengths: Any) -> tuple[Any, Any, Any]:
        L, N = _shape(x)[:2]
        lens = self._check_lengths(lengths, L, N)
        dt = unwrap(x).dtype
        mask = rev = None
        if lens is not None:
            steps = np.arange(L)[:, None]
            mask = (steps < lens[None, :]).astype(dt)[..., None]
            # the reverse direction reads each sequence backwards from its own last step; steps past the end stay
            # in place (they are masked), so the permutation is its own inverse
            rev = (np.where(steps < lens[None, :], lens[None, :] - 1 - steps, steps), np.arange(N)[None, :])
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                h0 = hx[k] if hx is not None else np.zeros((N, self.hidden_size), dtype=dt)
                c0 = None
                if self.mode == "LSTM":
                    c0 = cx[k] if cx is not None else np.zeros((N, self.hidden_size), dtype=dt)
                xg = self._input_projection(x, layer, d)
                if d:
                    xg = xg[::-1] if rev is None else xg[rev]
                out, h, c = self._scan(xg, h0, c0, layer, d, mask)
                if d:
                    out = out[::-1] if rev is None else out[rev]
                if mask is not None:
                    out = out * mask
                outs.append(out)
                h_n.append(h)
                c_n.append(c)
            x = outs[0] if len(outs) == 1 else ad.concatenate(outs, axis=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        hn = ad.stack(h_n, axis=0)
        cn = ad.stack(c_n, axis=0) if self.mode == "LSTM" else None
        return x, hn, cn

    def _finish(self, out: Any, unbatched: bool) -> Any:
        if unbatched:
            return out[:, 0, :]
        return ad.swapaxes(out, 0, 1) if self.batch_first else out


class RNN(RNNBase):
    r"""Elman RNN: $h_t = f(x_t W_{ih}^\top + b_{ih} + h_{t-1} W_{hh}^\top + b_{hh})$, f = tanh or relu
    (Elman 1990). forward(input, hx=None, lengths=None) -> (output, h_n)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype: Any = None, generator: np.random.Generator | None = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, 0, dtype, generator)
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None, lengths: Sequence[int] | np.ndarray | None = None
                ) -> tuple[Any, Any]:
        x, unbatched = self._check_input(input)
        N = _shape(x)[1]
        h = None if hx is None else self._check_state(hx, "hx", N, unbatched)
        out, hn, _ = self._run(x, h, None, lengths)
        return self._finish(out, unbatched), (hn[:, 0, :] if unbatched else hn)


class GRU(RNNBase):
    r"""Gated recurrent unit in PyTorch's form: $r = \sigma(W_{ir}x + b_{ir} + W_{hr}h + b_{hr})$,
    $z = \sigma(W_{iz}x + b_{iz} + W_{hz}h + b_{hz})$, $n = \tanh(W_{in}x + b_{in} + r\odot(W_{hn}h + b_{hn}))$,
    $h' = (1-z)\odot n + z\odot h$ (Cho et al. 2014). forward(input, hx=None, lengths=None) -> (output, h_n)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, dtype: Any = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         dtype, generator)

    forward = RNN.forward


class LSTM(RNNBase):
    r"""Long short-term memory (gate order i, f, g, o): $c_t = f\odot c_{t-1} + i\odot g$, $h_t = o\odot\tanh c_t$
    (Hochreiter & Schmidhuber 1997; Gers et al. 2000). forward(input, hx=None, lengths=None)
    -> (output, (h_n, c_n)); hx = (h_0, c_0)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 dtype: Any = None, generator: np.random.Generator | None = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, dtype, generator)

    def forward(self, input: Any, hx: Any = None, lengths: Sequence[int] | np.ndarray | None = None
                ) -> tuple[Any, tuple[Any, Any]]:
        x, unbatched = self._check_input(input)
        N = _shape(x)[1]
        h = c = None
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"LSTM: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
            h = self._check_state(hx[0], "h_0", N, unbatched)
            c = self._check_state(hx[1], "c_0", N, unbatched)
        out, hn, cn = self._run(x, h, c, lengths)
        if unbatched:
            hn, cn = hn[:, 0, :], cn[:, 0, :]
        return self._finish(out, unbatched), (hn, cn)


# ================================================================================ cells
class _CellBase(Module):
    def __init__(self, input_size: int, hidden_size: int, bias: bool, gates: int, dtype: Any,
                 generator: np.random.Generator | None) -> None:
        super().__init__()
        name = type(self).__name__
        self.input_size = _check_positive(name, "input_size", input_size)
        self.hidden_size = _check_positive(name, "hidden_size", hidden_size)
        self.bias = bool(bias)
        dt = default_dtype(dtype)
        self.weight_ih = Parameter(np.empty((gates * hidden_size, input_size), dtype=dt))
        self.weight_hh = Parameter(np.empty((gates * hidden_size, hidden_size), dtype=dt))
        if bias:
            self.bias_ih = Parameter(np.empty(gates * hidden_size, dtype=dt))
            self.bias_hh = Parameter(np.empty(gates * hidden_size, dtype=dt))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: np.random.Generator | None = None) -> None:
        r"""Every parameter $\sim U(-1/\sqrt{H}, 1/\sqrt{H})$, as PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound, generator)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")

    def _input(self, x: Any) -> tuple[Any, bool]:
        name = type(self).__name__
        if not isinstance(x, (Tensor, np.ndarray)):
            x = np.asarray(x, dtype=self.weight_ih.dtype)
        shape = _shape(x)
        if len(shape) not in (1, 2) or shape[-1] != self.input_size:
            raise ShapeError(f"{name}: expected input of shape (N, {self.input_size}) or ({self.input_size},), "
                             f"got shape {shape}")
        if unwrap(x).dtype != self.weight_ih.dtype:
            raise DtypeError(f"{name}: input dtype {unwrap(x).dtype} differs from the parameters' dtype "
                             f"{self.weight_ih.dtype}")
        if isinstance(x, np.ndarray):
            x = ad.as_tensor(x)
        return (x[None], True) if len(shape) == 1 else (x, False)

    def _state(self, h: Any, N: int, unbatched: bool, what: str) -> Any:
        if h is None:
            return np.zeros((N, self.hidden_size), dtype=self.weight_ih.dtype)
        want = (self.hidden_size,) if unbatched else (N, self.hidden_size)
        if _shape(h) != want:
            raise ShapeError(f"{type(self).__name__}: {what} has shape {_shape(h)}, expected {want}")
        if isinstance(h, np.ndarray):
            h = ad.as_tensor(h)
        return h[None] if unbatched else h

    def _proj(self, x: Any, w: Any, b: Any) -> Any:
        y = x @ w.T
        return y if b is None else y + b


class RNNCell(_CellBase):
    r"""One Elman step: $h' = f(x W_{ih}^\top + b_{ih} + h W_{hh}^\top + b_{hh})$, f = tanh or relu."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 dtype: Any = None, generator: np.random.Generator | None = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, 1, dtype, generator)
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None) -> Any:
        x, unbatched = self._input(input)
        h = self._state(hx, _shape(x)[0], unbatched, "hx")
        a = self._proj(x, self.weight_ih, self.bias_ih) + self._proj(h, self.weight_hh, self.bias_hh)
        out = ad.tanh(a) if self.nonlinearity == "tanh" else ad.relu(a)
        return out[0] if unbatched else out


class LSTMCell(_CellBase):
    r"""One LSTM step (gates i, f, g, o) on the fused ``lstm_cell`` primitive: forward(input, hx=(h, c)) -> (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype: Any = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__(input_size, hidden_size, bias, 4, dtype, generator)

    def forward(self, input: Any, hx: Any = None) -> tuple[Any, Any]:
        x, unbatched = self._input(input)
        N = _shape(x)[0]
        if hx is None:
            h = c = self._state(None, N, unbatched, "h")
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"LSTMCell: hx must be a tuple (h, c), got {type(hx).__name__}")
            h, c = self._state(hx[0], N, unbatched, "h"), self._state(hx[1], N, unbatched, "c")
        gates = self._proj(x, self.weight_ih, self.bias_ih) + self._proj(h, self.weight_hh, self.bias_hh)
        hc = lstm_cell(gates, c)
        H = self.hidden_size
        h_new, c_new = hc[:, :H], hc[:, H:]
        return (h_new[0], c_new[0]) if unbatched else (h_new, c_new)


class GRUCell(_CellBase):
    r"""One GRU step on the fused ``gru_cell`` primitive (PyTorch's reset-gate placement): forward(input, hx) -> h'."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype: Any = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__(input_size, hidden_size, bias, 3, dtype, generator)

    def forward(self, input: Any, hx: Any = None) -> Any:
        x, unbatched = self._input(input)
        h = self._state(hx, _shape(x)[0], unbatched, "hx")
        out = gru_cell(self._proj(x, self.weight_ih, self.bias_ih), self._proj(h, self.weight_hh, self.bias_hh), h)
        return out[0] if unbatched else out
