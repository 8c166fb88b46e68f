#!/usr/bin/python3
"""Converts the real eo-learn TestEOPatch NDVI series (68 irregular dates 2015-07..2017-12, Slovenia) into an s2crop
training set for `s2crop ndvi`: one "tile" per calendar year (2015, 2016, 2017), monthly median NDVI of the clear
acquisitions (cloud mask mask/CLM.npy: 1 = cloud), per-month clear flags, months without a clear acquisition
linearly interpolated (ends hold the nearest value) as s2crop's composites do; pixels without any clear month in a
year are left out. NDVI is stored as a B04/B08 pair (B04 = 1000, B08 = 1000 (1 + NDVI) / (1 - NDVI)) so that
s2crop computes it back exactly (to 1e-4); labels: the LULC raster (class names from lulc_classes.py)."""
import argparse
import json
import os
import h5py
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("patch")
ap.add_argument("out")
ap.add_argument("--stride", type=int, default=1, help="keep every stride-th pixel in both directions")
ap.add_argument("--split-last-year", action="store_true",
                help="split the last year by column into <year>w (west half) and <year>e (east half): a spatially "
                     "disjoint held-out tile of the last part of the series")
a = ap.parse_args()
ndvi = np.load(os.path.join(a.patch, "data/NDVI.npy"))[..., 0].astype(np.float64)   # [t][y][x]
cloud = np.load(os.path.join(a.patch, "mask/CLM.npy"))[..., 0] != 0
lulc = np.load(os.path.join(a.patch, "mask_timeless/LULC.npy"))[..., 0]
dates = json.load(open(os.path.join(a.patch, "timestamps.json")))
years = np.array([int(d[:4]) for d in dates])
months = np.array([int(d[5:7]) for d in dates])
ndvi, cloud, lulc = ndvi[:, ::a.stride, ::a.stride], cloud[:, ::a.stride, ::a.stride], lulc[::a.stride, ::a.stride]
T, H, W = ndvi.shape
names = ["no data", "cultivated land", "forest", "grassland", "shrubland", "water", "wetlands", "tundra",
         "artificial surface", "bareland", "snow and ice"]
xs, ys, tiles, clears, rows, cols = [], [], [], [], [], []
all_years = sorted(set(years))
tile_names = [str(y) for y in all_years]
if a.split_last_year:
    tile_names = tile_names[:-1] + [tile_names[-1] + "w", tile_names[-1] + "e"]
for ti, year in enumerate(all_years):
    monthly = np.full((12, H, W), np.nan)
    for m in range(12):
        sel = (years == year) & (months == m + 1)
        if not sel.any():
            continue
        v = np.where(cloud[sel], np.nan, ndvi[sel])
        has = np.isfinite(v).any(axis=0)
        monthly[m][has] = np.nanmedian(v[:, has], axis=1) if v.ndim == 2 else np.nanmedian(v[:, has], axis=0)
    clear = np.isfinite(monthly)                                 # [12][y][x]
    for r in range(H):
        for c in range(W):
            obs = clear[:, r, c]
            if not obs.any():
                continue
            t = np.flatnonzero(obs)
            series = np.interp(np.arange(12), t, monthly[t, r, c])  # ends hold the nearest value
            xs.append(series)
            clears.append(obs.astype(np.uint8))
            ys.append(lulc[r, c])
            tiles.append(ti + (1 if a.split_last_year and year == all_years[-1] and c >= W // 2 else 0))
            rows.append(r * a.stride)
            cols.append(c * a.stride)
series = np.clip(np.array(xs), -0.95, 0.95)
red = np.full(series.shape, 1000.0)
nir = red * (1 + series) / (1 - series)
x = np.stack([np.rint(red), np.rint(nir)], axis=-1).astype(np.int16)   # [n][12][2]
with h5py.File(a.out, "w") as f:
    f.attrs["format"] = "s2crop training set"
    f.attrs["format_version"] = np.int64(1)
    f.attrs["s2crop_version"] = "test"
    f.attrs["created"] = "2026-01-01T00:00:00Z"
    f.attrs["config"] = "eolearn_ndvi_set.py stride=%d" % a.stride
    f.attrs["inputs"] = [a.patch]
    f.attrs["source"] = "eolearn TestEOPatch"
    f.attrs["bands"] = ["B04", "B08"]
    f.attrs["class_names"] = names
    f.attrs["tiles"] = tile_names
    f.attrs["months"] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    f.attrs["season_start_month"] = np.int64(1)
    f["x"] = x
    f["y"] = np.array(ys, np.uint8)
    f["tile"] = np.array(tiles, np.uint16)
    f["parcel"] = np.full(len(ys), -1, np.int64)
    f["row"] = np.array(rows, np.int32)
    f["col"] = np.array(cols, np.int32)
    f["clear"] = np.array(clears, np.uint8)
print("%d series: %s" % (len(ys), ", ".join("%s %d" % (n, (np.array(tiles) == i).sum())
                                           for i, n in enumerate(tile_names))))
