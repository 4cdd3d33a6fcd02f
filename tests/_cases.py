"""Cases shared by the PyTorch-oracle tests of reverse mode (test_ops_torch) and forward mode (test_jvp_torch)."""

import hypothesis.extra.numpy as hnp
from hypothesis import strategies as st


@st.composite
def shape_and_axis(draw):
    """A shape of 1-4 dimensions and a valid axis of it."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5))
    return shape, draw(st.integers(-len(shape), len(shape) - 1))



# einsum subscripts with operand shapes: explicit and implicit outputs, broadcast ellipses, 1-3 operands
EINSUM_CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij,ij->", [(3, 4), (3, 4)]),
    ("ij,ij->i", [(3, 4), (3, 4)]),
    ("i,j->ij", [(3,), (4,)]),
    ("i,i->", [(5,), (5,)]),
    ("ij,jk->i", [(2, 3), (3, 4)]),
    ("ijk,j->i", [(2, 3, 4), (3,)]),
    ("ij,kl->jl", [(2, 3), (4, 5)]),
    ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ij->j", [(2, 3)]),
    ("ijk->kij", [(2, 3, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("bi,bj,bk->ijk", [(3, 2), (3, 3), (3, 2)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,...jk->...ik", [(2, 3, 2, 4), (3, 4, 5)]),
    ("...ij,...jk->...ik", [(1, 3, 4), (5, 4, 2)]),
    ("...ij,...jk->...k", [(1, 3, 4), (5, 4, 2)]),  # broadcast ellipsis and an index summed inside one operand
    ("...ij,...jk->...i", [(5, 3, 4), (1, 4, 2)]),
    ("...i,i->...", [(2, 3, 4), (4,)]),
    ("i...,i->...", [(4, 2, 3), (4,)]),
    ("b...d,d->...b", [(2, 3, 4), (4,)]),
    ("...ij,j->...i", [(2, 3, 4), (4,)]),
    ("...->...", [(2, 3)]),
]
