#!/usr/bin/python3
"""Per-month nearest-centroid baseline on an s2crop training set: every class is the mean of its training series
(12 months x bands, reflectance), a sample gets the class of the nearest mean (Euclidean). Prints its OA and
macro-F1 on the held-out tiles, the bar the LSTM must clear by a clear margin.

  centroid_baseline.py SET.h5 --test-tiles 33UVP [--train-tiles 32TQT,33TUM] [--json OUT]"""
import argparse
import json

import h5py
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("set")
ap.add_argument("--test-tiles", required=True)
ap.add_argument("--train-tiles", default="")
ap.add_argument("--json", default="")
a = ap.parse_args()
with h5py.File(a.set, "r") as f:
    x = f["x"][()].astype(np.float32).reshape(len(f["y"]), -1) * 1e-4
    y = f["y"][()]
    tiles = [t.decode() if isinstance(t, bytes) else t for t in f.attrs["tiles"]]
    tile = np.array([tiles[i] for i in f["tile"][()]])
test = np.isin(tile, a.test_tiles.split(","))
train = np.isin(tile, a.train_tiles.split(",")) if a.train_tiles else ~test
classes = np.unique(y[train])
centroids = np.stack([x[train & (y == c)].mean(0) for c in classes])
d = ((x[test][:, None, :] - centroids[None]) ** 2).sum(-1)
pred = classes[d.argmin(1)]
ref = y[test]
oa = float((pred == ref).mean())
f1 = []
for c in np.unique(ref):
    tp = ((pred == c) & (ref == c)).sum()
    f1.append(2 * tp / ((pred == c).sum() + (ref == c).sum()))
result = {"oa": oa, "macro_f1": float(np.mean(f1)), "test_samples": int(test.sum()), "train_samples": int(train.sum())}
print(f"nearest-centroid baseline on {a.test_tiles}: OA {oa:.4f}, macro-F1 {result['macro_f1']:.4f} "
      f"({result['test_samples']} samples)")
if a.json:
    json.dump(result, open(a.json, "w"), indent=1)
