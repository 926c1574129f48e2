"""SmallCnn as bridge/libtorch/examples/example_models.{h,cc} define it in C++.

The same modules registered in the same order (conv1, bn1, conv2, drop, fc) give the same
state-dict keys, and the same forward (same ATen ops in the same order) gives the same values:
a state dict written by either side loads strictly into the other and computes the same output.
"""

from torch import nn
from torch.nn import functional as F


class SmallCnn(nn.Module):
    """conv(1->c, 3x3) - BatchNorm - ReLU - maxpool 2 - conv(c->2c, 3x3) - ReLU - maxpool 2 -
    dropout - linear(2c * (side/4)^2 -> classes). Input: N x 1 x side x side."""

    def __init__(self, channels=8, classes=10, side=16, dropout=0.25):
        super().__init__()
        if side % 4 != 0:
            raise ValueError("'side' must be a multiple of 4")
        self.hparams = {"channels": channels, "classes": classes, "side": side, "dropout": dropout}
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * channels * (side // 4) * (side // 4), classes)

    @classmethod
    def from_hparams(cls, hparams):
        """From the C++ side's JSON hyper-parameters (missing keys take the defaults)."""
        return cls(**hparams)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(self.drop(x.flatten(1)))
