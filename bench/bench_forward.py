"""Forward latency of netc-built modules against hand-written PyTorch, in the same run.

    python bench/bench_forward.py [--batch 8] [--repeat 20] [--threads 2]

The baselines below are written the way torchvision's `models/resnet.py` writes them
(torchvision itself cannot be imported beside this machine's CPU torch build). Each pair
gets the same weights, is checked for equal outputs, then timed alternately; the ratio
netc / hand-written is printed (1.00 = as fast).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import netc  # noqa: E402


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SimpleCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(64 * 8 * 8, 512)
        self.fc2 = nn.Linear(512, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


CASES = {
    "simple_cnn": (lambda: SimpleCNN(), (3, 32, 32)),
    "resnet18": (lambda: ResNet(BasicBlock, [2, 2, 2, 2]), (3, 224, 224)),
    "resnet50": (lambda: ResNet(Bottleneck, [3, 4, 6, 3]), (3, 224, 224)),
}


def timed(model, x, repeat: int) -> list[float]:
    times = []
    with torch.inference_mode():
        for _ in range(repeat):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--specs", nargs="*", default=list(CASES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, "
          f"median of {args.repeat}")
    print(f"{'spec':12} {'hand-written ms':>16} {'netc ms':>9} {'netc/hand':>10}"
          f" {'scripted ms':>12} {'scripted/hand':>14}")
    for stem in args.specs:
        make, shape = CASES[stem]
        hand = make().eval()
        ours = netc.build(ROOT / "specs" / f"{stem}.net").eval()
        ours.load_state_dict(hand.state_dict())
        scripted = torch.jit.script(ours)
        x = torch.randn(args.batch, *shape)
        with torch.inference_mode():
            torch.testing.assert_close(ours(x), hand(x))
        for model in (hand, ours, scripted):  # warm up
            timed(model, x, 3)
        hand_t, ours_t, script_t = [], [], []
        for _ in range(args.repeat):  # interleave to share the machine's noise fairly
            hand_t += timed(hand, x, 1)
            ours_t += timed(ours, x, 1)
            script_t += timed(scripted, x, 1)
        h, o, s = (statistics.median(t) * 1e3 for t in (hand_t, ours_t, script_t))
        print(f"{stem:12} {h:16.2f} {o:9.2f} {o / h:10.3f} {s:12.2f} {s / h:14.3f}")


if __name__ == "__main__":
    main()
