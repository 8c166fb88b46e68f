#!/usr/bin/python3
"""The PyTorch baseline of bench/lstm_bench.sh: the same LSTM classifier (LayerNorm -> LSTM without bias -> last cell
states -> LayerNorm -> linear -> log-softmax), written the idiomatic PyTorch way (h5py, TensorDataset + DataLoader,
torch.optim.AdamW), on the same HDF5 data with the same thread count.

  train SET.h5 --epochs E --batch-size B --threads T        prints "pytorch epoch throughput: X samples/s"
  infer COMPOSITES.h5 MODEL.h5 --threads T [--compare MAP.h5] prints "pytorch inference: X pixels/s"
        [--int8 onednn|qnnpack]  the same model with PyTorch's dynamic int8 quantisation (quantize_dynamic of the LSTM
                                 and the head) on that quantized engine: what --precision int8 would run
"""
import argparse
import time

import h5py
import numpy as np
import torch


class LstmClassifier(torch.nn.Module):
    def __init__(self, features, hidden, layers, classes, dropout, bias=False):
        super().__init__()
        self.input_norm = torch.nn.LayerNorm(features)
        self.lstm = torch.nn.LSTM(features, hidden, layers, bias=bias, batch_first=True,
                                  dropout=dropout if layers > 1 else 0.0)
        self.state_norm = torch.nn.LayerNorm(hidden * layers)
        self.head = torch.nn.Linear(hidden * layers, classes)

    def forward(self, x):
        _, (_, cell) = self.lstm(self.input_norm(x))
        state = cell.transpose(0, 1).reshape(x.shape[0], -1)
        return torch.log_softmax(self.head(self.state_norm(state)), 1)


def features(x, bands, use, ndvi_nir):
    """int16 [n][12][band] -> float32 [n][12][feature]: reflectance x 1e-4 of the model's bands, then NDVI."""
    idx = [bands.index(b) for b in use]
    f = x[:, :, idx].astype(np.float32) * 1e-4
    if ndvi_nir:
        red = x[:, :, bands.index("B04")].astype(np.float32)
        nir = x[:, :, bands.index(ndvi_nir)].astype(np.float32)
        s = nir + red
        ndvi = np.where(s > 0, (nir - red) / np.where(s > 0, s, 1), 0).astype(np.float32)
        f = np.concatenate([f, ndvi[..., None]], axis=2)
    return f


def train(a):
    t0 = time.perf_counter()
    with h5py.File(a.set, "r") as f:
        x, y = f["x"][()], f["y"][()].astype(np.int64)
        bands = [b.decode() if isinstance(b, bytes) else b for b in f.attrs["bands"]]
        n_classes = len(f.attrs["class_names"])
    nir = "B08" if "B08" in bands else "B8A"
    feats = features(x, bands, bands, nir)
    mean = feats.reshape(-1, feats.shape[2]).mean(0)
    std = np.maximum(feats.reshape(-1, feats.shape[2]).std(0), 1e-6)
    if a.loader == "tensor":
        # Everything precomputed into one tensor: the fastest way to feed PyTorch from memory.
        data = torch.utils.data.TensorDataset(torch.from_numpy((feats - mean) / std), torch.from_numpy(y))
    else:
        # The usual pattern of crop-type loaders (BreizhCrops, torchgeo): raw series in memory, the transform
        # (scaling, NDVI, normalisation) applied per sample in __getitem__.
        class SeriesDataset(torch.utils.data.Dataset):
            def __len__(self):
                return len(y)

            def __getitem__(self, i):
                f = (features(x[i:i + 1], bands, bands, nir)[0] - mean) / std
                return torch.from_numpy(f.astype(np.float32)), int(y[i])
        data = SeriesDataset()
    loader = torch.utils.data.DataLoader(data, batch_size=a.batch_size, shuffle=True)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, 1 / np.sqrt(np.maximum(counts, 1)), 1.0)
    w = torch.tensor(w * counts.sum() / (counts * w).sum(), dtype=torch.float32)
    torch.manual_seed(1)
    model = LstmClassifier(feats.shape[2], a.hidden, a.layers, n_classes, a.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    load_s = time.perf_counter() - t0
    seen = 0
    for epoch in range(a.epochs):
        model.train()
        for xb, yb in loader:
            wb = w[yb]
            loss = (torch.nn.functional.nll_loss(model(xb), yb, reduction="none") * wb).sum() / wb.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(yb)
    total = time.perf_counter() - t0
    print(f"pytorch ({a.loader} loader) epoch throughput: {seen / total:.1f} samples/s ({load_s:.2f} s loading, {total - load_s:.2f} s "
          f"training, last loss {loss.item():.4f})")


def infer(a):
    with h5py.File(a.model, "r") as m:
        bands = [b.decode() if isinstance(b, bytes) else b for b in m.attrs["bands"]]
        ndvi_nir = m.attrs["ndvi_nir"] if int(m.attrs["ndvi"]) else ""
        ndvi_nir = ndvi_nir.decode() if isinstance(ndvi_nir, bytes) else ndvi_nir
        mean, std = np.array(m.attrs["feature_mean"], np.float32), np.array(m.attrs["feature_std"], np.float32)
        # PyTorch's quantized LSTM needs biases: zero ones leave the model's function unchanged.
        model = LstmClassifier(len(mean), int(m.attrs["hidden"]), int(m.attrs["layers"]),
                               len(m.attrs["class_names"]), float(m.attrs["dropout"]), bias=bool(a.int8))
        state = {k: torch.from_numpy(v[()]) for k, v in m["parameters"].items()}
        if a.int8:
            state.update({k: torch.zeros_like(v) for k, v in model.state_dict().items() if k.startswith("lstm.bias")})
        model.load_state_dict(state)
    model.eval()
    if a.int8:
        torch.backends.quantized.engine = a.int8
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8)
        assert "quantized" in type(model.lstm).__module__, type(model.lstm)
    t0 = time.perf_counter()
    pixels = 0
    maps = {}
    with h5py.File(a.composites, "r") as c:
        for tile in sorted(a.tiles.split(",") if a.tiles else c["tiles"]):
            g = c["tiles"][tile]
            tb = [b.decode() if isinstance(b, bytes) else b for b in g.attrs["bands"]]
            refl = g["reflectance"][()]                       # [12][band][y][x]
            h, w_ = refl.shape[2:]
            series = refl.reshape(12, len(tb), -1).transpose(2, 0, 1)  # [pixel][12][band]
            valid = ~(series == -32768).any(axis=(1, 2))
            out = np.full(h * w_, 255, np.uint8)
            feats = (features(series[valid], tb, bands, ndvi_nir) - mean) / std
            preds = []
            with torch.inference_mode():
                for i in range(0, len(feats), a.batch_size):
                    preds.append(model(torch.from_numpy(feats[i:i + a.batch_size])).argmax(1).numpy())
            out[valid] = np.concatenate(preds) if preds else []
            maps[tile] = out.reshape(h, w_)
            pixels += h * w_
    total = time.perf_counter() - t0
    print(f"pytorch inference: {pixels / total:.1f} pixels/s ({pixels} pixels in {total:.2f} s)")
    if a.compare:
        with h5py.File(a.compare, "r") as m:
            same = sum((m["tiles"][t]["class"][()] == maps[t]).sum() for t in maps)
            valid = sum((m["tiles"][t]["class"][()] != 255).sum() for t in maps)
        # Pixels without data are 255 in both maps: the agreement over pixels with data is the one that matters.
        print(f"agreement with the s2crop map: {same / pixels:.6f}, {(same - (pixels - valid)) / max(valid, 1):.6f} "
              f"of pixels with data")


ap = argparse.ArgumentParser()
sub = ap.add_subparsers(dest="cmd", required=True)
t = sub.add_parser("train")
t.add_argument("set")
t.add_argument("--epochs", type=int, default=2)
t.add_argument("--batch-size", type=int, default=128)
t.add_argument("--hidden", type=int, default=128)
t.add_argument("--layers", type=int, default=2)
t.add_argument("--dropout", type=float, default=0.2)
t.add_argument("--threads", type=int, default=1)
t.add_argument("--loader", choices=["per-sample", "tensor"], default="per-sample")
i = sub.add_parser("infer")
i.add_argument("composites")
i.add_argument("model")
i.add_argument("--batch-size", type=int, default=8192)
i.add_argument("--threads", type=int, default=1)
i.add_argument("--compare", default="")
i.add_argument("--tiles", default="", help="only these tiles (comma-separated)")
i.add_argument("--int8", choices=["onednn", "qnnpack"], default="")
a = ap.parse_args()
torch.set_num_threads(a.threads)
train(a) if a.cmd == "train" else infer(a)
