"""nn.resnet: torchvision's ImageNet ResNets, name for name and parameter for parameter (the counts are
torchvision's), and a Bottleneck block against a torch re-implementation with the same weights."""

from __future__ import annotations

import numpy as np
import pytest

import dlmath as dm
from dlmath.nn import resnet

torch = pytest.importorskip("torch")


def test_torchvision_state_dict_names() -> None:
    keys = list(resnet.resnet18(num_classes=10).state_dict())
    for k in ("conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer1.1.bn2.num_batches_tracked",
              "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_mean", "layer4.1.conv2.weight",
              "fc.weight", "fc.bias"):
        assert k in keys, k
    assert "layer1.0.downsample.0.weight" not in keys
    assert len(keys) == 122  # torchvision's resnet18().state_dict() has 122 entries


def test_parameter_counts_of_resnet50() -> None:
    assert sum(p.data.size for p in resnet.resnet50().parameters()) == 25_557_032


def test_bottleneck_matches_torch() -> None:
    rng = np.random.default_rng(0)
    down = dm.nn.Sequential(resnet.conv1x1(8, 16, 2, np.float64), dm.nn.BatchNorm2d(16, dtype=np.float64))
    block = resnet.Bottleneck(8, 4, 2, down, dtype=np.float64)
    x = rng.standard_normal((2, 8, 6, 6))
    sd = {k: torch.tensor(v) for k, v in block.state_dict().items()}
    tx = torch.tensor(x, requires_grad=True)
    F = torch.nn.functional

    def bn(t: torch.Tensor, p: str) -> torch.Tensor:
        return F.batch_norm(t, None, None, sd[p + ".weight"], sd[p + ".bias"], training=True)
    out = F.relu(bn(F.conv2d(tx, sd["conv1.weight"]), "bn1"))
    out = F.relu(bn(F.conv2d(out, sd["conv2.weight"], stride=2, padding=1), "bn2"))
    out = bn(F.conv2d(out, sd["conv3.weight"]), "bn3")
    ty = F.relu(out + bn(F.conv2d(tx, sd["downsample.0.weight"], stride=2), "downsample.1"))
    g = rng.standard_normal(ty.shape)
    (ty * torch.tensor(g)).sum().backward()
    xt = dm.tensor(x, requires_grad=True)
    y = block(xt)
    dm.sum(y * g).backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xt.grad.data, tx.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_bad_block_counts() -> None:
    with pytest.raises(ValueError, match="ResNet: layers"):
        resnet.ResNet(resnet.Bottleneck, [1, 2, 3])
