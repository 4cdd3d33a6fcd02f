r"""`TransformerEncoderLayer`, `TransformerEncoder` (PyTorch's names and layout) and sinusoidal positions.

One encoder layer (Vaswani et al. 2017, section 3.1), post-norm (``norm_first=False``, the paper's):
$x \leftarrow \mathrm{LN}_1(x + \mathrm{SA}(x))$, $x \leftarrow \mathrm{LN}_2(x + \mathrm{FF}(x))$; pre-norm
(``norm_first=True``; Xiong et al. 2020): $x \leftarrow x + \mathrm{SA}(\mathrm{LN}_1 x)$,
$x \leftarrow x + \mathrm{FF}(\mathrm{LN}_2 x)$, with $\mathrm{FF}(x) = W_2\,\mathrm{act}(W_1 x + b_1) + b_2$.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import functional as F
from .attention import MultiheadAttention
from .dropout import Dropout
from .linear import Linear, default_dtype
from .module import Module, ModuleList
from .normalization import LayerNorm

__all__ = ["TransformerEncoder", "TransformerEncoderLayer", "sinusoidal_positional_encoding"]


def sinusoidal_positional_encoding(seq_len: int, d_model: int, base: float = 10000.0, dtype: Any = None) -> np.ndarray:
    r"""$PE_{(pos, 2i)} = \sin(pos/\text{base}^{2i/d})$, $PE_{(pos, 2i+1)} = \cos(pos/\text{base}^{2i/d})$,
    shape (seq_len, d_model) (Vaswani et al. 2017, section 3.5). Added to the token embeddings, it breaks
    self-attention's permutation equivariance; $PE_{pos+k}$ is a fixed rotation of $PE_{pos}$ per frequency."""
    if seq_len < 0 or d_model <= 0:
        raise ValueError(f"sinusoidal_positional_encoding: need seq_len >= 0 and d_model > 0, got {seq_len}, "
                         f"{d_model}")
    pos = np.arange(seq_len, dtype=np.float64)[:, None]
    freq = np.exp(-math.log(base) * np.arange(0, d_model, 2, dtype=np.float64) / d_model)  # base^(-2i/d)
    pe = np.zeros((seq_len, d_model))
    pe[:, 0::2] = np.sin(pos * freq)
    pe[:, 1::2] = np.cos(pos * freq[: d_model // 2])
    return pe.astype(default_dtype(dtype))


def _activation(activation: str | Callable[[Any], Any]) -> Callable[[Any], Any]:
    if callable(activation):
        return activation
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    raise ValueError(f"TransformerEncoderLayer: activation must be 'relu', 'gelu' or a callable, got {activation!r}")


class TransformerEncoderLayer(Module):
    """As ``torch.nn.TransformerEncoderLayer``: parameters ``self_attn.*``, ``linear1.*``, ``linear2.*``,
    ``norm1.*``, ``norm2.*``; forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False) with
    MultiheadAttention's mask conventions (boolean True = not allowed). Input (S, N, E), (N, S, E) with
    ``batch_first``, or unbatched (S, E)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable[[Any], Any] = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True, dtype: Any = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            dtype=dtype, generator=generator)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype, generator=generator)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype, generator=generator)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(activation)

    def _sa_block(self, x: Any, attn_mask: Any, key_padding_mask: Any, is_causal: bool) -> Any:
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x: Any) -> Any:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src: Any, src_mask: Any = None, src_key_padding_mask: Any = None,
                is_causal: bool = False) -> Any:
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x))


class TransformerEncoder(Module):
    """``num_layers`` deep copies of ``encoder_layer`` (``layers.0.*``, ``layers.1.*``...), then ``norm`` if
    given, as ``torch.nn.TransformerEncoder``."""

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: Module | None = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True) -> None:
        super().__init__()
        if not isinstance(num_layers, (int, np.integer)) or num_layers < 1:
            raise ValueError(f"TransformerEncoder: num_layers must be a positive integer, got {num_layers!r}")
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = int(num_layers)
        if norm is None:
            self.register_module("norm", None)
        else:
            self.norm = norm

    def forward(self, src: Any, mask: Any = None, src_key_padding_mask: Any = None,
                is_causal: bool | None = None) -> Any:
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return x if self.norm is None else self.norm(x)
