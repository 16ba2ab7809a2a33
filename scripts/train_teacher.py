"""Trains the bundled teacher, models/mnist_lenet5.pt: LeNet-5 with BatchNorm (the same layers
and names as dfkd's native `lenet5`) on the first 7,000 MNIST test-split images, scripted to
TorchScript with dfkd metadata (input shape, normalization). Usage: python3 scripts/train_teacher.py"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mnist  # noqa: E402


class LeNet5(nn.Module):
    def __init__(self, width=1.0, classes=10):
        super().__init__()
        c = lambda n: max(1, round(n * width))  # noqa: E731
        self.conv1, self.bn1 = nn.Conv2d(1, c(6), 5, padding=2), nn.BatchNorm2d(c(6))
        self.conv2, self.bn2 = nn.Conv2d(c(6), c(16), 5), nn.BatchNorm2d(c(16))
        self.conv3, self.bn3 = nn.Conv2d(c(16), c(120), 5), nn.BatchNorm2d(c(120))
        self.fc1, self.fc2 = nn.Linear(c(120), c(84)), nn.Linear(c(84), classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


def shift(x, g, pad=2):
    """Random translation by up to `pad` pixels (zero padding), per image."""
    n = x.shape[0]
    xp = F.pad(x, (pad, pad, pad, pad), value=float((0 - mnist.MEAN) / mnist.STD))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = xp[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
    return out


def main(out="models/mnist_lenet5.pt", epochs=30, seed=0):
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    (xtr, ytr), (xte, yte) = mnist.split()
    xtr, ytr, xte, yte = map(torch.from_numpy, (xtr, ytr, xte, yte))
    model = LeNet5()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    g = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), 128):
            idx = perm[i:i + 128]
            loss = F.cross_entropy(model(shift(xtr[idx], g)), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            acc = (model(xte).argmax(1) == yte).float().mean().item()
        print(f"epoch {ep + 1}/{epochs} loss {loss.item():.4f} held-out acc {acc:.4f}", flush=True)
    meta = {"name": "lenet5", "inputShape": [1, 28, 28], "mean": [mnist.MEAN], "std": [mnist.STD], "numClasses": 10,
            "trainedOn": "MNIST test split images 0..6999 (../shared/data/mnist)", "heldOutAccuracy": round(acc, 4)}
    scripted = torch.jit.script(model.eval())
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    torch.jit.save(scripted, out, _extra_files={"dfkd.json": json.dumps(meta)})
    print(f"saved {out}: held-out accuracy {acc:.4f}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
