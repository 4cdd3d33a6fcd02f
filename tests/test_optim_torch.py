"""dlmath.optim and clip_grad_norm_ against torch.optim / torch.nn.utils: same initial weights and the same
gradients for several steps give the same weights (float64, to 1e-12)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dlmath as dm
from dlmath import nn, optim
from dlmath.nn.utils import clip_grad_norm_

FEW = settings(max_examples=8, deadline=None)


def _run(make, tmake, kwargs, steps: int = 6, seed: int = 0, groups: bool = False) -> None:
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (4,), (2, 2, 3)]
    init = [rng.standard_normal(s) for s in shapes]
    ps = [nn.Parameter(a) for a in init]
    tps = [torch.tensor(a, requires_grad=True) for a in init]
    if groups:  # a second group with its own learning rate
        opt = make([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.05}], **kwargs)
        topt = tmake([{"params": tps[:2]}, {"params": tps[2:], "lr": 0.05}], **kwargs)
    else:
        opt, topt = make(ps, **kwargs), tmake(tps, **kwargs)
    for _ in range(steps):
        for p, tp in zip(ps, tps, strict=True):
            g = rng.standard_normal(p.shape)
            p.grad = dm.tensor(g)
            tp.grad = torch.tensor(g)
        version = ps[0]._version[0]
        opt.step()
        topt.step()
        assert ps[0]._version[0] == version + 1
        for p, tp in zip(ps, tps, strict=True):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-12)


@given(lr=st.sampled_from([0.1, 0.01]), momentum=st.sampled_from([0.0, 0.9]), dampening=st.sampled_from([0.0, 0.3]),
       wd=st.sampled_from([0.0, 0.05]), nesterov=st.booleans(), maximize=st.booleans(), groups=st.booleans(),
       seed=st.integers(0, 2**31))
@FEW
def test_sgd_matches_torch(lr, momentum, dampening, wd, nesterov, maximize, groups, seed) -> None:
    if nesterov and (momentum == 0 or dampening != 0):
        nesterov = False
    kw = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=wd, nesterov=nesterov, maximize=maximize)
    _run(optim.SGD, torch.optim.SGD, kw, seed=seed, groups=groups)


@pytest.mark.parametrize("cls,tcls", [(optim.Adam, torch.optim.Adam), (optim.AdamW, torch.optim.AdamW)])
@given(lr=st.sampled_from([1e-3, 0.1]), betas=st.sampled_from([(0.9, 0.999), (0.5, 0.9)]),
       eps=st.sampled_from([1e-8, 1e-3]), wd=st.sampled_from([0.0, 0.1]), amsgrad=st.booleans(),
       maximize=st.booleans(), groups=st.booleans(), seed=st.integers(0, 2**31))
@FEW
def test_adam_and_adamw_match_torch(cls, tcls, lr, betas, eps, wd, amsgrad, maximize, groups, seed) -> None:
    kw = dict(lr=lr, betas=betas, eps=eps, weight_decay=wd, amsgrad=amsgrad, maximize=maximize)
    _run(cls, tcls, kw, seed=seed, groups=groups)


def test_defaults_zero_grad_and_errors() -> None:
    p = nn.Parameter(np.ones(3))
    assert optim.AdamW([p]).param_groups[0]["weight_decay"] == 1e-2
    assert optim.Adam([p]).param_groups[0]["lr"] == 1e-3
    opt = optim.SGD([p], lr=0.1)
    p.grad = dm.tensor(np.ones(3))
    opt.zero_grad()
    assert p.grad is None
    p.grad = dm.tensor(np.ones(3))
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.data, 0)
    with pytest.raises(ValueError, match="invalid lr"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)


def test_training_a_module_matches_torch() -> None:
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    m = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    m.load_state_dict(tm.state_dict())
    opt, topt = optim.Adam(m.parameters(), lr=0.01), torch.optim.Adam(tm.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
    for _ in range(5):
        opt.zero_grad()
        topt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(y)).backward()
        assert np.isclose(clip_grad_norm_(m.parameters(), 0.5),
                          float(torch.nn.utils.clip_grad_norm_(tm.parameters(), 0.5)), rtol=1e-12)
        opt.step()
        topt.step()
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(m.state_dict()[k], v.numpy(), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.1, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm) -> None:
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(s) for s in [(3, 2), (5,), (1,)]]
    ps = [nn.Parameter(np.zeros_like(g)) for g in grads]
    tps = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, tp, g in zip(ps, tps, grads, strict=True):
        p.grad, tp.grad = dm.tensor(g), torch.tensor(g)
    total = clip_grad_norm_(ps, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type)
    assert np.isclose(total, float(ttotal), rtol=1e-13)
    for p, tp in zip(ps, tps, strict=True):
        np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=1e-13)


def test_clip_grad_norm_nonfinite() -> None:
    p = nn.Parameter(np.zeros(2))
    p.grad = dm.tensor(np.array([np.inf, 1.0]))
    with pytest.raises(dm.GradientError, match="total norm"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert clip_grad_norm_([nn.Parameter(np.zeros(2))], 1.0) == 0.0


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.AdamW(ps, amsgrad=True)])
def test_optimizer_state_dict_resumes_exactly(make) -> None:
    rng = np.random.default_rng(2)
    init = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
    grads = [[rng.standard_normal(a.shape) for a in init] for _ in range(6)]

    def run(split: bool) -> list[np.ndarray]:
        ps = [nn.Parameter(a) for a in init]
        opt = make(ps)
        for k, gs in enumerate(grads):
            if split and k == 3:  # a fresh optimizer resumes from the saved state
                saved = opt.state_dict()
                opt = make(ps)
                opt.load_state_dict(saved)
            for p, g in zip(ps, gs, strict=True):
                p.grad = dm.tensor(g)
            opt.step()
        return [p.data for p in ps]

    for a, b in zip(run(False), run(True), strict=True):
        np.testing.assert_array_equal(a, b)
