r"""Residual blocks $y = \sigma(x + F(x; W))$ (He et al. 2016, "Deep Residual Learning for Image Recognition")
and $y = x + F(x; W)$ with pre-activation (He et al. 2016b, "Identity Mappings in Deep Residual Networks"),
plus `resnet_small`, a 4-block ResNet for 32x32 images.

`BasicBlock` is ``torchvision.models.resnet.BasicBlock`` module for module (conv1, bn1, relu, conv2, bn2,
downsample = Sequential(conv 1x1, BatchNorm2d)), so a torchvision state dict loads key for key.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .activation import Flatten, ReLU
from .batchnorm import BatchNorm2d
from .conv import Conv2d
from .dropout import Dropout
from .linear import Linear
from .module import Module, Sequential
from .pooling import AdaptiveAvgPool2d

__all__ = ["BasicBlock", "PreActBlock", "ResNetSmall", "conv1x1", "conv3x3", "resnet_small"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, dtype: Any = None) -> Conv2d:
    """3x3 convolution, padding 1, no bias (torchvision's ``conv3x3``)."""
    return Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False, dtype=dtype)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1, dtype: Any = None) -> Conv2d:
    """1x1 convolution, no bias (torchvision's ``conv1x1``): the projection shortcut."""
    return Conv2d(in_planes, out_planes, 1, stride=stride, bias=False, dtype=dtype)


def _projection(inplanes: int, planes: int, stride: int, dtype: Any) -> Sequential:
    return Sequential(conv1x1(inplanes, planes, stride, dtype), BatchNorm2d(planes, dtype=dtype))


class BasicBlock(Module):
    r"""$y = \mathrm{relu}(\mathrm{bn_2}(W_2 * \mathrm{relu}(\mathrm{bn_1}(W_1 * x))) + S(x))$, $S$ the identity or
    ``downsample`` (He et al. 2016, Fig. 2; ``torchvision.models.resnet.BasicBlock``)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Module | None = None,
                 dtype: Any = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, dtype)
        self.bn1 = BatchNorm2d(planes, dtype=dtype)
        self.relu = ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dtype=dtype)
        self.bn2 = BatchNorm2d(planes, dtype=dtype)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Any) -> Any:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class PreActBlock(Module):
    r"""$y = x + W_2 * \mathrm{relu}(\mathrm{bn_2}(W_1 * \mathrm{relu}(\mathrm{bn_1}(x))))$: the identity path
    carries $x$ untouched (He et al. 2016b, Fig. 4(e)). A ``downsample`` (projection) acts on the
    pre-activated input $\mathrm{relu}(\mathrm{bn_1}(x))$, as in the authors' code."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Module | None = None,
                 dtype: Any = None) -> None:
        super().__init__()
        self.bn1 = BatchNorm2d(inplanes, dtype=dtype)
        self.relu = ReLU(inplace=True)
        self.conv1 = conv3x3(inplanes, planes, stride, dtype)
        self.bn2 = BatchNorm2d(planes, dtype=dtype)
        self.conv2 = conv3x3(planes, planes, dtype=dtype)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Any) -> Any:
        pre = self.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(pre)
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        return out + shortcut


class ResNetSmall(Module):
    """conv3x3 stem -> BatchNorm -> ReLU -> layer1 (blocks at ``width``, 32x32) -> layer2 (blocks at 2*width,
    stride 2) -> global average pool -> flatten -> dropout -> Linear. Names as torchvision's ResNet."""

    def __init__(self, num_classes: int = 10, width: int = 16, blocks: int = 4, dropout: float = 0.0,
                 block: type[Module] = BasicBlock, in_channels: int = 3, dtype: Any = None) -> None:
        super().__init__()
        if not isinstance(blocks, (int, np.integer)) or blocks < 2:
            raise ValueError(f"resnet_small: blocks must be an integer >= 2 (two stages), got {blocks!r}")
        self.conv1 = conv3x3(in_channels, width, dtype=dtype)
        self.bn1 = BatchNorm2d(width, dtype=dtype)
        self.relu = ReLU(inplace=True)
        first = (blocks + 1) // 2
        self.layer1 = Sequential(*[block(width, width, dtype=dtype) for _ in range(first)])
        self.layer2 = Sequential(block(width, 2 * width, 2, _projection(width, 2 * width, 2, dtype), dtype=dtype),
                                 *[block(2 * width, 2 * width, dtype=dtype) for _ in range(blocks - first - 1)])
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.flatten = Flatten()
        self.dropout = Dropout(dropout)
        self.fc = Linear(2 * width, num_classes, dtype=dtype)

    def forward(self, x: Any) -> Any:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(self.dropout(self.flatten(self.avgpool(x))))


def resnet_small(num_classes: int = 10, width: int = 16, blocks: int = 4, dropout: float = 0.0,
                 block: type[Module] = BasicBlock, dtype: Any = None) -> ResNetSmall:
    """A small ResNet for 32x32 images: ``blocks`` residual blocks in two stages (see `ResNetSmall`)."""
    return ResNetSmall(num_classes, width, blocks, dropout, block, dtype=dtype)
