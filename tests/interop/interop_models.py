"""Small nn.Module classes for the interop cases (importable by torch.load).

Files that pickle these modules whole refer to them as `interop_models.<Class>`,
so loading them in Python needs this folder on sys.path (generate.py adds it).
"""

import torch
from torch import nn


class SmallCNN(nn.Module):
    """A tiny conv net with BatchNorm, used for the training checkpoint."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean((2, 3)))


class InteropNet(nn.Module):
    """A module pickled whole, with extra non-module attributes.

    Attributes beyond parameters/buffers/submodules: `anchor` (a tensor),
    `templates` (a list of tensors), `num_classes` (an int).  `fc_alias` is the
    same Parameter as `head.fc.weight` (registered under two names), and
    `proj` has bias=None.
    """

    def __init__(self, num_classes=3):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3)
        self.proj = nn.Linear(4, 4, bias=False)
        self.head = nn.Sequential()
        self.head.add_module("fc", nn.Linear(4, num_classes))
        self.fc_alias = self.head.fc.weight
        self.register_buffer("scale", torch.tensor(0.5))
        self.anchor = torch.randn(3)
        self.templates = [torch.ones(2), torch.arange(6.0).view(2, 3).t()]
        self.num_classes = num_classes

    def forward(self, x):
        x = self.stem(x).mean((2, 3))
        return self.head(self.proj(x)) * self.scale
