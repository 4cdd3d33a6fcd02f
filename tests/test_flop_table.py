"""The engine's flop table (``prim.flops`` in dlmath/autodiff/ops.py) against PyTorch.

The claims ``backprop.cheap-gradient`` and ``backprop.backward-cost-ratio`` measure
operation counts with this table, so the table is checked here against an oracle the
engine did not write: ``torch.utils.flop_counter.FlopCounterMode``.

What FlopCounterMode counts (its ``flop_registry`` in torch 2.13): mm, addmm, bmm,
baddbmm, _scaled_mm, convolutions and the fused attention kernels. Of these, dlmath has
matrix products only: ``matmul`` (mm / bmm, with broadcast batches) and ``einsum``
(which PyTorch lowers to bmm). dlmath has no convolution or attention primitive yet;
when one lands, `test_every_primitive_is_classified` fails until it is added here with
its PyTorch comparison.

What FlopCounterMode does NOT count: elementwise ops (add, tanh, exp...), reductions
(sum, max, logsumexp), softmax/log_softmax, shape and indexing ops, and matrix-vector or
vector-vector products (mv, dot), for which it reports 0. Those rows of the table are
checked against the convention written in ops.py (one flop per output element for
elementwise ops, one per input element for reductions, 3 per element for logsumexp, 4 for
softmax and log_softmax, 0 for shape ops), and the tests below assert that PyTorch
indeed reports 0 for them, so that a future PyTorch counting them is noticed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import dlmath as dm
from dlmath.autodiff.core import Primitive
from dlmath.nn import cross_entropy, mlp_logits

RNG = np.random.default_rng(20240613)


def _torch_counts(f: Callable[..., torch.Tensor], *arrays: np.ndarray) -> tuple[int, int]:
    """(forward, backward) flops PyTorch's FlopCounterMode counts for f and its backward (ones cotangent)."""
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    with FlopCounterMode(display=False) as fc:
        y = f(*ts)
        forward = fc.get_total_flops()
        y.backward(torch.ones_like(y))
        total = fc.get_total_flops()
    return forward, total - forward


def _dlmath_counts(f: Callable[..., Any], op: str, *arrays: np.ndarray) -> tuple[int, int]:
    """(forward, backward) flops dlmath's table charges to ``op`` for f and its backward (ones cotangent)."""
    ts = [dm.tensor(a, requires_grad=True) for a in arrays]
    with dm.count_flops() as c:
        y = f(*ts)
        y.backward(np.ones(y.shape))
    return c.by_op[("forward", op)], c.by_op[("backward", op)]


# ----- matrix products: counted by both ------------------------------------------------------------------
MATMUL_SHAPES = [
    ((3, 4), (4, 5)),              # mm
    ((7, 1), (1, 6)),              # mm with k = 1
    ((2, 3, 4), (2, 4, 5)),        # bmm
    ((2, 3, 4), (4, 5)),           # batch broadcast against a matrix
    ((2, 1, 3, 4), (5, 4, 6)),     # batch broadcast on both sides
]


@pytest.mark.parametrize(("a_shape", "b_shape"), MATMUL_SHAPES, ids=str)
def test_matmul_flops_match_flop_counter_mode(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> None:
    a, b = RNG.standard_normal(a_shape), RNG.standard_normal(b_shape)
    ours = _dlmath_counts(lambda x, y: x @ y, "matmul", a, b)
    assert ours == _torch_counts(lambda x, y: x @ y, a, b)
    # and the table's formula: 2 * size(out) * k forward, twice that backward
    out_size = int(np.prod(np.broadcast_shapes(a_shape[:-2], b_shape[:-2]))) * a_shape[-2] * b_shape[-1]
    assert ours == (2 * out_size * a_shape[-1], 4 * out_size * a_shape[-1])


@pytest.mark.parametrize(("a_shape", "b_shape", "torch_counts_it"),
                         [((3, 4), (4,), False), ((4,), (4,), False), ((4,), (4, 5), True)], ids=str)
def test_products_with_a_vector_count_as_the_same_product_written_with_matrices(
        a_shape: tuple[int, ...], b_shape: tuple[int, ...], torch_counts_it: bool) -> None:
    # FlopCounterMode does not count mv and dot (it reports 0; vector @ matrix it lowers to mm and
    # counts); the same product written with matrices (mm) is counted, and the table charges the 1-D
    # form what PyTorch charges the mm form. Forward only: dlmath's backward of a product with a vector
    # forms an outer product, an elementwise multiply in this table, where PyTorch runs an mm.
    a, b = RNG.standard_normal(a_shape), RNG.standard_normal(b_shape)
    as_mm = _torch_counts(lambda x, y: x @ y, a.reshape(1, -1) if a.ndim == 1 else a,
                          b.reshape(-1, 1) if b.ndim == 1 else b)[0]
    assert _torch_counts(lambda x, y: x @ y, a, b)[0] == (as_mm if torch_counts_it else 0)
    assert _dlmath_counts(lambda x, y: x @ y, "matmul", a, b)[0] == as_mm == 2 * a.size * (b.size // a.shape[-1])


EINSUM_LOWERS_TO_BMM = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,kj->ik", [(3, 4), (5, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),  # attention scores
    ("ij,j->i", [(3, 4), (4,)]),
    ("ij,ij->", [(3, 4), (3, 4)]),
]


@pytest.mark.parametrize(("subscripts", "shapes"), EINSUM_LOWERS_TO_BMM, ids=[s for s, _ in EINSUM_LOWERS_TO_BMM])
def test_einsum_flops_match_flop_counter_mode_where_it_lowers_to_bmm(subscripts: str, shapes: list) -> None:
    arrays = [RNG.standard_normal(s) for s in shapes]
    ours = _dlmath_counts(lambda *t: dm.einsum(subscripts, *t), "einsum", *arrays)
    assert ours == _torch_counts(lambda *t: torch.einsum(subscripts, *t), *arrays)


def test_einsum_where_the_conventions_differ_is_documented() -> None:
    # The table charges an einsum 2 * (product of all index sizes). PyTorch first sums an index that
    # occurs in one operand only, uncounted, then counts the remaining bmm; an outer product becomes
    # an elementwise mul, uncounted. Neither case occurs in the chapter-3 claims.
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((4, 5))
    assert _dlmath_counts(lambda x, y: dm.einsum("ij,jk->k", x, y), "einsum", a, b)[0] == 2 * 3 * 4 * 5
    assert _torch_counts(lambda x, y: torch.einsum("ij,jk->k", x, y), a, b)[0] == 2 * 4 * 5
    u, v = RNG.standard_normal(3), RNG.standard_normal(4)
    assert _dlmath_counts(lambda x, y: dm.einsum("i,j->ij", x, y), "einsum", u, v)[0] == 2 * 3 * 4
    assert _torch_counts(lambda x, y: torch.einsum("i,j->ij", x, y), u, v)[0] == 0


def test_the_cheap_gradient_network_matches_flop_counter_mode() -> None:
    # the programs of backprop.cheap-gradient / backward-cost-ratio: ReLU MLP with biases, softmax
    # cross-entropy, input without gradient. PyTorch's linear layers are addmm (bias not counted).
    sizes, batch = [16, 12, 12, 10], 8
    Ws = [RNG.standard_normal((o, i)) / np.sqrt(i) for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
    bs = [RNG.standard_normal(o) for o in sizes[1:]]
    X, y = RNG.standard_normal((batch, sizes[0])), RNG.integers(0, sizes[-1], batch)
    params = [dm.tensor(p, requires_grad=True) for pair in zip(Ws, bs, strict=True) for p in pair]
    with dm.count_flops() as c:
        cross_entropy(mlp_logits(params, X, dm.relu), y).backward()
    tparams = [torch.tensor(p, requires_grad=True) for pair in zip(Ws, bs, strict=True) for p in pair]
    with FlopCounterMode(display=False) as tc:
        h = torch.tensor(X)
        for k in range(len(Ws)):
            h = torch.nn.functional.linear(h, tparams[2 * k], tparams[2 * k + 1])
            h = torch.relu(h) if k < len(Ws) - 1 else h
        forward = tc.get_total_flops()
        torch.nn.functional.cross_entropy(h, torch.tensor(y)).backward()
        backward = tc.get_total_flops() - forward
    assert (c.by_op[("forward", "matmul")], c.by_op[("backward", "matmul")]) == (forward, backward)


# ----- not counted by FlopCounterMode: checked against the table's written convention -----------------------
X34 = RNG.standard_normal((3, 4))
ROW = RNG.standard_normal(4)
POS = np.abs(X34) + 0.5

# primitive name -> (dlmath call, torch call, the convention's count)
CONVENTION: dict[str, tuple[Callable[[], Any], Callable[[], Any], int]] = {
    "add": (lambda: dm.add(X34, ROW), lambda: torch.tensor(X34) + torch.tensor(ROW), 12),  # per output element
    "subtract": (lambda: dm.subtract(X34, ROW), lambda: torch.tensor(X34) - torch.tensor(ROW), 12),
    "multiply": (lambda: dm.multiply(X34, X34), lambda: torch.tensor(X34) * torch.tensor(X34), 12),
    "divide": (lambda: dm.divide(X34, POS), lambda: torch.tensor(X34) / torch.tensor(POS), 12),
    "power": (lambda: dm.power(POS, 1.5), lambda: torch.tensor(POS) ** 1.5, 12),
    "negative": (lambda: dm.negative(X34), lambda: -torch.tensor(X34), 12),
    "abs": (lambda: dm.abs(X34), lambda: torch.tensor(X34).abs(), 12),
    "exp": (lambda: dm.exp(X34), lambda: torch.tensor(X34).exp(), 12),
    "log": (lambda: dm.log(POS), lambda: torch.tensor(POS).log(), 12),
    "log1p": (lambda: dm.log1p(POS), lambda: torch.tensor(POS).log1p(), 12),
    "sqrt": (lambda: dm.sqrt(POS), lambda: torch.tensor(POS).sqrt(), 12),
    "sin": (lambda: dm.sin(X34), lambda: torch.tensor(X34).sin(), 12),
    "cos": (lambda: dm.cos(X34), lambda: torch.tensor(X34).cos(), 12),
    "tanh": (lambda: dm.tanh(X34), lambda: torch.tensor(X34).tanh(), 12),
    "sigmoid": (lambda: dm.sigmoid(X34), lambda: torch.tensor(X34).sigmoid(), 12),
    "relu": (lambda: dm.relu(X34), lambda: torch.tensor(X34).relu(), 12),
    "softplus": (lambda: dm.softplus(X34), lambda: torch.nn.functional.softplus(torch.tensor(X34)), 12),
    "erf": (lambda: dm.erf(X34), lambda: torch.tensor(X34).erf(), 12),
    "maximum": (lambda: dm.maximum(X34, ROW), lambda: torch.maximum(torch.tensor(X34), torch.tensor(ROW)), 12),
    "minimum": (lambda: dm.minimum(X34, ROW), lambda: torch.minimum(torch.tensor(X34), torch.tensor(ROW)), 12),
    "where": (lambda: dm.where(X34 > 0, X34, 0.0), lambda: torch.where(torch.tensor(X34) > 0, torch.tensor(X34), 0.0),
              12),
    "clip": (lambda: dm.clip(X34, -0.5, 0.5), lambda: torch.tensor(X34).clamp(-0.5, 0.5), 12),
    "sum": (lambda: dm.sum(X34, axis=1), lambda: torch.tensor(X34).sum(1), 12),  # per input element
    "max": (lambda: dm.max(X34, axis=0), lambda: torch.tensor(X34).amax(0), 12),
    "min": (lambda: dm.min(X34), lambda: torch.tensor(X34).amin(), 12),
    "prod": (lambda: dm.prod(X34, axis=1), lambda: torch.tensor(X34).prod(1), 12),
    "logsumexp": (lambda: dm.logsumexp(X34, axis=1), lambda: torch.tensor(X34).logsumexp(1), 3 * 12),
    "softmax": (lambda: dm.softmax(X34), lambda: torch.tensor(X34).softmax(-1), 4 * 12),
    "log_softmax": (lambda: dm.log_softmax(X34), lambda: torch.tensor(X34).log_softmax(-1), 4 * 12),
    "cumsum": (lambda: dm.cumsum(X34, axis=1), lambda: torch.tensor(X34).cumsum(1), 12),  # per output element
    "cumprod": (lambda: dm.cumprod(X34, axis=1), lambda: torch.tensor(X34).cumprod(1), 12),
    # shape and indexing ops: zero
    "reshape": (lambda: dm.reshape(X34, (4, 3)), lambda: torch.tensor(X34).reshape(4, 3), 0),
    "transpose": (lambda: dm.transpose(X34), lambda: torch.tensor(X34).T.contiguous(), 0),
    "broadcast_to": (lambda: dm.broadcast_to(ROW, (3, 4)), lambda: torch.tensor(ROW).expand(3, 4).contiguous(), 0),
    "getitem": (lambda: dm.take(X34, (slice(None), [0, 2])), lambda: torch.tensor(X34)[:, [0, 2]], 0),
    "scatter_add": (lambda: dm.ops.scatter_add(ROW, (3, 4), 1),
                    lambda: torch.zeros(3, 4).index_add(0, torch.tensor([1]), torch.ones(1, 4)), 0),
    "concatenate": (lambda: dm.concatenate([X34, X34]), lambda: torch.cat([torch.tensor(X34)] * 2), 0),
    "pad": (lambda: dm.pad(X34, 1), lambda: torch.nn.functional.pad(torch.tensor(X34), (1, 1, 1, 1)), 0),
    "flip": (lambda: dm.flip(X34, 0), lambda: torch.tensor(X34).flip(0), 0),
    "roll": (lambda: dm.roll(X34, 1, 0), lambda: torch.tensor(X34).roll(1, 0), 0),
    "identity": (lambda: dm.ops.identity(X34), lambda: torch.tensor(X34).clone(), 0),
    "astype": (lambda: dm.astype(X34, np.float32), lambda: torch.tensor(X34).float(), 0),
}
COUNTED_BY_TORCH = {"matmul", "einsum"}  # tested above against FlopCounterMode


def _conventions_elsewhere() -> dict[str, tuple[Callable[[], Any], Callable[[], Any], int]]:
    """Entries for primitives whose tests live in other files: each lists them in FLOP_CONVENTION."""
    import importlib
    import pathlib
    found: dict[str, tuple[Callable[[], Any], Callable[[], Any], int]] = {}
    here = pathlib.Path(__file__)
    for path in sorted(here.parent.glob("test_*.py")):
        if path != here and "FLOP_CONVENTION" in path.read_text():
            found.update(importlib.import_module(path.stem).FLOP_CONVENTION)
    return found


CONVENTION.update(_conventions_elsewhere())
TABLES = (dm.ops, dm.special)  # the modules that define primitives


def test_every_primitive_is_classified() -> None:
    prims = {p.name for module in TABLES for p in vars(module).values() if isinstance(p, Primitive)}
    assert prims == set(CONVENTION) | COUNTED_BY_TORCH, (
        f"unclassified primitives: {sorted(prims - set(CONVENTION) - COUNTED_BY_TORCH)}; add each to "
        "CONVENTION, or (if FlopCounterMode counts its PyTorch counterpart) compare it with FlopCounterMode")


@pytest.mark.parametrize("name", sorted(CONVENTION))
def test_uncounted_ops_follow_the_written_convention(name: str) -> None:
    ours, theirs, expected = CONVENTION[name]
    with dm.count_flops() as c:
        ours()
    assert c.by_op[("forward", name)] == expected
    assert c.forward == expected  # the call runs that one primitive only
    with FlopCounterMode(display=False) as fc:
        theirs()
    assert fc.get_total_flops() == 0, f"FlopCounterMode now counts {name}: compare the table with it"
