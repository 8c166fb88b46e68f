#!/usr/bin/python3
"""ESA WorldCereal's public extractions (../shared/data/worldcereal_public_extractions: real Sentinel-2 L2A monthly
composites of 500 labelled points in South Sudan and Uganda, 12 months from December 2016) as an s2crop training set
(samples/training_set.hpp), so that `s2crop train`, `assess --model` and bench/accuracy_real.sh use the one real,
crop-labelled, multi-tile set there is.

- Bands: the ten optical bands of the extraction (B02 B03 B04 B05 B06 B07 B08 B8A B11 B12), reflectance x 10000.
- No data (65535) is gap-filled per band by linear interpolation over the months (the nearest month at the ends),
  as s2crop's compositing fills gaps; `clear` is 0 for those months. A point without any clear month is dropped.
- Classes: the WorldCereal legend codes (ewoc_code) with at least --min-class samples keep their own class, the rest
  become "other". Codes whose crop is known by name are named; the others are kept as "ewoc <code>".
- tile: the point's Sentinel-2 tile, so that train --tiles / assess --tiles give tile-disjoint splits; parcel: the
  row (each point is its own sampling unit).
"""
import argparse
import collections
import csv
import sys

import h5py
import numpy as np

BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
RES = {"B02": "10m", "B03": "10m", "B04": "10m", "B08": "10m"}
NAMES = {"1101060000": "maize", "1101070000": "sorghum"}
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("csv", help="worldcereal_public_extractions.csv")
ap.add_argument("out", help="training set to write (HDF5)")
ap.add_argument("--min-class", type=int, default=10, help="codes with fewer samples go to class 'other'")
a = ap.parse_args()

with open(a.csv, newline="") as f:
    rows = list(csv.DictReader(f))
if not rows:
    sys.exit(f"{a.csv}: no rows")
starts = {r["start_date"] for r in rows}
if len(starts) != 1:
    sys.exit(f"{a.csv}: series start on several dates ({sorted(starts)}); one season per set")
start_month = int(next(iter(starts))[5:7])

counts = collections.Counter(r["ewoc_code"] for r in rows)
kept = sorted((c for c, n in counts.items() if n >= a.min_class), key=lambda c: (-counts[c], c))
class_names = [NAMES.get(c, "ewoc " + c) for c in kept] + ["other"]
tiles = sorted({r["tile"] for r in rows})

xs, ys, ts, clears, ids = [], [], [], [], []
dropped = 0
for k, r in enumerate(rows):
    x = np.zeros((12, len(BANDS)), np.float64)
    valid = np.zeros((12, len(BANDS)), bool)
    for b, band in enumerate(BANDS):
        for m in range(12):
            v = r.get(f"OPTICAL-{band}-ts{m}-{RES.get(band, '20m')}", "")
            if v not in ("", "65535"):
                x[m, b] = float(v)
                valid[m, b] = True
    if not valid.any(axis=0).all():
        dropped += 1
        continue
    for b in range(len(BANDS)):
        ok = np.flatnonzero(valid[:, b])
        x[:, b] = np.interp(np.arange(12), ok, x[ok, b])
    xs.append(np.clip(np.rint(x), 1, 32767).astype(np.int16))
    clears.append(valid.all(axis=1).astype(np.uint8))
    code = r["ewoc_code"]
    ys.append(kept.index(code) if code in kept else len(kept))
    ts.append(tiles.index(r["tile"]))
    ids.append(k)

n = len(ys)
with h5py.File(a.out, "w") as f:
    f.attrs["format"] = "s2crop training set"
    f.attrs["format_version"] = np.int64(1)
    f.attrs["s2crop_version"] = "worldcereal_training_set.py"
    f.attrs["created"] = np.datetime_as_string(np.datetime64("now"), unit="s") + "Z"
    f.attrs["config"] = f"min_class = {a.min_class}\n"
    f.attrs["inputs"] = [a.csv]
    f.attrs["source"] = "worldcereal public extractions"
    f.attrs["bands"] = BANDS
    f.attrs["class_names"] = class_names
    f.attrs["tiles"] = tiles
    f.attrs["months"] = [MONTHS[(start_month - 1 + m) % 12] for m in range(12)]
    f.attrs["season_start_month"] = np.int64(start_month)
    f["x"] = np.stack(xs)
    f["y"] = np.array(ys, np.uint8)
    f["tile"] = np.array(ts, np.uint16)
    f["parcel"] = np.array(ids, np.int64)
    f["row"] = np.full(n, -1, np.int32)
    f["col"] = np.full(n, -1, np.int32)
    f["clear"] = np.stack(clears)
per_class = collections.Counter(ys)
print(f"{a.out}: {n} samples ({dropped} without any clear month dropped), {len(tiles)} tiles, classes " +
      ", ".join(f"{c} {per_class[i]}" for i, c in enumerate(class_names)))
