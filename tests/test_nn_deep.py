"""nn.deep: PlainMLP / ResidualMLP against a torch re-implementation with the same weights (float64),
forward and backward, the state-dict names, the initialisations' variances, and bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dlmath as dm
from dlmath.nn import deep

torch = pytest.importorskip("torch")

ACT = {"relu": torch.relu, "tanh": torch.tanh, "identity": lambda x: x}


def _torch_forward(state: dict[str, np.ndarray], kind: str, depth: int, activation: str, alpha: float,
                   post: bool, x: torch.Tensor) -> torch.Tensor:
    phi = ACT[activation]
    for l in range(depth):
        if kind == "plain":
            x = phi(x @ state[f"layers.{l}.weight"].T)
        else:
            y = x + alpha * (phi(x @ state[f"blocks.{l}.fc1.weight"].T) @ state[f"blocks.{l}.fc2.weight"].T)
            x = phi(y) if post else y
    return x


@settings(max_examples=12, deadline=None)
@given(kind=st.sampled_from(["plain", "residual"]), depth=st.integers(1, 4), width=st.integers(1, 6),
       activation=st.sampled_from(["relu", "tanh", "identity"]), alpha=st.floats(0.1, 2.0),
       post=st.booleans(), seed=st.integers(0, 2**31))
def test_forward_and_backward_match_torch(kind: str, depth: int, width: int, activation: str, alpha: float,
                                          post: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    if kind == "plain":
        net = deep.PlainMLP(depth, width, activation, "he", dtype=np.float64, generator=rng)
    else:
        net = deep.ResidualMLP(depth, width, activation, alpha, dtype=np.float64, generator=rng)
        for b in net.blocks:
            b.post_activation = post
    x = rng.standard_normal((3, width))
    g = rng.standard_normal((3, width))
    state = {k: torch.tensor(v, requires_grad=True) for k, v in net.state_dict().items()}
    tx = torch.tensor(x, requires_grad=True)
    ty = _torch_forward(state, kind, depth, activation, alpha, post, tx)
    (ty * torch.tensor(g)).sum().backward()
    xt = dm.tensor(x, requires_grad=True)
    y = net(xt)
    dm.sum(y * g).backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xt.grad.data, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in net.named_parameters():
        np.testing.assert_allclose(p.grad.data, state[name].grad.numpy(), rtol=1e-10, atol=1e-12)


def test_state_dict_names_and_branch_scale() -> None:
    net = deep.ResidualMLP(3, 4, branch_scale="sqrt", dtype=np.float64)
    assert list(net.state_dict()) == [f"blocks.{l}.fc{k}.weight" for l in range(3) for k in (1, 2)]
    assert all(abs(b.branch_scale - 3 ** -0.5) < 1e-15 for b in net.blocks)
    assert list(deep.PlainMLP(2, 4).state_dict()) == ["layers.0.weight", "layers.1.weight"]


@pytest.mark.parametrize("scheme", sorted(deep.INIT_VARIANCE_GAINS))
def test_initialisation_variances(scheme: str) -> None:
    net = deep.PlainMLP(1, 400, init=scheme, dtype=np.float64, generator=np.random.default_rng(0))
    w = net.layers[0].weight.data
    var = deep.INIT_VARIANCE_GAINS[scheme] / 400
    # 160000 draws: the sample variance is within 1% of the truth with overwhelming probability
    assert abs(w.var() / var - 1) < 0.02


def test_bad_arguments_name_the_layer() -> None:
    with pytest.raises(ValueError, match="PlainMLP: depth"):
        deep.PlainMLP(0, 3)
    with pytest.raises(ValueError, match="ResidualMLP: branch_scale"):
        deep.ResidualMLP(2, 3, branch_scale="log")
    with pytest.raises(ValueError, match="activation must be one of"):
        deep.ResidualBlock(3, activation="swish")
    with pytest.raises(ValueError, match="init must be one of"):
        deep.PlainMLP(2, 3, init="xavier")
