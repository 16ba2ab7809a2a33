"""Makes the tiny test fixtures under test/fixtures/ (deterministic, a few seconds on CPU).
Usage: python3 scripts/make_fixtures.py [outdir]"""
import copy
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test", "fixtures")
VERSION = "6"  # bump when fixtures change


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class TinyBN(nn.Module):
    """Nested submodules with BN: 1x8x8 -> 3 classes."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(Block(1, 4), nn.MaxPool2d(2), Block(4, 8))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = self.features(x)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class TinyNoBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InputBN(nn.Module):
    """BatchNorm on the input itself (1x8x8 -> 3 classes): its BN tap is the loaded, normalized
    image, so `dfkd stats` of this model reads back what a dataset loader produced."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(1)
        self.fc = nn.Linear(64, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.bn(x), 1))


class Softmaxed(nn.Module):
    """A classifier whose forward ends in a softmax (or log_softmax): what many users' models return."""

    def __init__(self, net, log):
        super().__init__()
        self.net, self.log = net, log

    def forward(self, x):
        z = self.net(x)
        return F.log_softmax(z, 1) if self.log else F.softmax(z, 1)


class DictOutput(nn.Module):
    """A forward that returns a dict (Hugging Face style): {"logits", "features"}, or no "logits"."""

    def __init__(self, net, named):
        super().__init__()
        self.net, self.named = net, named

    def forward(self, x) -> dict[str, torch.Tensor]:
        z = self.net(x)
        return {"logits": z, "features": x.flatten(1)} if self.named else {"a": z, "b": z}


class NoRunningStats(nn.Module):
    """BatchNorm with track_running_stats=False: it normalizes by each batch's moments, nothing stored."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4, track_running_stats=False)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(F.relu(self.bn(self.conv(x))), 1), 1))


class BadOutput(nn.Module):
    def forward(self, x):
        return x.mean(1)  # [N, H, W]: not 2-D logits


class ResBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class SmallResNet(nn.Module):
    """A CIFAR-style ResNet (3x32x32 -> 10) with nested layers, for taps on traced modules."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8)
        self.layer1 = nn.Sequential(ResBlock(8, 8, 1))
        self.layer2 = nn.Sequential(ResBlock(8, 16, 2))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def blobs(n, seed):
    """3-class toy images 1x8x8: a bright blob in one of three places, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = 0.3 * torch.randn(n, 1, 8, 8, generator=g)
    for i in range(n):
        r, c = [(1, 1), (1, 5), (5, 3)][int(y[i])]
        x[i, 0, r:r + 2, c:c + 2] += 2.0
    return x, y


def train(model, x, y, steps=150):
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    model.train()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def save(m, name, meta=None):
    torch.jit.save(m, os.path.join(OUT, name), _extra_files={"dfkd.json": json.dumps(meta)} if meta else {})


def write_idx(path, arr, gz=False):
    arr = np.ascontiguousarray(arr.astype(np.uint8))
    header = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    data = header + arr.tobytes()
    with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    stamp = os.path.join(OUT, "VERSION")
    if os.path.exists(stamp) and open(stamp).read() == VERSION:
        print(f"fixtures up to date in {OUT}")
        return
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x, y = blobs(600, 1)
    meta = {"inputShape": [1, 8, 8], "numClasses": 3}

    bn = TinyBN()
    acc = train(bn, x, y)
    save(torch.jit.script(bn), "tiny_bn.pt", meta)
    save(torch.jit.trace(bn, x[:4]), "tiny_bn_traced.pt", meta)
    save(torch.jit.script(bn), "tiny_bn_nometa.pt")
    save(torch.jit.script(Softmaxed(bn, False)), "tiny_bn_softmax.pt", meta)
    save(torch.jit.script(Softmaxed(bn, True)), "tiny_bn_logsoftmax.pt", meta)
    save(torch.jit.script(copy.deepcopy(bn)).half(), "tiny_bn_half.pt", meta)
    save(torch.jit.script(DictOutput(bn, True)), "tiny_bn_dict.pt", meta)
    save(torch.jit.script(DictOutput(bn, False)), "tiny_bn_dict_nologits.pt", meta)
    nobn = TinyNoBN()
    acc_nobn = train(nobn, x, y)
    save(torch.jit.script(nobn), "tiny_nobn.pt", meta)
    save(torch.jit.script(BadOutput()), "bad_output.pt", meta)
    res = SmallResNet().eval()
    save(torch.jit.trace(res, torch.randn(2, 3, 32, 32)), "resnet_traced.pt", {"inputShape": [3, 32, 32], "numClasses": 10})
    save(torch.jit.script(res), "resnet_scripted.pt", {"inputShape": [3, 32, 32], "numClasses": 10})

    # broken model files
    raw = open(os.path.join(OUT, "tiny_bn.pt"), "rb").read()
    open(os.path.join(OUT, "truncated.pt"), "wb").write(raw[: len(raw) // 2])
    open(os.path.join(OUT, "random.pt"), "wb").write(np.random.default_rng(0).bytes(4096))
    open(os.path.join(OUT, "not_torchscript.pt"), "wb").write(b"def forward(x): return x\n")

    # datasets: .npy (float32 images, int64 labels), IDX (uint8, gz and plain), corrupt variants
    xt, yt = blobs(300, 2)
    np.save(os.path.join(OUT, "blobs_x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(OUT, "blobs_y.npy"), y.numpy().astype(np.int64))
    np.save(os.path.join(OUT, "blobs_test_x.npy"), xt.numpy().astype(np.float32))
    np.save(os.path.join(OUT, "blobs_test_y.npy"), yt.numpy().astype(np.int64))
    np.save(os.path.join(OUT, "blobs_y_short.npy"), y.numpy()[:100].astype(np.int64))
    np.save(os.path.join(OUT, "complex.npy"), np.zeros((4, 1, 8, 8), dtype=np.complex64))
    img8 = np.clip((x.numpy()[:, 0] + 1) * 60, 0, 255)
    write_idx(os.path.join(OUT, "blobs-images-idx3-ubyte"), img8)
    write_idx(os.path.join(OUT, "blobs-images-idx3-ubyte.gz"), img8, gz=True)
    write_idx(os.path.join(OUT, "blobs-labels-idx1-ubyte.gz"), y.numpy(), gz=True)
    lie = bytearray(open(os.path.join(OUT, "blobs-images-idx3-ubyte"), "rb").read())
    lie[4:8] = struct.pack(">I", 100000)  # header claims 100,000 images
    open(os.path.join(OUT, "lying-images-idx3-ubyte"), "wb").write(bytes(lie))
    gz = open(os.path.join(OUT, "blobs-images-idx3-ubyte.gz"), "rb").read()
    open(os.path.join(OUT, "truncated-images-idx3-ubyte.gz"), "wb").write(gz[: len(gz) // 2])

    torch.manual_seed(4)  # after every other fixture: they keep their values
    save(torch.jit.script(InputBN().eval()), "input_bn.pt", meta)
    torch.manual_seed(5)
    norun = NoRunningStats()
    train(norun, x, y)
    save(torch.jit.script(norun), "tiny_norunningstats.pt", meta)

    open(stamp, "w").write(VERSION)
    print(f"fixtures in {OUT}: tiny_bn train acc {acc:.3f}, tiny_nobn {acc_nobn:.3f}")


if __name__ == "__main__":
    main()
