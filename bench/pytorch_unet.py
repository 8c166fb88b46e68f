#!/usr/bin/python3
"""The PyTorch baseline of bench/unet_bench.sh: s2crop's U-Net (src/nn/unet.cpp) written the idiomatic PyTorch way
(h5py, TensorDataset + DataLoader, nn.CrossEntropyLoss(ignore_index=255), torch.optim.AdamW), with the same layer
shapes and parameter names, so that an s2crop model file loads into it with load_state_dict(strict=True).

  train PATCHES.h5 --epochs E --batch-size B --threads T   prints "pytorch epoch throughput: X patches/s (Y pixels/s)"
  parity PATCHES.h5 --init INIT.h5 --stepped STEP.h5 --step-log STEPS.tsv
        INIT.h5: an s2crop U-Net trained with --lr 0 (its initial weights); STEP.h5 and STEPS.tsv: one full-batch step
        of the same run with the default lr. Checks names and shapes, the seeded initialisation, the normalisation,
        the first-step loss and the parameters after one AdamW step. Exit status 1 when a check fails.
  infer COMPOSITES.h5 MODEL.h5 --window 128 --overlap 32 --threads T [--tiles T1,T2] [--compare MAP.h5]
        blended sliding windows as s2crop segment predict (include/s2crop/infer/sliding_windows.hpp): each window
        alone, softmax probabilities weighted by raised-cosine ramps over the overlap, argmax.
        prints "pytorch inference: X pixels/s"
"""
import argparse
import math
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NO_DATA = -32768
NO_LABEL = 255


def strings(v):
    return [s.decode() if isinstance(s, bytes) else str(s) for s in v]


def attr_str(a):
    return a.decode() if isinstance(a, bytes) else str(a)


# ---- the network (names as in src/nn/unet.cpp: encoder.levels.L.conv1, decoder.up0.transpose, head, ...)

class Norm2d(nn.Module):
    def __init__(self, spec, channels):
        super().__init__()
        if spec["norm"] == "batch":
            self.bn = nn.BatchNorm2d(channels)
        elif spec["norm"] == "group":
            groups = min(spec["groups"], channels)
            while channels % groups:
                groups -= 1
            self.gn = nn.GroupNorm(groups, channels)

    def forward(self, x):
        if hasattr(self, "bn"):
            return self.bn(x)
        if hasattr(self, "gn"):
            return self.gn(x)
        return x


def conv(cin, cout, kernel, stride, bias):
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=bias)


class ConvBlock(nn.Module):
    def __init__(self, spec, cin, cout):
        super().__init__()
        bias = spec["norm"] == "none"
        self.conv1 = conv(cin, cout, 3, 1, bias)
        self.norm1 = Norm2d(spec, cout)
        self.conv2 = conv(cout, cout, 3, 1, bias)
        self.norm2 = Norm2d(spec, cout)

    def forward(self, x):
        return F.relu(self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x))))))


class BasicBlock(nn.Module):
    def __init__(self, spec, cin, cout, stride):
        super().__init__()
        bias = spec["norm"] == "none"
        self.conv1 = conv(cin, cout, 3, stride, bias)
        self.norm1 = Norm2d(spec, cout)
        self.conv2 = conv(cout, cout, 3, 1, bias)
        self.norm2 = Norm2d(spec, cout)
        if stride != 1 or cin != cout:
            self.project = conv(cin, cout, 1, stride, bias)
            self.project_norm = Norm2d(spec, cout)

    def forward(self, x):
        y = self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))
        shortcut = self.project_norm(self.project(x)) if hasattr(self, "project") else x
        return F.relu(y + shortcut)


class Encoder(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.plain = spec["encoder"] == "plain"
        ch = lambda l: spec["width"] << l
        self.levels = nn.ModuleList()
        for l in range(spec["depth"] + 1):
            cin, cout = spec["in_channels"] if l == 0 else ch(l - 1), ch(l)
            if self.plain:
                self.levels.append(ConvBlock(spec, cin, cout))
            else:
                self.levels.append(nn.Sequential(*[BasicBlock(spec, cin if b == 0 else cout, cout,
                                                              2 if b == 0 and l > 0 else 1)
                                                   for b in range(spec["blocks"])]))

    def forward(self, x):
        features = []
        for l, level in enumerate(self.levels):
            if self.plain and l > 0:
                x = F.max_pool2d(x, 2)
            x = level(x)
            features.append(x)
        return features


class Upsample(nn.Module):
    def __init__(self, spec, cin, cout):
        super().__init__()
        if spec["upsampling"] == "transpose":
            self.transpose = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        else:
            self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        if hasattr(self, "transpose"):
            return self.transpose(x)
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))


class Decoder(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.depth = spec["depth"]
        for k in range(self.depth):
            c = spec["width"] << (self.depth - k - 1)
            self.add_module(f"up{k}", Upsample(spec, 2 * c, c))
            self.add_module(f"block{k}", ConvBlock(spec, 2 * c, c))

    def forward(self, features):
        y = features[-1]
        for k in range(self.depth):
            y = getattr(self, f"block{k}")(torch.cat([getattr(self, f"up{k}")(y), features[-2 - k]], 1))
        return y


def pad_axis(x, dim, before, after):
    while before > 0 or after > 0:
        size = x.shape[dim]
        pad = lambda b, a: (b, a, 0, 0) if dim == 3 else (0, 0, b, a)
        if size == 1:
            return F.pad(x, pad(before, after), mode="replicate")
        b, a = min(before, size - 1), min(after, size - 1)
        x = F.pad(x, pad(b, a), mode="reflect")
        before, after = before - b, after - a
    return x


class UNet(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.multiple = 1 << spec["depth"]
        self.encoder = Encoder(spec)
        self.decoder = Decoder(spec)
        self.dropout = nn.Dropout2d(spec["dropout"]) if spec["dropout"] > 0 else None
        self.head = nn.Conv2d(spec["width"], spec["outputs"], 1)

    def forward(self, x):
        h, w = x.shape[2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        top, left = ph // 2, pw // 2
        if ph or pw:
            x = pad_axis(pad_axis(x, 2, top, ph - top), 3, left, pw - left)
        features = self.encoder(x)
        if self.dropout is not None:
            features[-1] = self.dropout(features[-1])
        y = self.decoder(features)
        if self.dropout is not None:
            y = self.dropout(y)
        y = self.head(y)
        return y[:, :, top:top + h, left:left + w]


def spec_from_model(m):
    a = m.attrs
    return dict(in_channels=int(a["unet_in_channels"]), outputs=int(a["unet_outputs"]), depth=int(a["unet_depth"]),
                width=int(a["unet_width"]), norm=attr_str(a["unet_norm"]), groups=int(a["unet_groups"]),
                encoder=attr_str(a["unet_encoder"]), blocks=int(a["unet_blocks"]),
                upsampling=attr_str(a["unet_upsampling"]), dropout=float(np.ravel(a["unet_dropout"])[0]),
                months=[int(v) for v in np.ravel(a["unet_months"])], task=attr_str(a["unet_task"]))


def load_model(path):
    with h5py.File(path, "r") as m:
        spec = spec_from_model(m)
        bands = strings(m.attrs["bands"])
        mean = np.array(m.attrs["feature_mean"], np.float32)
        std = np.array(m.attrs["feature_std"], np.float32)
        params = {k: torch.from_numpy(v[()]) for k, v in m["parameters"].items()}
        buffers = {k: torch.from_numpy(v[()]) for k, v in m["buffers"].items()} if "buffers" in m else {}
    model = UNet(spec)
    state = dict(params)
    for k, v in buffers.items():  # batch norm: num_batches_tracked is stored as one float
        state[k] = v.reshape(model.state_dict()[k].shape).to(model.state_dict()[k].dtype)
    model.load_state_dict(state, strict=True)
    return model, spec, bands, mean, std, params


# ---- input: ImageInputMap (channels [month][band], (reflectance x 1e-4 - mean) / std, no data -> 0)

def raw_channels(x, source_bands, bands, months):
    """int16 [..., 12][band][H][W] -> float32 [..., channel][H][W] reflectance x 1e-4 (no data 0), channels
    [month][band] over the model's months and bands, plus the no-data mask."""
    idx = [source_bands.index(b) for b in bands]
    if months != list(range(x.shape[-4])):
        x = x[..., months, :, :, :]
    if idx != list(range(x.shape[-3])):
        x = x[..., idx, :, :]
    x = x.reshape(x.shape[:-4] + (x.shape[-4] * x.shape[-3],) + x.shape[-2:])
    nodata = x == NO_DATA
    raw = x.astype(np.float32)
    raw *= np.float32(1e-4)
    raw[nodata] = 0
    return raw, nodata


def normalise(raw, nodata, mean, std, channel_axis):
    """In place: (raw - mean) / std per channel, no data 0."""
    shape = [1] * raw.ndim
    shape[channel_axis] = -1
    raw -= mean.reshape(shape)
    raw *= (np.float32(1) / std).reshape(shape)
    raw[nodata] = 0
    return raw


def channel_stats(raw):
    """Mean and std per channel over the non-zero values of [n][C][H][W] (as load_patch_inputs in src/train/patches.cpp: zeros are no data)."""
    axes = (0, 2, 3)
    count = np.maximum(np.count_nonzero(raw, axis=axes), 1)
    mean = raw.sum(axis=axes, dtype=np.float64) / count
    var = np.maximum(np.square(raw).sum(axis=axes, dtype=np.float64) / count - mean * mean, 0)
    return mean.astype(np.float32), np.maximum(np.sqrt(var), 1e-6).astype(np.float32)


def load_patches(path):
    with h5py.File(path, "r") as f:
        x = f["x"][()]
        labels = f["labels"][:, 0]  # crop_type layer, 255 = no label
        bands = strings(f.attrs["bands"])
        classes = strings(f.attrs["class_names"])
    raw, nodata = raw_channels(x, bands, bands, list(range(12)))
    return raw, nodata, labels.astype(np.int64), bands, classes


def default_spec(a, in_channels, outputs):
    return dict(in_channels=in_channels, outputs=outputs, depth=a.depth, width=a.width, norm=a.norm, groups=8,
                encoder=a.encoder, blocks=2, upsampling="transpose", dropout=0.0, months=list(range(12)),
                task="multiclass")


# ---- training

def train(a):
    t0 = time.perf_counter()
    raw, nodata, y, bands, classes = load_patches(a.patches)
    mean, std = channel_stats(raw)
    x = normalise(raw, nodata, mean, std, 1)
    del raw, nodata
    data = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(data, batch_size=a.batch_size, shuffle=True)
    torch.manual_seed(a.seed)
    model = UNet(default_spec(a, x.shape[1], len(classes)))
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss(ignore_index=NO_LABEL)
    load_s = time.perf_counter() - t0
    seen = 0
    model.train()
    for epoch in range(a.epochs):
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb) if (yb != NO_LABEL).any() else model(xb).sum() * 0
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(yb)
    total = time.perf_counter() - t0
    px = x.shape[2] * x.shape[3]
    print(f"pytorch epoch throughput: {seen / total:.2f} patches/s ({seen * px / total:.0f} pixels/s; {load_s:.2f} s "
          f"loading, {total - load_s:.2f} s training, {sum(p.numel() for p in model.parameters())} parameters, "
          f"last loss {loss.item():.4f})")


# ---- parity with an s2crop model file

def parity(a):
    ok = True

    def check(name, good, text):
        nonlocal ok
        ok = ok and good
        print(f"parity {name}: {'OK' if good else 'FAIL'} ({text})")

    model, spec, mbands, fmean, fstd, init = load_model(a.init)  # strict: same names and shapes
    n_file = sum(v.numel() for v in init.values())
    n_torch = sum(p.numel() for p in model.parameters())
    check("names+shapes", n_file == n_torch and set(init) == {k for k, _ in model.named_parameters()},
          f"{len(init)} tensors, {n_torch} parameters, load_state_dict(strict=True) accepted the s2crop file")
    # The seeded initialisation: torch.manual_seed(seed) then the modules in s2crop's construction order.
    torch.manual_seed(a.seed)
    fresh = UNet(spec)
    diff = max((p - init[k]).abs().max().item() for k, p in fresh.named_parameters())
    check("init", diff == 0, f"PyTorch's seed-{a.seed} initialisation vs s2crop's initial weights: max |diff| {diff:.3g}")

    raw, nodata, y, bands, classes = load_patches(a.patches)
    assert mbands == bands and spec["months"] == list(range(12)), "parity expects all bands and months"
    mean, std = channel_stats(raw)
    dm = float(np.abs(mean - fmean).max() / np.abs(fmean).max())
    ds = float(np.abs(std - fstd).max() / np.abs(fstd).max())
    check("normalisation", dm < 1e-5 and ds < 1e-5, f"channel mean/std vs the file's: max rel diff {dm:.2g} / {ds:.2g}")
    x = torch.from_numpy(normalise(raw, nodata, fmean, fstd, 1))
    yt = torch.from_numpy(y)
    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, yt, ignore_index=NO_LABEL)
    with open(a.step_log) as f:
        rows = [line.split("\t") for line in f.read().split("\n")[1:] if line]
    s_loss = float(rows[0][2])
    rel = abs(loss.item() - s_loss) / abs(s_loss)
    check("first-step loss", rel < 1e-5, f"full batch of {len(y)} patches: PyTorch {loss.item():.9g}, s2crop {s_loss:.9g}, "
          f"rel diff {rel:.2g}")
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    opt.zero_grad()
    loss.backward()
    opt.step()
    with h5py.File(a.stepped, "r") as m:
        stepped = {k: torch.from_numpy(v[()]) for k, v in m["parameters"].items()}
    moved = {k: (p.detach() - stepped[k]).abs() for k, p in model.named_parameters()}
    grads = {k: p.grad.abs() for k, p in model.named_parameters()}
    # Adam's first step moves each weight by lr g / (|g| + 1e-8): the direction of a weight whose gradient is within
    # float summation noise of 0 (~1e-7 here) may go either way. Every weight with |g| > 1e-6 (100 x eps) must move
    # the same; the others are counted.
    off = {k: v > 0.01 * a.lr for k, v in moved.items()}
    big = sum(int((off[k] & (grads[k] > 1e-6)).sum()) for k in off)
    small = sum(int(off[k].sum()) for k in off) - big
    g_off = max([grads[k][off[k]].max().item() for k in off if off[k].any()] or [0.0])
    worst = max(v[grads[k] > 1e-6].max().item() for k, v in moved.items() if (grads[k] > 1e-6).any())
    check("one AdamW step", big == 0,
          f"parameters after one step of lr {a.lr}: weights with |gradient| > 1e-6 agree to max |diff| {worst:.3g}; "
          f"{small} of {n_torch} with |gradient| < {g_off:.2g} differ by > 1 % of lr (float noise at Adam's eps)")
    print("parity: all checks passed" if ok else "parity: FAILED")
    sys.exit(0 if ok else 1)


# ---- sliding-window inference (s2crop segment predict's windows and blending)

def window_starts(length, edge, stride):
    starts, p = [], 0
    while True:
        if p + edge >= length:
            starts.append(length - edge)
            return starts
        starts.append(p)
        p += stride


def axis_weights(edge, margin, taper_start, taper_end):
    w = np.ones(edge, np.float32)
    m = min(margin, edge // 2)
    for i in range(m):
        r = np.float32(0.5 - 0.5 * math.cos(math.pi * (i + 0.5) / m))
        if taper_start:
            w[i] = r
        if taper_end:
            w[edge - 1 - i] = r
    return w


def infer(a):
    model, spec, bands, mean, std, _ = load_model(a.model)
    model.eval()
    t0 = time.perf_counter()
    pixels, windows = 0, 0
    maps = {}
    with h5py.File(a.composites, "r") as c:
        tiles = a.tiles.split(",") if a.tiles else sorted(c["tiles"])
        for tile in tiles:
            g = c["tiles"][tile]
            raw, nodata = raw_channels(g["reflectance"][()], strings(g.attrs["bands"]), bands, spec["months"])
            x = torch.from_numpy(normalise(raw, nodata, mean, std, 0))  # [C][H][W]
            del raw, nodata
            H, W = x.shape[1:]
            ey, ex = min(a.window, H), min(a.window, W)
            ys = window_starts(H, ey, 1 if ey == H else a.window - a.overlap)
            xs = window_starts(W, ex, 1 if ex == W else a.window - a.overlap)
            acc = torch.zeros(spec["outputs"], H, W)
            wsum = torch.zeros(H, W)
            with torch.inference_mode():
                for y0 in ys:
                    wy = torch.from_numpy(axis_weights(ey, a.overlap, y0 > 0, y0 + ey < H))
                    for x0 in xs:
                        wx = torch.from_numpy(axis_weights(ex, a.overlap, x0 > 0, x0 + ex < W))
                        p = torch.softmax(model(x[None, :, y0:y0 + ey, x0:x0 + ex]), 1)[0]
                        w = wy[:, None] * wx[None, :]
                        acc[:, y0:y0 + ey, x0:x0 + ex] += p * w
                        wsum[y0:y0 + ey, x0:x0 + ex] += w
                        windows += 1
            maps[tile] = (acc / wsum).argmax(0).to(torch.uint8).numpy()
            pixels += H * W
    total = time.perf_counter() - t0
    print(f"pytorch inference: {pixels / total:.1f} pixels/s ({pixels} pixels, {windows} windows of {a.window} px, "
          f"overlap {a.overlap}, in {total:.2f} s)")
    if a.compare:
        with h5py.File(a.compare, "r") as m:
            same = sum(int((m["tiles"][t]["class"][()] == maps[t]).sum()) for t in maps)
        print(f"agreement with the s2crop map: {same / pixels:.6f}")


ap = argparse.ArgumentParser()
sub = ap.add_subparsers(dest="cmd", required=True)
t = sub.add_parser("train")
t.add_argument("patches")
t.add_argument("--epochs", type=int, default=2)
t.add_argument("--batch-size", type=int, default=32)
t.add_argument("--depth", type=int, default=3)
t.add_argument("--width", type=int, default=16)
t.add_argument("--encoder", default="plain")
t.add_argument("--norm", default="group")
t.add_argument("--lr", type=float, default=2e-3)
t.add_argument("--seed", type=int, default=42)
t.add_argument("--threads", type=int, default=1)
p = sub.add_parser("parity")
p.add_argument("patches")
p.add_argument("--init", required=True)
p.add_argument("--stepped", required=True)
p.add_argument("--step-log", required=True)
p.add_argument("--lr", type=float, default=2e-3)
p.add_argument("--seed", type=int, default=42)
p.add_argument("--threads", type=int, default=1)
i = sub.add_parser("infer")
i.add_argument("composites")
i.add_argument("model")
i.add_argument("--window", type=int, default=128)
i.add_argument("--overlap", type=int, default=32)
i.add_argument("--tiles", default="")
i.add_argument("--threads", type=int, default=1)
i.add_argument("--compare", default="")
a = ap.parse_args()
torch.set_num_threads(a.threads)
{"train": train, "parity": parity, "infer": infer}[a.cmd](a)
