"""Residual blocks and the small ResNet against a torch re-implementation with the same structure and names
(torchvision's BasicBlock, written out): the torch state dict loads key for key; forward, input gradient,
every parameter gradient and the running statistics agree in float64, in train and eval mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn as tnn

import dlmath as dm
import dlmath.nn as nn


class TBasicBlock(tnn.Module):
    """torchvision.models.resnet.BasicBlock (groups=1, dilation=1)."""

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU(inplace=True)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TPreActBlock(tnn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = tnn.BatchNorm2d(inplanes)
        self.relu = tnn.ReLU()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.downsample = downsample

    def forward(self, x):
        pre = self.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(pre)
        return self.conv2(self.relu(self.bn2(self.conv1(pre)))) + shortcut


def t_projection(inplanes, planes, stride):
    return tnn.Sequential(tnn.Conv2d(inplanes, planes, 1, stride, bias=False), tnn.BatchNorm2d(planes))


class TResNetSmall(tnn.Module):
    def __init__(self, num_classes=10, width=16, blocks=4, dropout=0.0, block=TBasicBlock):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(width)
        self.relu = tnn.ReLU(inplace=True)
        first = (blocks + 1) // 2
        self.layer1 = tnn.Sequential(*[block(width, width) for _ in range(first)])
        self.layer2 = tnn.Sequential(block(width, 2 * width, 2, t_projection(width, 2 * width, 2)),
                                     *[block(2 * width, 2 * width) for _ in range(blocks - first - 1)])
        self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
        self.flatten = tnn.Flatten()
        self.dropout = tnn.Dropout(dropout)
        self.fc = tnn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(self.dropout(self.flatten(self.avgpool(x))))


def _randomise_bn(tmodel, seed):
    """Non-trivial affine parameters and running statistics, so that eval mode and the affine maps are tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in tmodel.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.5, 0.5, generator=g)
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)


def _compare(dmodel, tmodel, x, train, seed=0, rtol=1e-9, atol=1e-10):
    _randomise_bn(tmodel, seed)
    tstate = {k: v.detach().numpy().copy() for k, v in tmodel.state_dict().items()}
    assert list(dmodel.state_dict()) == list(tstate), (list(dmodel.state_dict()), list(tstate))
    result = dmodel.load_state_dict(tstate)
    assert not result.missing_keys and not result.unexpected_keys
    dmodel.train(train)
    tmodel.train(train)
    xd, xt = dm.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yd, yt = dmodel(xd), tmodel(xt)
    np.testing.assert_allclose(yd.data, yt.detach().numpy(), rtol=rtol, atol=atol, err_msg="forward")
    ct = np.random.default_rng(seed).standard_normal(yd.shape)
    (yd * ct).sum().backward()
    (yt * torch.tensor(ct)).sum().backward()
    np.testing.assert_allclose(xd.grad.data, xt.grad.numpy(), rtol=rtol, atol=atol, err_msg="input grad")
    tparams = dict(tmodel.named_parameters())
    for name, p in dmodel.named_parameters():
        np.testing.assert_allclose(p.grad.data, tparams[name].grad.numpy(), rtol=rtol, atol=atol, err_msg=name)
    after = {k: v.detach().numpy() for k, v in tmodel.state_dict().items()}
    for k, v in dmodel.state_dict().items():
        np.testing.assert_allclose(v, after[k], rtol=rtol, atol=atol, err_msg=f"state {k} after the step")


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("stride, project", [(1, False), (2, True), (1, True)])
@pytest.mark.parametrize("kind", ["basic", "preact"])
def test_blocks_match_torch(kind, stride, project, train):
    inplanes, planes = 4, (6 if project else 4)
    dblock, tblock = (nn.BasicBlock, TBasicBlock) if kind == "basic" else (nn.PreActBlock, TPreActBlock)
    torch.manual_seed(0)
    tdown = t_projection(inplanes, planes, stride) if project else None
    ddown = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False, dtype=np.float64),
                          nn.BatchNorm2d(planes, dtype=np.float64)) if project else None
    tm = tblock(inplanes, planes, stride, tdown).double()
    dmod = dblock(inplanes, planes, stride, ddown, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((3, inplanes, 7, 6))
    _compare(dmod, tm, x, train)


@pytest.mark.parametrize("train", [True, False])
def test_resnet_small_matches_torch(train):
    torch.manual_seed(0)
    tm = TResNetSmall(num_classes=5, width=4, blocks=4).double()
    dmod = nn.resnet_small(num_classes=5, width=4, blocks=4, dtype=np.float64)
    x = np.random.default_rng(2).standard_normal((2, 3, 12, 12))
    _compare(dmod, tm, x, train)


def test_resnet_small_trains_and_saves(tmp_path):
    """A few SGD steps on synthetic data lower the loss; the state dict survives save/load."""
    import dlmath.optim as optim

    nn.manual_seed(0)
    model = nn.resnet_small(num_classes=3, width=4, blocks=2, dropout=0.1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 16)
    x[np.arange(16), labels] += 1.5     # a learnable signal: the class raises one input channel
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        losses.append(float(loss.data))
    assert losses[-1] < 0.7 * losses[0], losses
    path = tmp_path / "resnet.safetensors"
    dm.save(model.state_dict(), path)
    other = nn.resnet_small(num_classes=3, width=4, blocks=2, dropout=0.1)
    other.load_state_dict(dm.load(path))
    model.eval()
    other.eval()
    np.testing.assert_array_equal(model(x).data, other(x).data)


def test_resnet_small_bad_blocks():
    with pytest.raises(ValueError, match="blocks"):
        nn.resnet_small(blocks=1)


def test_docs_example_runs(tmp_path, monkeypatch):
    """The example of docs/conv.md: train a small ResNet on synthetic data, save it, load it into a clone."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "conv.md").read_text(encoding="utf-8")
    block = re.findall(r"```python\n(.*?)```", doc, flags=re.S)[0]
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(block, "docs/conv.md", "exec"), scope)
    assert scope["accuracy"] > 0.8, scope["accuracy"]
    x = scope["x"]
    with dm.no_grad():
        np.testing.assert_array_equal(scope["clone"](x).data, scope["model"](x).data)
