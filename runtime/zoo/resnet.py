"""torchvision ResNet-18/50 (v1.5: the stride sits on the 3x3 conv), BatchNormalization left unfused."""

from __future__ import annotations

import onnx

from .builder import Builder, check_opset, pair

_LAYERS = {"resnet18": ("basic", [2, 2, 2, 2]), "resnet50": ("bottleneck", [3, 4, 6, 3])}
# The last BN of each residual branch starts small (as zero_init_residual would, but not zero),
# so the residual sums keep activations near unit scale through all blocks.
_BRANCH_GAMMA = (0.2, 0.4)


def _conv_bn(b: Builder, x: str, conv: str, bn: str, cin: int, cout: int, k: int, stride: int = 1,
             relu: str | None = None, gamma: tuple[float, float] = (0.8, 1.2)) -> str:
    """Conv(no bias) + BatchNormalization, then a Relu named by scope ``relu`` when given."""
    y = b.conv(x, conv, cin, cout, k, stride=stride, pad=k // 2, bias=False)
    y = b.batchnorm(y, bn, cout, gamma)
    return b.op("Relu", [y], relu) if relu is not None else y


def _block(b: Builder, x: str, scope: str, kind: str, cin: int, planes: int, stride: int) -> tuple[str, int]:
    s, path = scope, "/" + scope.replace(".", "/")
    if kind == "basic":
        cout = planes
        y = _conv_bn(b, x, f"{s}.conv1", f"{s}.bn1", cin, planes, 3, stride, relu=f"{path}/relu")
        y = _conv_bn(b, y, f"{s}.conv2", f"{s}.bn2", planes, planes, 3, gamma=_BRANCH_GAMMA)
    else:
        cout = planes * 4
        y = _conv_bn(b, x, f"{s}.conv1", f"{s}.bn1", cin, planes, 1, relu=f"{path}/relu")
        y = _conv_bn(b, y, f"{s}.conv2", f"{s}.bn2", planes, planes, 3, stride, relu=f"{path}/relu_1")
        y = _conv_bn(b, y, f"{s}.conv3", f"{s}.bn3", planes, cout, 1, gamma=_BRANCH_GAMMA)
    identity = x
    if stride != 1 or cin != cout:
        identity = _conv_bn(b, x, f"{s}.downsample.0", f"{s}.downsample.1", cin, cout, 1, stride)
    y = b.op("Add", [y, identity], path)
    return b.op("Relu", [y], f"{path}/relu_{1 if kind == 'basic' else 2}"), cout


def _resnet(name: str, size: int | tuple[int, int], batch: int, seed: int, opset: int,
            num_classes: int) -> onnx.ModelProto:
    check_opset(opset, 11)
    kind, counts = _LAYERS[name]
    h, w = pair(size)
    b = Builder(name, opset=opset, seed=seed)
    x = b.input("input", [batch, 3, h, w])
    y = _conv_bn(b, x, "conv1", "bn1", 3, 64, 7, 2, relu="/relu")
    y = b.op("MaxPool", [y], "/maxpool", ceil_mode=0, kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])
    c = 64
    for i, (planes, n) in enumerate(zip([64, 128, 256, 512], counts), start=1):
        for j in range(n):
            y, c = _block(b, y, f"layer{i}.{j}", kind, c, planes, 2 if (j == 0 and i > 1) else 1)
    y = b.op("GlobalAveragePool", [y], "/avgpool")
    y = b.op("Flatten", [y], "", axis=1)
    b.gemm(y, "fc", c, num_classes, out="output")
    b.output("output", [batch, num_classes])
    return b.model(f"{name}: torchvision ResNet, BatchNormalization unfused",
                   {"size": [h, w], "batch": batch, "seed": seed, "opset": opset, "num_classes": num_classes})


def resnet18(*, size: int | tuple[int, int] = 224, batch: int = 1, seed: int = 0, opset: int = 11,
             num_classes: int = 1000) -> onnx.ModelProto:
    """ResNet-18 (11.7M parameters)."""
    return _resnet("resnet18", size, batch, seed, opset, num_classes)


def resnet50(*, size: int | tuple[int, int] = 224, batch: int = 1, seed: int = 0, opset: int = 11,
             num_classes: int = 1000) -> onnx.ModelProto:
    """ResNet-50 (25.6M parameters)."""
    return _resnet("resnet50", size, batch, seed, opset, num_classes)
