"""Small TorchScript networks written in PyTorch, outside oodpipe's model code, for the tests of
`[networks.<name>]` (tests/it/network.rs) and the README's "Your own network":

    python tests/torch/make_networks.py OUT_DIR

writes into OUT_DIR
- resnet.pt: a ResNet-style CIFAR-10 classifier (a stem, two residual stages, BN, global pooling,
  `fc`), randomly initialised from seed 0, that keeps the contract: forward(x) -> logits [N, 10]
  for x in [0, 1] (it normalises itself), features(x) -> [N, 32], fc(features(x)) == forward(x);
- classes100.pt: the same with 100 classes;
- size64.pt: a network that only takes 64 x 64 images;
- nofeatures.pt: one without a `features` method;
- notfcinput.pt: one whose `features` are not what its `fc` reads;
- junk.pt: bytes that are not TorchScript.
"""

import os
import sys

import torch
import torch.nn.functional as F
from torch import nn


class Residual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.skip(x))


class ResNet(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1))
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1 = Residual(16, 16, 1)
        self.layer2 = Residual(16, 32, 2)
        self.fc = nn.Linear(32, classes)

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layer2(self.layer1(self.stem((x - self.mean) / self.std)))
        return h.mean(dim=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class Size64(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3 * 64 * 64, 16)
        self.fc = nn.Linear(16, 10)

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x.reshape(x.shape[0], 3 * 64 * 64)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class NoFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(-2, -1)))


class NotFcInput(ResNet):
    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer2(self.layer1(self.stem((x - self.mean) / self.std))).mean(dim=(-2, -1)) * 2.0 + 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layer2(self.layer1(self.stem((x - self.mean) / self.std)))
        return self.fc(h.mean(dim=(-2, -1)))


def save(net: nn.Module, path: str) -> None:
    torch.jit.script(net.eval()).save(path)


def main(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    save(ResNet(), os.path.join(out, "resnet.pt"))
    torch.manual_seed(0)
    save(ResNet(classes=100), os.path.join(out, "classes100.pt"))
    save(Size64(), os.path.join(out, "size64.pt"))
    save(NoFeatures(), os.path.join(out, "nofeatures.pt"))
    torch.manual_seed(0)
    save(NotFcInput(), os.path.join(out, "notfcinput.pt"))
    with open(os.path.join(out, "junk.pt"), "wb") as f:
        f.write(b"these bytes are not a TorchScript archive\n")


if __name__ == "__main__":
    main(sys.argv[1])
