r"""torchvision's ImageNet ResNets (He et al. 2016): `resnet18`, `resnet34` (`BasicBlock`) and `resnet50`,
`resnet101`, `resnet152` (`Bottleneck`), module for module and name for name as
``torchvision.models.resnet`` (conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc), so a torchvision
state dict loads key for key. Block counts per stage: [2,2,2,2], [3,4,6,3], [3,4,6,3], [3,4,23,3], [3,8,36,3].
"""

from __future__ import annotations

from typing import Any

from .activation import ReLU
from .batchnorm import BatchNorm2d
from .conv import Conv2d
from .linear import Linear
from .module import Module, Sequential
from .pooling import AdaptiveAvgPool2d, MaxPool2d
from .residual import BasicBlock, conv1x1, conv3x3

__all__ = ["Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


class Bottleneck(Module):
    r"""$y = \mathrm{relu}(\mathrm{bn_3}(W_3 * a_2) + S(x))$, $a_2 = \mathrm{relu}(\mathrm{bn_2}(W_2 * a_1))$,
    $a_1 = \mathrm{relu}(\mathrm{bn_1}(W_1 * x))$, with 1x1, 3x3 (the stride here, as torchvision's
    "ResNet V1.5") and 1x1 convolutions and ``expansion = 4`` (He et al. 2016, Fig. 5 right)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Module | None = None,
                 dtype: Any = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes, dtype=dtype)
        self.bn1 = BatchNorm2d(planes, dtype=dtype)
        self.conv2 = conv3x3(planes, planes, stride, dtype)
        self.bn2 = BatchNorm2d(planes, dtype=dtype)
        self.conv3 = conv1x1(planes, planes * self.expansion, dtype=dtype)
        self.bn3 = BatchNorm2d(planes * self.expansion, dtype=dtype)
        self.relu = ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Any) -> Any:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(Module):
    """7x7/2 stem, 3x3/2 max pool, four stages (64, 128, 256, 512 planes; stride 2 from the second), global
    average pool, Linear (``torchvision.models.resnet.ResNet`` without its optional variants)."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], num_classes: int = 1000,
                 dtype: Any = None) -> None:
        super().__init__()
        if len(layers) != 4 or any(not isinstance(n, int) or n < 1 for n in layers):
            raise ValueError(f"ResNet: layers must be four positive block counts, got {layers!r}")
        self.inplanes = 64
        self._dtype = dtype
        self.conv1 = Conv2d(3, 64, 7, stride=2, padding=3, bias=False, dtype=dtype)
        self.bn1 = BatchNorm2d(64, dtype=dtype)
        self.relu = ReLU(inplace=True)
        self.maxpool = MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.fc = Linear(512 * block.expansion, num_classes, dtype=dtype)

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int,
                    stride: int = 1) -> Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = Sequential(conv1x1(self.inplanes, planes * block.expansion, stride, self._dtype),
                                    BatchNorm2d(planes * block.expansion, dtype=self._dtype))
        mods = [block(self.inplanes, planes, stride, downsample, dtype=self._dtype)]
        self.inplanes = planes * block.expansion
        mods += [block(self.inplanes, planes, dtype=self._dtype) for _ in range(1, blocks)]
        return Sequential(*mods)

    def forward(self, x: Any) -> Any:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        return self.fc(x.reshape((x.shape[0], -1)))


def resnet18(num_classes: int = 1000, dtype: Any = None) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, dtype)


def resnet34(num_classes: int = 1000, dtype: Any = None) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, dtype)


def resnet50(num_classes: int = 1000, dtype: Any = None) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, dtype)


def resnet101(num_classes: int = 1000, dtype: Any = None) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, dtype)


def resnet152(num_classes: int = 1000, dtype: Any = None) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes, dtype)
