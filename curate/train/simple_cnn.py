"""`--arch simple-cnn`: a plain, deeper CNN for small images trained from scratch (contests that forbid
pretrained weights), beside the torchvision models.

Three blocks of [conv3x3-BN-ReLU] x 2 + max-pool + dropout (64, 128, 256 channels), global average
pooling, then dropout + a linear head: the usual CIFAR-style baseline. It takes any input side >= 8 px
(global pooling), and has no ImageNet stem to adapt.
"""

from __future__ import annotations

from torch import nn

NAME = "simple-cnn"
WIDTHS = (64, 128, 256)


def _block(cin: int, cout: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.MaxPool2d(2), nn.Dropout2d(dropout),
    )


class SimpleCNN(nn.Module):
    def __init__(self, num_classes: int = 1000, block_dropout: float = 0.1, dropout: float = 0.3):
        super().__init__()
        chans = (3, *WIDTHS)
        self.features = nn.Sequential(*[_block(a, b, block_dropout) for a, b in zip(chans[:-1], chans[1:], strict=True)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(WIDTHS[-1], num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))
