r"""`MultiheadAttention` with PyTorch's parameter names, layout, initialisation and forward semantics.

$\mathrm{MultiHead}(Q, K, V) = \mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h)\,W^O$ with
$\mathrm{head}_i = \mathrm{Attention}(Q W_i^Q, K W_i^K, V W_i^V)$ (Vaswani et al. 2017, section 3.2.2).
The $h$ projections are stored stacked as in ``torch.nn.MultiheadAttention``: ``in_proj_weight``
(3E, E) = $[W^Q; W^K; W^V]^\top$ with head $i$ owning rows $i d_h \dots (i+1) d_h - 1$ of each block,
or ``q_proj_weight`` (E, E), ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim) when the key or
value width differs; ``in_proj_bias`` (3E,); ``out_proj`` a Linear(E, E) holding $W^O$.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import autodiff as ad
from ..autodiff import DtypeError, ShapeError, Tensor
from ..autodiff.core import unwrap
from . import functional as F
from . import init
from .linear import Linear, default_dtype
from .module import Module, Parameter

__all__ = ["MultiheadAttention"]


def _float_mask(mask: Any, dtype: np.dtype, what: str) -> Any:
    """torch's ``_canonical_mask``: a boolean mask whose True entries are *not allowed* becomes 0 / -inf;
    a float mask is added as it is."""
    arr = np.asarray(unwrap(mask))
    if arr.dtype == bool:
        return np.where(arr, np.array(-np.inf, dtype), np.zeros((), dtype))
    if arr.dtype.kind != "f":
        raise DtypeError(f"MultiheadAttention: {what} must be boolean (True = not allowed) or floating, "
                         f"got dtype {arr.dtype}")
    if arr.dtype != dtype:  # a float64 mask must not promote a float32 layer's output to float64
        return ad.astype(mask, dtype) if isinstance(mask, Tensor) else arr.astype(dtype)
    return mask


class MultiheadAttention(Module):
    r"""Multi-head attention as ``torch.nn.MultiheadAttention``.

    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False) -> (output, weights). Inputs (L, N, E) (or (N, L, E) with
    ``batch_first``, or unbatched (L, E)); key (S, N, kdim), value (S, N, vdim). ``key_padding_mask``
    (N, S) and ``attn_mask`` (L, S) or (N*num_heads, L, S): boolean masks mark positions that may NOT be
    attended (torch's convention for this layer, the opposite of ``scaled_dot_product_attention``'s);
    float masks are added to the scores. Weights (N, L, S), averaged over heads, or (N, num_heads, L, S);
    None when ``need_weights=False`` (then the fused attention path runs). ``is_causal`` is a hint that
    ``attn_mask`` is the causal mask (required with it, as torch). A query whose keys are all masked
    gets zero weights and a zero attention output (torch's explicit-weights path gives NaN there).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, dtype: Any = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(embed_dim, (int, np.integer)) or embed_dim <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim must be a positive integer, got {embed_dim!r}")
        if not isinstance(num_heads, (int, np.integer)) or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads!r})")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1], got {dropout}")
        dt = default_dtype(dtype)
        self.embed_dim, self.num_heads = int(embed_dim), int(num_heads)
        self.kdim = embed_dim if kdim is None else int(kdim)
        self.vdim = embed_dim if vdim is None else int(vdim)
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first = float(dropout), bool(batch_first)
        self.head_dim = embed_dim // num_heads
        self.add_zero_attn = bool(add_zero_attn)
        E = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * E, E), dt))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(np.empty((E, E), dt))
            self.k_proj_weight = Parameter(np.empty((E, self.kdim), dt))
            self.v_proj_weight = Parameter(np.empty((E, self.vdim), dt))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(np.empty(3 * E, dt))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, dtype=dt, generator=generator)
        if add_bias_kv:
            self.bias_k = Parameter(np.empty((1, 1, E), dt))
            self.bias_v = Parameter(np.empty((1, 1, E), dt))
        else:
            self.bias_k = self.bias_v = None
            self.register_parameter("bias_k", None)
            self.register_parameter("bias_v", None)
        self._reset_parameters(generator)

    def _reset_parameters(self, generator: np.random.Generator | None = None) -> None:
        """torch's init: xavier_uniform_ on the input projections, zero biases, xavier_normal_ on bias_k/v;
        out_proj.weight keeps Linear's init (its bias is zeroed)."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight, generator=generator)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w, generator=generator)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k, generator=generator)
            init.xavier_normal_(self.bias_v, generator=generator)

    def _projections(self) -> tuple[Any, Any, Any]:
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            return w[:E], w[E:2 * E], w[2 * E:]
        return self.q_proj_weight, self.k_proj_weight, self.v_proj_weight

    def forward(self, query: Any, key: Any, value: Any, key_padding_mask: Any = None, need_weights: bool = True,
                attn_mask: Any = None, average_attn_weights: bool = True, is_causal: bool = False) -> tuple[Any, Any]:
        name = "MultiheadAttention"
        qs, ks, vs = (np.shape(unwrap(x)) for x in (query, key, value))
        batched = len(qs) == 3
        if len(qs) not in (2, 3) or len(ks) != len(qs) or len(vs) != len(qs):
            raise ShapeError(f"{name}: query, key, value must all be 3-d (batched) or 2-d (unbatched), got "
                             f"{qs}, {ks}, {vs}")
        if not batched:
            query, key, value = (ad.unsqueeze(x, 0) for x in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = np.asarray(unwrap(key_padding_mask))[None] if not isinstance(
                    key_padding_mask, ad.Tensor) else ad.unsqueeze(key_padding_mask, 0)
        elif not self.batch_first:  # (L, N, E) -> (N, L, E)
            query, key, value = (ad.swapaxes(x, 0, 1) for x in (query, key, value))
        N, L, E = np.shape(unwrap(query))
        S = np.shape(unwrap(key))[1]
        if E != self.embed_dim or np.shape(unwrap(key))[2] != self.kdim or np.shape(unwrap(value))[2] != self.vdim \
                or np.shape(unwrap(value))[:2] != (N, S) or np.shape(unwrap(key))[0] != N:
            raise ShapeError(f"{name}: query {qs}, key {ks}, value {vs} do not fit embed_dim={self.embed_dim}, "
                             f"kdim={self.kdim}, vdim={self.vdim} (batch_first={self.batch_first})")
        dtype = np.dtype(unwrap(self.out_proj.weight).dtype)
        if is_causal and attn_mask is None:
            raise ValueError(f"{name}: is_causal=True is a hint that attn_mask is the causal mask; give attn_mask "
                             f"too (as torch)")
        H, hd = self.num_heads, self.head_dim
        bias = None
        use_causal = False
        if attn_mask is not None:
            if is_causal and key_padding_mask is None and not need_weights:
                use_causal = True
            else:
                bias = _float_mask(attn_mask, dtype, "attn_mask")
                ms = np.shape(unwrap(bias))
                if ms == (L, S):
                    pass
                elif ms == (N * H, L, S):
                    bias = ad.reshape(bias, (N, H, L, S)) if isinstance(bias, ad.Tensor) else bias.reshape(N, H, L, S)
                else:
                    raise ShapeError(f"{name}: attn_mask of shape {ms}, expected ({L}, {S}) or ({N * H}, {L}, {S})")
        if key_padding_mask is not None:
            kp = _float_mask(key_padding_mask, dtype, "key_padding_mask")
            if np.shape(unwrap(kp)) != (N, S):
                raise ShapeError(f"{name}: key_padding_mask of shape {np.shape(unwrap(kp))}, expected ({N}, {S})")
            kp = ad.reshape(kp, (N, 1, 1, S)) if isinstance(kp, ad.Tensor) else kp.reshape(N, 1, 1, S)
            bias = kp if bias is None else bias + kp
        wq, wk, wv = self._projections()
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        q, k, v = F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)
        if self.bias_k is not None:  # one learned key/value appended to every sequence
            k = ad.concatenate([k, ad.broadcast_to(self.bias_k, (N, 1, E))], axis=1)
            v = ad.concatenate([v, ad.broadcast_to(self.bias_v, (N, 1, E))], axis=1)
            bias = None if bias is None else _pad_key_axis(bias)
        q, k, v = (ad.swapaxes(ad.reshape(x, (N, -1, H, hd)), 1, 2) for x in (q, k, v))  # (N, H, len, hd)
        if self.add_zero_attn:  # one all-zero key/value appended after the projections
            zeros = np.zeros((N, H, 1, hd), dtype)
            k, v = ad.concatenate([k, zeros], axis=2), ad.concatenate([v, zeros], axis=2)
            bias = None if bias is None else _pad_key_axis(bias)
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            p = F.attention_probabilities(q, k, bias)
            if dropout_p > 0.0:
                p = F.dropout(p, dropout_p)
            out = ad.matmul(p, v)
            weights = ad.mean(p, axis=1) if average_attn_weights else p
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, is_causal=use_causal)
            weights = None
        out = self.out_proj(ad.reshape(ad.swapaxes(out, 1, 2), (N, L, E)))
        if not batched:
            return out[0], (None if weights is None else weights[0])
        if not self.batch_first:
            out = ad.swapaxes(out, 0, 1)
        return out, weights

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"


def _pad_key_axis(bias: Any) -> Any:
    """An additive mask with one more key (a zero column: the appended key may always be attended)."""
    shape = np.shape(unwrap(bias))
    if shape[-1] == 1:
        return bias
    zeros = np.zeros((*shape[:-1], 1), unwrap(bias).dtype)
    return ad.concatenate([bias, zeros], axis=-1)
