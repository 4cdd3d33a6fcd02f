"""Module, Parameter, containers and Linear against torch.nn: names, state dicts, modes, values, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dlmath as dm
from dlmath import nn


class Tanh(nn.Module):
    def forward(self, x):
        return dm.tanh(x)


def _pair(bias: bool = True) -> tuple[nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(4, 3, bias=bias), torch.nn.Tanh(), torch.nn.Linear(3, 2)).double()
    m = nn.Sequential(nn.Linear(4, 3, bias=bias), Tanh(), nn.Linear(3, 2)).double()
    m.load_state_dict(tm.state_dict())
    return m, tm


@pytest.mark.parametrize("bias", [True, False])
def test_sequential_linear_matches_torch_forward_and_backward(bias: bool) -> None:
    m, tm = _pair(bias)
    assert list(m.state_dict()) == list(tm.state_dict())
    x = np.random.default_rng(1).standard_normal((5, 4))
    y, yt = m(dm.tensor(x)), tm(torch.tensor(x))
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-13, atol=1e-14)
    (y * y).sum().backward()
    (yt * yt).sum().backward()
    for (name, p), (tname, tp) in zip(m.named_parameters(), tm.named_parameters(), strict=True):
        assert name == tname
        np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_linear_default_init_has_pytorchs_interval() -> None:
    nn.manual_seed(3)
    lin = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    for p in (lin.weight.data, lin.bias.data):
        assert p.dtype == np.float32
        assert np.abs(p).max() <= bound
        assert np.abs(p).max() > 0.95 * bound  # uniform over the whole interval, not a narrower one
    # variance of U(-b, b) is b^2/3; 120000 samples give a relative standard error of ~0.4%
    assert abs(lin.weight.data.var() / (bound**2 / 3) - 1) < 0.02


def test_load_state_dict_names_every_problem_and_writes_nothing() -> None:
    m, _ = _pair()
    before = m.state_dict()
    with pytest.raises(nn.StateDictError) as err:
        m.load_state_dict({"0.weight": np.zeros((2, 2)), "extra": np.zeros(1)})
    msg = str(err.value)
    assert "0.weight: expected shape (3, 4), got (2, 2)" in msg
    assert "missing keys: 0.bias, 2.weight, 2.bias" in msg
    assert "unexpected keys: extra" in msg
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    result = m.load_state_dict({"0.bias": np.ones(3)}, strict=False)
    assert result.missing_keys == ["0.weight", "2.weight", "2.bias"] and result.unexpected_keys == []
    np.testing.assert_array_equal(m[0].bias.data, np.ones(3))


def test_state_dict_is_a_copy_and_keeps_dtype_on_load() -> None:
    lin = nn.Linear(2, 2)
    sd = lin.state_dict()
    sd["weight"][...] = 7
    assert not np.any(lin.weight.data == 7)
    lin.load_state_dict({"weight": np.ones((2, 2), dtype=np.float64), "bias": np.zeros(2)})
    assert lin.weight.data.dtype == np.float32


def test_train_eval_zero_grad_and_registration() -> None:
    m, tm = _pair()
    m.eval()
    assert not any(mod.training for mod in m.modules())
    m.train()
    assert all(mod.training for mod in m.modules())
    assert [n for n, _ in m.named_modules()] == [n for n, _ in tm.named_modules()]
    m(dm.tensor(np.ones((1, 4)))).sum().backward()
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    with pytest.raises(TypeError, match="is a parameter"):
        m[0].weight = dm.tensor(np.ones((3, 4)))
    m[0].register_buffer("stat", np.zeros(3))
    assert "0.stat" in m.state_dict()
    m[0].register_buffer("tmp", np.zeros(3), persistent=False)
    assert "0.tmp" not in m.state_dict()


def test_bad_linear_input_names_the_shapes() -> None:
    lin = nn.Linear(4, 3)
    with pytest.raises(dm.ShapeError, match=r"input of shape \(5, 3\).*weight of shape \(3, 4\)"):
        lin(np.ones((5, 3)))
