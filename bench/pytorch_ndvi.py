"""The baseline of `s2crop ndvi predict` (gap-fill task) written the idiomatic PyTorch way: the composite file read
with h5py, NDVI and the model's features in NumPy, the same weights in a bidirectional torch.nn.LSTM (no bias; the
names of s2crop's model file are PyTorch's own) and a linear head, batch by batch under inference_mode. Prints
pixels/s over the whole run (reading included) and, with --compare, how many predicted values equal s2crop's
ndvi_predicted (x 10000, rounded). Used by bench/inference_bench.sh; needs Debian's python3-torch and python3-h5py.
  /usr/bin/python3 bench/pytorch_ndvi.py COMPOSITES MODEL [--batch-size 4096] [--threads 1] [--compare NDVI.h5]"""
import argparse
import time

import h5py
import numpy as np
import torch


class NdviGapfill(torch.nn.Module):
    def __init__(self, features, hidden, layers):
        super().__init__()
        self.lstm = torch.nn.LSTM(features, hidden, layers, bias=False, batch_first=True, bidirectional=True)
        self.head = torch.nn.Linear(2 * hidden, 1)

    def forward(self, x):
        return self.head(self.lstm(x)[0])


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("composites")
    ap.add_argument("model")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compare", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with h5py.File(a.model, "r") as m:
        if text(m.attrs["task"]) != "gapfill" or text(m.attrs["bands"]):
            raise SystemExit(f"{a.model}: this baseline covers the gap-fill task without covariate bands")
        hidden, layers = int(m.attrs["hidden"]), int(m.attrs["layers"])
        nir_band, start = text(m.attrs["ndvi_nir"]), int(m.attrs["season_start_month"])
        params = {k: torch.from_numpy(v[()]) for k, v in m["parameters"].items()}
    model = NdviGapfill(5, hidden, layers)
    model.load_state_dict({("lstm." + k if k.startswith("weight_") else k): v for k, v in params.items()})
    model.eval()
    angle = 2 * np.pi * ((start - 1 + np.arange(12)) % 12) / 12
    t0 = time.perf_counter()
    pixels, maps = 0, {}
    with h5py.File(a.composites, "r") as c:
        for tile in sorted(c["tiles"]):
            g = c["tiles"][tile]
            bands = [text(b) for b in g.attrs["bands"]]
            refl = g["reflectance"]
            red = refl[:, bands.index("B04")].reshape(12, -1).T.astype(np.float32)  # [pixel][month]
            nir = refl[:, bands.index(nir_band)].reshape(12, -1).T.astype(np.float32)
            clear = g["clear_count"][()].reshape(12, -1).T
            h, w = refl.shape[2:]
            seen = (clear > 0) & (red != -32768) & (nir != -32768)
            total = red + nir
            ndvi = np.where(seen & (total > 0), (nir - red) / np.where(total > 0, total, 1), 0).astype(np.float32)
            rows = seen.any(axis=1)
            v = seen[rows].astype(np.float32)
            feats = np.empty((int(rows.sum()), 12, 5), np.float32)
            feats[:, :, 0] = v * ndvi[rows]
            feats[:, :, 1] = v
            feats[:, :, 2] = 1
            feats[:, :, 3] = np.sin(angle).astype(np.float32)
            feats[:, :, 4] = np.cos(angle).astype(np.float32)
            preds = []
            with torch.inference_mode():
                for i in range(0, len(feats), a.batch_size):
                    preds.append(model(torch.from_numpy(feats[i:i + a.batch_size]))[:, :, 0].numpy())
            out = np.full((h * w, 12), -32768, np.int16)
            if preds:
                out[rows] = np.rint(np.clip(np.concatenate(preds), -1, 1) * 10000).astype(np.int16)
            maps[tile] = out.T.reshape(12, h, w)
            pixels += h * w
    total_s = time.perf_counter() - t0
    print(f"pytorch inference: {pixels / total_s:.1f} pixels/s ({pixels} pixels in {total_s:.2f} s)")
    if a.compare:
        with h5py.File(a.compare, "r") as m:
            same = sum((m["tiles"][t]["ndvi_predicted"][()] == maps[t]).sum() for t in maps)
            close = sum((np.abs(m["tiles"][t]["ndvi_predicted"][()].astype(int) - maps[t]) <= 1).sum() for t in maps)
        print(f"agreement with s2crop's ndvi_predicted: {same / (pixels * 12):.6f} equal, "
              f"{close / (pixels * 12):.6f} within 1e-4")


main()
