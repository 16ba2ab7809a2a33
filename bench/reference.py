"""Eager PyTorch-Python reference of dfkd's hot loops, for the speed benchmark (bench/run.mjs speed).

The same loops as native/core, written the way a PyTorch user would: nn.Module models, forward
hooks on the BN modules for the taps, torch.optim. Identical math and hyper-parameters:
  deepinversion, spectral  InputSynthesizer::run + ::loss (synth/input.cpp): Adam on x, cosine lr with
                           warm-up, jitter (torch.roll by offsets in [-j, j] on dims 2, 3), batch flip
                           with p 0.5, CE + bn * sum_l m_l (||mu - rm||_2 + ||var - rv||_2) (biased var
                           over (0, 2, 3), first layer x first_bn_multiplier) or + spectral * sum_l
                           ||E|rfft2(a)| - target||^2 / ||target||^2 (means), + tv_l2 * sum of the 4
                           Frobenius norms of neighbour differences (tv_l1 computed too, as DeepInversion's
                           get_image_prior_losses and ours), + l2 * mean per-image L2 norm; keeps the best batch
  adversarial              job.cpp run_adversarial: studentSteps x (sample G(z) without grad, student
                           step), then one generator step maximizing the L1 teacher-student discrepancy
                           (synth/generator.cpp GeneratorSynth::step); generator = zoo.cpp make_generator;
                           with generator.onehot/activation/entropy/bn > 0 also DAFL's terms (Chen et al.
                           2019, DAFL_train.py: CE to the teacher's own argmax, -mean |penultimate
                           features|, sum p log10 p of the batch-mean prediction) and DeepInversion's BN
                           term (sum over every BN input of ||mu - rm|| + ||var - rv||) on G(z)
  classical                train.cpp student_step: teacher logits without grad, KL at T (x T^2), SGD
                           step with the cosine schedule of Optim
Every loss term is read back with .item() as the native loop does (it reports them). Models are
initialized as the zoo does and every random number is drawn from a torch.Generator with the job's
seed in the native order, so both sides start from the same state and their first losses agree.

Usage:
  python3 bench/reference.py serve                 JSON lines: {"config": {...}} -> result, on stdin/stdout
  python3 bench/reference.py bench '<config json>'  one measurement
  python3 bench/reference.py make-teacher OUT.pt    the scripted ResNet-8 teacher (3x32x32, 10 classes)
Config: as the native "bench" job (native/core/bench.h), plus "teacherArch" ("lenet5" | "resnet8")
and "student" ("lenet5_half" | "resnet8").
"""
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from train_teacher import LeNet5  # noqa: E402  (the same layers and names as the zoo's lenet5)


# ---- models: mirrors of native/core/zoo.cpp (same module names, so state dicts match) ----------

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down_conv, self.down_bn = None, None
        if stride != 1 or cin != cout:
            self.down_conv, self.down_bn = nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.down_conv is not None and self.down_bn is not None:
            shortcut = self.down_bn(self.down_conv(x))
        return F.relu(out + shortcut)


class ResNet8(nn.Module):
    """zoo.cpp resnet("ResNet8", {1, 1, 1}, {16, 32, 64}): 3x3 stem, one BasicBlock per stage, global average pool."""

    def __init__(self, cin=3, classes=10):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
        self.layer1_0 = BasicBlock(16, 16, 1)
        self.layer2_0 = BasicBlock(16, 32, 2)
        self.layer3_0 = BasicBlock(32, 64, 2)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3_0(self.layer2_0(self.layer1_0(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Generator(nn.Module):
    """zoo.cpp make_generator (DFAD's GeneratorA; its last BatchNorm affine with the BN term)."""

    def __init__(self, nz, ngf, shape, affine_out=False):
        super().__init__()
        c, h, w = shape
        self.ngf, self.h0, self.w0 = ngf, h // 4, w // 4
        self.l1 = nn.Linear(nz, 2 * ngf * self.h0 * self.w0)
        self.bn0 = nn.BatchNorm2d(2 * ngf)
        self.conv1, self.bn1 = nn.Conv2d(2 * ngf, 2 * ngf, 3, 1, 1), nn.BatchNorm2d(2 * ngf)
        self.conv2, self.bn2 = nn.Conv2d(2 * ngf, ngf, 3, 1, 1), nn.BatchNorm2d(ngf)
        self.conv3, self.bn3 = nn.Conv2d(ngf, c, 3, 1, 1), nn.BatchNorm2d(c, affine=affine_out)

    def forward(self, z):
        x = self.l1(torch.flatten(z, 1)).view(-1, 2 * self.ngf, self.h0, self.w0)
        x = F.interpolate(self.bn0(x), scale_factor=2.0, mode="nearest")
        x = F.leaky_relu(self.bn1(self.conv1(x)), 0.2)
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = F.leaky_relu(self.bn2(self.conv2(x)), 0.2)
        return self.bn3(torch.tanh(self.conv3(x)))


def make_model(name, shape, classes=10):
    if name == "lenet5":
        return LeNet5(1.0, classes)
    if name == "lenet5_half":
        return LeNet5(0.5, classes)
    if name == "resnet8":
        return ResNet8(shape[0], classes)
    raise ValueError(f"unknown model {name!r}")


def zoo_init(model, g):
    """zoo.cpp's initialization, drawn from `g` in registration order (as make_model/make_generator
    draw from the job's generator): conv weights N(0, 2 / (out k k)), conv biases and linear layers
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)); BatchNorm keeps PyTorch's (weight 1, bias 0, stats 0/1)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                out, cin, k, _ = m.weight.shape
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / (out * k * k)))
                if m.bias is not None:
                    b = 1.0 / math.sqrt(cin * k * k)
                    m.bias.copy_(torch.rand(m.bias.shape, generator=g) * (2 * b) - b)
            elif isinstance(m, nn.Linear):
                b = 1.0 / math.sqrt(m.in_features)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * (2 * b) - b)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * (2 * b) - b)
    return model


DEV = torch.device("cpu")  # bench(cfg) sets it from cfg["device"]; draws stay on the CPU generator


def sync():
    """Waits for the device's queued work (timing on a GPU)."""
    if DEV.type == "cuda":
        torch.cuda.synchronize(DEV)


def zeros():
    return torch.zeros((), device=DEV)


def load_teacher(path, arch, shape):
    """The eager model of `arch` with the weights and buffers of the TorchScript file `path`."""
    m = make_model(arch, shape)
    m.load_state_dict(torch.jit.load(path, map_location="cpu").state_dict())
    m.eval().to(DEV)
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def make_teacher(out, seed=0):
    """A ResNet-8 teacher with non-trivial BN statistics (a few train-mode passes on noise), scripted."""
    torch.manual_seed(seed)
    m = ResNet8()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.momentum = None  # cumulative average
    m.train()
    with torch.no_grad():
        for _ in range(4):
            m(torch.randn(64, 3, 32, 32) * 0.5 + 0.1)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.momentum = 0.1
    m.eval()
    meta = {"name": "resnet8", "inputShape": [3, 32, 32], "numClasses": 10, "note": "random weights, for speed benchmarks"}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    torch.jit.save(torch.jit.script(m), out, _extra_files={"dfkd.json": json.dumps(meta)})


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dt = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U8": np.uint8}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=dt[v["dtype"]]).reshape(v["shape"]).copy())
    return out


# ---- losses: mirrors of native/core/losses.cpp --------------------------------------------------

def kd_kl(s, t, T):
    return F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean") * (T * T)


def discrepancy(kind, s, t, T):
    return (s - t).abs().mean() if kind == "l1" else kd_kl(s, t, T)


def bn_stats(a, rm, rv):
    mean = a.mean([0, 2, 3])
    var = a.var([0, 2, 3], unbiased=False)
    return torch.norm(rv - var, 2) + torch.norm(rm - mean, 2)


def spectrum(a, power=False):
    amp = torch.fft.rfft2(a, dim=(-2, -1), norm="ortho").abs()
    return (amp.pow(2) if power else amp).mean(0)


def tv(x):
    d1 = x[:, :, :, :-1] - x[:, :, :, 1:]
    d2 = x[:, :, :-1, :] - x[:, :, 1:, :]
    d3 = x[:, :, 1:, :-1] - x[:, :, :-1, 1:]
    d4 = x[:, :, :-1, :-1] - x[:, :, 1:, 1:]
    l1 = d1.abs().mean() + d2.abs().mean() + d3.abs().mean() + d4.abs().mean()
    l2 = torch.norm(d1) + torch.norm(d2) + torch.norm(d3) + torch.norm(d4)
    return l1, l2


def l2_prior(x):
    return x.reshape(x.shape[0], -1).norm(2, 1).mean()


# ---- the loops ----------------------------------------------------------------------------------

class Optim:
    """train.cpp Optim: SGD/Adam with the lr schedule set before every step."""

    def __init__(self, params, spec, total):
        self.total = max(total, 1)
        self.lr0 = spec.get("lr", 0.1)
        wd = spec.get("weightDecay", 0.0)
        if spec.get("optimizer", "sgd") == "sgd":
            self.opt = torch.optim.SGD(params, lr=self.lr0, momentum=spec.get("momentum", 0.9), weight_decay=wd)
        else:
            self.opt = torch.optim.Adam(params, lr=self.lr0, betas=tuple(spec.get("betas") or (0.9, 0.999)), weight_decay=wd)
        self.schedule = spec.get("schedule", "cosine")
        self.gamma = spec.get("gamma", 0.1)
        self.milestones = [int(m * self.total) if m < 1 else int(m) for m in spec.get("milestones") or []]
        self.warmup = spec.get("warmup", 0)
        self.lr = self.lr0

    def step_schedule(self, step):
        lr = self.lr0
        if self.warmup > 0 and step < self.warmup:
            lr = self.lr0 * (step + 1) / self.warmup
        elif self.schedule == "cosine":
            t = (step - self.warmup) / max(1, self.total - self.warmup)
            lr = 0.5 * (1 + math.cos(math.pi * min(1.0, t))) * self.lr0
        elif self.schedule == "step":
            for m in self.milestones:
                if step >= m:
                    lr *= self.gamma
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.lr = lr


def student_step(teacher, student, opt, x, y, kind, T, ce_w, step):
    opt.step_schedule(step)
    with torch.no_grad():
        t = teacher(x)
    s = student(x)
    loss = discrepancy(kind, s, t, T)
    parts = {"kd": loss.item()}
    if ce_w > 0 and y is not None:
        ce = F.cross_entropy(s, y)
        parts["ce"] = ce.item()
        loss = loss + ce_w * ce
    parts["student"] = loss.item()
    parts["lr"] = opt.lr
    if not math.isfinite(loss.item()):
        raise FloatingPointError("the student loss is not finite")
    opt.opt.zero_grad()
    loss.backward()
    opt.opt.step()
    return parts


class BNTaps:
    """Forward hooks on every BatchNorm2d of the teacher: their inputs, in module order."""

    def __init__(self, model, names=None):
        self.acts = {}
        self.modules = []
        for name, m in model.named_modules():
            if isinstance(m, nn.BatchNorm2d) and (names is None or name in names):
                self.modules.append((name, m))
                m.register_forward_hook(self._hook(name))

    def _hook(self, name):
        def hook(module, inputs, output):
            self.acts[name] = inputs[0]
        return hook


def synth_config(kind, spec):
    """The full synthesis config: bench/run.mjs sends the method's recipe (the addon's defaults(),
    native/core/methods/) with the speed rows' overrides, so that both sides read the same keys."""
    return dict(spec or {})


def bench_synth(cfg, teacher, shape, classes, g):
    kind, batch = cfg["kind"], cfg["batchSize"]
    warmup, iters = cfg.get("warmup", 3), cfg["iterations"]
    total_iters = warmup + iters
    c = synth_config(kind, cfg.get("synth"))
    targets = {}
    if kind == "spectral":
        st = read_safetensors(cfg["stats"])
        for k, v in st.items():
            if k.endswith(".amplitude"):
                name = k[: -len(".amplitude")]
                targets[name] = (st[name + ".power"] if c["spectrum"] == "power" and name + ".power" in st else v).to(DEV)
    taps = BNTaps(teacher, set(targets) if kind == "spectral" else None)
    if kind == "spectral" and len(taps.modules) != len(targets):
        raise ValueError("the stats file's spectra are not all BN inputs of the teacher")
    weights = cfg.get("synth", {}).get("layerWeights") or [1.0] * len(taps.modules)

    def loss(x, y):
        parts = {}
        logits = teacher(x)
        total = zeros()

        def add(name, w, term):
            nonlocal total
            parts[name] = term.item()
            total = total + w * term

        if c["ce"] > 0:
            add("ce", c["ce"], F.cross_entropy(logits, y))
        if c["bn"] > 0:
            bn = zeros()
            for i, (name, m) in enumerate(taps.modules):
                mult = c["firstBnMultiplier"] if i == 0 else 1.0
                bn = bn + mult * bn_stats(taps.acts[name], m.running_mean, m.running_var)
            add("bn", c["bn"], bn)
        if c["spectral"] > 0:
            f = zeros()
            for w, (name, _) in zip(weights, taps.modules):
                tgt = targets[name]
                f = f + w * (spectrum(taps.acts[name], c["spectrum"] == "power") - tgt).pow(2).mean() / tgt.pow(2).mean()
            add("spectral", c["spectral"], f)
        if c["tvL1"] > 0 or c["tvL2"] > 0:
            l1, l2 = tv(x)
            if c["tvL1"] > 0:
                add("tvL1", c["tvL1"], l1)
            if c["tvL2"] > 0:
                add("tvL2", c["tvL2"], l2)
        if c["l2"] > 0:
            add("l2", c["l2"], l2_prior(x))
        parts["total"] = total.item()
        return total, parts

    y = torch.arange(batch) % classes
    y = y[torch.randperm(batch, generator=g)].to(DEV)
    x = torch.randn([batch, *shape], generator=g).to(DEV).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=c["lr"], betas=tuple(c["betas"]))
    best, best_loss = None, math.inf
    first = last = None
    t0 = time.perf_counter()
    for it in range(total_iters):
        if it == warmup:
            sync()
            t0 = time.perf_counter()
        if c["lrSchedule"] == "cosine":
            warm = min(100, total_iters // 10)
            lr = c["lr"] * (it + 1) / warm if it < warm else \
                0.5 * (1 + math.cos(math.pi * (it - warm) / max(1, total_iters - warm))) * c["lr"]
            for pg in opt.param_groups:
                pg["lr"] = lr
        xin = x
        if c["jitter"] > 0:
            off = torch.randint(-c["jitter"], c["jitter"] + 1, (2,), generator=g)
            xin = torch.roll(xin, (int(off[0]), int(off[1])), (2, 3))
        if c["flip"] and torch.rand(1, generator=g).item() < 0.5:
            xin = xin.flip(3)
        opt.zero_grad()
        total, parts = loss(xin, y)
        if not math.isfinite(parts["total"]):
            raise FloatingPointError("the synthesis loss is not finite")
        if parts["total"] < best_loss:
            best_loss, best = parts["total"], x.detach().clone()
        total.backward()
        opt.step()
        if c["clip"] > 0:
            with torch.no_grad():
                x.clamp_(-c["clip"], c["clip"])
        first = first or parts
        last = parts
    sync()
    return time.perf_counter() - t0, first, last


def bench_student(cfg, teacher, shape, classes, g):
    kind, batch = cfg["kind"], cfg["batchSize"]
    warmup, iters = cfg.get("warmup", 3), cfg["iterations"]
    total_iters = warmup + iters
    t = cfg.get("train", {})
    T, ce_w, loss_kind = t.get("temperature", 4.0), t.get("ceWeight", 0.0), t.get("loss", "kl")
    # The same draws in the same order as bench.cpp: student weights, then (classical) the data pool or
    # (adversarial) the generator's weights, then the loop's draws; so the first losses must agree.
    student = zoo_init(make_model(cfg.get("student", "lenet5_half"), shape, classes), g).train().to(DEV)
    first = last = None
    t0 = time.perf_counter()
    if kind == "classical":
        pool = torch.randn([4 * batch, *shape], generator=g).to(DEV)
        labels = torch.randint(0, classes, (4 * batch,), generator=g).to(DEV)
        opt = Optim(list(student.parameters()), t, total_iters)
        for step in range(total_iters):
            if step == warmup:
                sync()
                t0 = time.perf_counter()
            idx = torch.randint(0, 4 * batch, (batch,), generator=g).to(DEV)
            last = student_step(teacher, student, opt, pool.index_select(0, idx), labels.index_select(0, idx),
                                loss_kind, T, ce_w, step)
            first = first or last
        sync()
        return time.perf_counter() - t0, first, last
    # adversarial (DFAD): generator + student
    ns = cfg.get("adversarial", {}).get("studentSteps", 5)
    gs = cfg.get("generator", {})
    nz = gs.get("nz", 100)
    G = zoo_init(Generator(nz, gs.get("ngf", 64), shape, affine_out=gs.get("bn", 0.0) > 0), g).train().to(DEV)
    gopt = Optim(list(G.parameters()), {"optimizer": gs.get("optimizer", "adam"), "lr": gs.get("lr", 1e-3),
                                        "betas": gs.get("betas"), "schedule": gs.get("schedule", "none"),
                                        "milestones": gs.get("milestones"), "gamma": gs.get("gamma", 0.1)}, total_iters)
    gloss, adv = gs.get("loss", "l1"), gs.get("adversarial", 1.0)
    w_onehot, w_act, w_ent, w_bn = (gs.get(k, 0.0) for k in ("onehot", "activation", "entropy", "bn"))
    # Taps for the BN term (every BatchNorm2d input) and the activation term (the last linear
    # layer's input, dfkd's "penultimate" tap), as GeneratorSynth reads them from the tapped graph.
    bn_taps = BNTaps(teacher) if w_bn > 0 else None
    penultimate = {}
    if w_act > 0:
        last_linear = [m for m in teacher.modules() if isinstance(m, nn.Linear)][-1]
        last_linear.register_forward_pre_hook(lambda m, inp: penultimate.__setitem__("x", inp[0]))
    opt = Optim(list(student.parameters()), t, total_iters * ns)
    for it in range(total_iters):
        if it == warmup:
            sync()
            t0 = time.perf_counter()
        for j in range(ns):
            with torch.no_grad():
                x = G(torch.randn(batch, nz, generator=g).to(DEV))
            last = student_step(teacher, student, opt, x, None, loss_kind, T, ce_w, it * ns + j)
        # GeneratorSynth::step
        gopt.step_schedule(it)
        x = G(torch.randn(batch, nz, generator=g).to(DEV))
        tl = teacher(x)
        total = zeros()

        def add(name, w, term):
            nonlocal total
            last["g_" + name] = term.item()
            total = total + w * term

        if adv > 0:
            add("discrepancy", -adv, discrepancy(gloss, student(x), tl, T))
        if w_onehot > 0:
            add("onehot", w_onehot, F.cross_entropy(tl, tl.argmax(1)))
        if w_act > 0:
            add("activation", w_act, -penultimate["x"].abs().mean())
        if w_ent > 0:
            p = F.softmax(tl, 1).mean(0)
            add("entropy", w_ent, (p * torch.log10(p + 1e-12)).sum())
        if w_bn > 0:
            bn = zeros()
            for name, m in bn_taps.modules:
                bn = bn + bn_stats(bn_taps.acts[name], m.running_mean, m.running_var)
            add("bn", w_bn, bn)
        last["g_generator"] = total.item()
        if not math.isfinite(total.item()):
            raise FloatingPointError("the generator loss is not finite")
        gopt.opt.zero_grad()
        total.backward()
        gopt.opt.step()
        first = first or dict(last)
    sync()
    return time.perf_counter() - t0, first, last


def bench(cfg):
    global DEV
    DEV = torch.device(cfg.get("device", "cpu"))
    if "threads" in cfg:
        torch.set_num_threads(int(cfg["threads"]))
    g = torch.Generator().manual_seed(int(cfg.get("seed", 0)))
    torch.manual_seed(int(cfg.get("seed", 0)))
    meta_shape = cfg.get("inputShape")
    if not meta_shape:
        extra = {"dfkd.json": ""}
        torch.jit.load(cfg["teacher"], map_location="cpu", _extra_files=extra)
        meta_shape = json.loads(extra["dfkd.json"])["inputShape"]
    shape = list(meta_shape)
    teacher = load_teacher(cfg["teacher"], cfg.get("teacherArch", "lenet5"), shape)
    with torch.no_grad():
        classes = teacher(torch.zeros([2, *shape], device=DEV)).shape[1]
    kind = cfg["kind"]
    if kind in ("deepinversion", "spectral"):
        secs, first, last = bench_synth(cfg, teacher, shape, classes, g)
    elif kind in ("classical", "adversarial"):
        secs, first, last = bench_student(cfg, teacher, shape, classes, g)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    iters, batch = cfg["iterations"], cfg["batchSize"]
    return {"kind": kind, "batchSize": batch, "iterations": iters, "warmup": cfg.get("warmup", 3), "seconds": secs,
            "itersPerSec": iters / secs, "imagesPerSec": iters * batch / secs, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": str(DEV), "firstLosses": first, "lastLosses": last}


def main(argv):
    if len(argv) >= 2 and argv[0] == "make-teacher":
        make_teacher(argv[1])
        print(json.dumps({"path": argv[1]}))
    elif len(argv) >= 2 and argv[0] == "bench":
        print(json.dumps(bench(json.loads(argv[1]))))
    elif argv and argv[0] == "serve":
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                out = {"ok": True, "result": bench(json.loads(line)["config"])}
            except Exception as e:  # reported to the driver, which fails the row
                out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
