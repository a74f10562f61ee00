"""oodpipe's Wide-ResNet in PyTorch, and its export to TorchScript.

The networks oodpipe trains (stages/src/model/wrn.rs and head.rs) written with PyTorch's own layers,
names and arithmetic: a 3x3 stem conv to 16 channels, three groups of pre-activation basic blocks
(BN-ReLU-conv3x3-BN-ReLU-conv3x3, widths 16k, 32k, 64k, strides 1, 2, 2, a 1x1 projection fed the
pre-activated input where the shape changes), a final BN-ReLU, a global average pool and one linear
layer to the logits. BN eps 1e-5 as libtorch's. Inputs are float32 [N, 3, 32, 32] in [0, 1]; the
module normalises them with CIFAR-10's per-channel mean and std, as oodpipe does.

In Python, after `oodpipe export train.softmax --out nets/softmax`:

    import torch
    net = torch.jit.load("nets/softmax/network.pt")
    logits = net(images)                 # images: float32 [N, 3, 32, 32] in [0, 1]

or, with this file's definition (nets/softmax/oodpipe_wrn.py):

    from oodpipe_wrn import load
    net = load("nets/softmax/network.safetensors")
    logits = net(images)

`network.pt` keeps oodpipe's import contract (README "Your own network"): `forward(x)` gives the
logits, `features(x)` the pooled penultimate features, and `fc.weight` / `fc.bias` are the final
linear layer (`fc(features(x)) == forward(x)`), so the file can be imported back as a network.

Run as a script, it exports a weights file oodpipe wrote (`model.safetensors` of a `train.softmax`
or `train.bin` stage) to both forms and checks each against the other:

    python oodpipe_wrn.py --weights model.safetensors --depth 10 --widen 1 --out nets/softmax
"""

import argparse
import json
import os
import sys
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

MEAN = (125.3 / 255.0, 123.0 / 255.0, 113.9 / 255.0)
STD = (63.0 / 255.0, 62.1 / 255.0, 66.7 / 255.0)
CLASSES = 10


class Block(nn.Module):
    """One pre-activation basic block; the projection, where there is one, sees the pre-activated input."""

    project: bool

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.project = c_in != c_out or stride != 1
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False) if self.project else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        if self.project:
            return out + self.shortcut(pre)
        return out + x


class WideResNet(nn.Module):
    """WRN-depth-widen without its classifier: normalised images -> pooled features [N, 64 * widen]."""

    def __init__(self, depth: int, widen: int):
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"depth {depth}: a Wide-ResNet's depth is 6n + 4 with n >= 1")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.stem = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        for group in range(3):
            blocks = OrderedDict()
            for i in range(n):
                c_in = widths[group] if i == 0 else widths[group + 1]
                stride = (1 if group == 0 else 2) if i == 0 else 1
                blocks[f"block{i + 1}"] = Block(c_in, widths[group + 1], stride)
            setattr(self, f"group{group + 1}", nn.Sequential(blocks))
        self.bn = nn.BatchNorm2d(widths[3])
        self.feature_dim = widths[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.group3(self.group2(self.group1(self.stem(x))))
        return F.relu(self.bn(h)).mean(dim=(-2, -1))


class Network(nn.Module):
    """oodpipe's softmax (or BIN) network: images in [0, 1] -> logits; `features` gives the pool's output."""

    channels_last: bool

    def __init__(self, depth: int, widen: int, channels_last: bool = True):
        super().__init__()
        self.backbone = WideResNet(depth, widen)
        self.fc = nn.Linear(self.backbone.feature_dim, CLASSES)
        self.register_buffer("mean", torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1))
        self.channels_last = channels_last

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def from_oodpipe(tensors: dict, depth: int, widen: int) -> Network:
    """A Network holding the tensors of an oodpipe weights file (`backbone.*`, `head.fc.*`)."""
    net = Network(depth, widen)
    state = net.state_dict()
    loaded = {}
    for name, value in tensors.items():
        target = "fc." + name[len("head.fc."):] if name.startswith("head.fc.") else name
        if target not in state:
            raise ValueError(f"{name}: no such tensor in a WRN-{depth}-{widen} with one linear head (is it a softmax or BIN network?)")
        if tuple(state[target].shape) != tuple(value.shape):
            raise ValueError(f"{name}: shape {tuple(value.shape)}, the WRN-{depth}-{widen} has {tuple(state[target].shape)}")
        loaded[target] = value.to(torch.float32).contiguous()
    missing = [k for k in state if k not in loaded and not k.endswith("num_batches_tracked") and k not in ("mean", "std")]
    if missing:
        raise ValueError(f"the weights file lacks {missing[:5]}")
    for k in state:
        if k not in loaded:
            loaded[k] = state[k]
    net.load_state_dict(loaded)
    net.eval()
    return net


def load(path: str) -> Network:
    """The network of a `network.safetensors` that `oodpipe export` wrote (depth and widen in its metadata)."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if "depth" not in meta or "widen" not in meta:
        raise ValueError(f"{path}: no depth and widen in its metadata (written by `oodpipe export`?)")
    net = Network(int(meta["depth"]), int(meta["widen"]))
    state = net.state_dict()
    for k in state:
        if k not in tensors:
            tensors[k] = state[k]
    net.load_state_dict(tensors)
    return net.to(memory_format=torch.channels_last).eval()


def export(weights: str, depth: int, widen: int, out: str) -> None:
    """Writes network.safetensors (PyTorch's names, depth and widen as metadata), network.pt
    (TorchScript, the import contract) and this file into `out`, and checks that all three forms
    give the same logits on a seeded batch."""
    from safetensors.torch import load_file, save_file

    net = from_oodpipe(load_file(weights), depth, widen).to(memory_format=torch.channels_last)
    os.makedirs(out, exist_ok=True)
    state = {k: v.contiguous() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, os.path.join(out, "network.safetensors"), metadata={"depth": str(depth), "widen": str(widen), "source": os.path.abspath(weights)})
    scripted = torch.jit.script(net)
    scripted.save(os.path.join(out, "network.pt"))
    with open(__file__, encoding="utf-8") as src, open(os.path.join(out, "oodpipe_wrn.py"), "w", encoding="utf-8") as dst:
        dst.write(src.read())

    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eager = net(x)
        again = load(os.path.join(out, "network.safetensors"))(x)
        reloaded = torch.jit.load(os.path.join(out, "network.pt"))
        script = reloaded(x)
        head = reloaded.fc(reloaded.features(x))
    for name, other in (("network.safetensors", again), ("network.pt", script), ("fc(features(x))", head)):
        diff = (eager - other).abs().max().item()
        if diff > 1e-4:
            raise SystemExit(f"export check: {name} differs from the eager network by {diff:.3g}")
    print(json.dumps({"out": os.path.abspath(out), "depth": depth, "widen": widen, "parameters": sum(p.numel() for p in net.parameters())}))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Export an oodpipe softmax/BIN network to TorchScript and PyTorch safetensors.")
    p.add_argument("--weights", required=True, help="model.safetensors of a train.softmax (or train.bin) stage")
    p.add_argument("--depth", type=int, required=True)
    p.add_argument("--widen", type=int, required=True)
    p.add_argument("--out", required=True, help="folder for network.pt, network.safetensors and oodpipe_wrn.py")
    a = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        export(a.weights, a.depth, a.widen, a.out)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"oodpipe export: {e}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
