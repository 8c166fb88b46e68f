#!/usr/bin/python3
"""NumPy reference compositor: an independent, straightforward implementation of s2crop's monthly compositing,
used to check s2crop's results and as the speed baseline in bench/. It reads the acquisition list printed by
`s2crop composite --list` (so both see the same inputs) and the rasters through GDAL, whole tiles at a time.

  s2crop composite --input DIR --output X.h5 --list > plan.tsv
  numpy_composite.py plan.tsv --out ref.npz [--method median] [--valid-scl 4,5,6,7] [--dilation 2]
  numpy_composite.py plan.tsv --compare X.h5      # exit 1 unless identical to s2crop's output
"""
import argparse
import sys
import time

import numpy as np
from osgeo import gdal

gdal.UseExceptions()
NODATA = -32768
CLOUDS = [3, 8, 9, 10]


def read_plan(path):
    tiles, season, order = {}, None, []
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if f[0] == "#season_start":
            season = f[1]
        elif f[0] == "#tile":
            tiles[f[1]] = {"width": int(f[2]), "height": int(f[3]), "gt": [float(v) for v in f[4:10]], "acq": []}
            order.append(f[1])
        elif f[0].startswith("#"):
            continue
        else:
            bands = [b.split("|") for b in f[7:]]
            tiles[f[0]]["acq"].append({
                "date": f[1], "month": int(f[2]), "mask_kind": f[4], "mask": (f[5], int(f[6])),
                "bands": [(p, int(b), int(o)) for p, b, o in bands]})
    return season, order, tiles


def read_on_grid(path, band, width, height, gt):
    ds = gdal.Open(path)
    factor = int(round(ds.GetGeoTransform()[1] / gt[1]))
    b = ds.GetRasterBand(band)
    a = b.ReadAsArray()
    nodata = b.GetNoDataValue()
    if factor > 1:
        a = np.repeat(np.repeat(a, factor, axis=0), factor, axis=1)
    return a[:height, :width], nodata


def dilate(mask, d):
    if d == 0:
        return mask
    h, w = mask.shape
    padded = np.zeros((h + 2 * d, w + 2 * d), dtype=bool)
    padded[d:d + h, d:d + w] = mask
    out = np.zeros_like(mask)
    for dy in range(2 * d + 1):
        for dx in range(2 * d + 1):
            out |= padded[dy:dy + h, dx:dx + w]
    return out


def observation(acq, tile, valid_scl, dilation):
    w, h, gt = tile["width"], tile["height"], tile["gt"]
    valid = np.ones((h, w), dtype=bool)
    if acq["mask_kind"] == "scl":
        scl, _ = read_on_grid(*acq["mask"], w, h, gt)
        valid &= np.isin(scl, valid_scl) & ~dilate(np.isin(scl, CLOUDS), dilation)
    elif acq["mask_kind"] == "valid":
        m, _ = read_on_grid(*acq["mask"], w, h, gt)
        valid &= m != 0
    refl = np.empty((len(acq["bands"]), h, w), dtype=np.int16)
    for i, (path, band, offset) in enumerate(acq["bands"]):
        dn, nodata = read_on_grid(path, band, w, h, gt)
        dn = dn.astype(np.int32)
        valid &= dn != 0
        if nodata is not None and 0 <= nodata <= 65535 and float(nodata).is_integer():
            valid &= dn != int(nodata)
        refl[i] = np.clip(dn + offset, -32767, 32767)
    return refl, valid


def composite_month(obs, valid, method):
    # obs [n, bands, h, w], valid [n, h, w]
    count = valid.sum(axis=0)
    v = obs.astype(np.int32)
    if method == "mean":
        s = np.where(valid[:, None], v, 0).sum(axis=0)
        c = np.maximum(count, 1)[None]
        out = (2 * s + c) // (2 * c)
    else:
        v = np.where(valid[:, None], v, np.iinfo(np.int32).max)
        v.sort(axis=0)
        k = count[None]
        lo = np.take_along_axis(v, np.maximum((k - 1) // 2, 0)[None], axis=0)[0]
        hi = np.take_along_axis(v, np.maximum(k // 2, 0)[None], axis=0)[0]
        out = (lo + hi + 1) // 2
    out = np.where(count[None] > 0, out, NODATA).astype(np.int16)
    return out, np.minimum(count, 255).astype(np.uint8)


def fill_gaps(values, count):
    # values [12, bands, h, w], count [12, h, w]
    months = values.shape[0]
    filled = count > 0
    idx = np.arange(months)[:, None, None]
    prev = np.where(filled, idx, -1)
    prev = np.maximum.accumulate(prev, axis=0)
    nxt = np.where(filled, idx, months)
    nxt = np.minimum.accumulate(nxt[::-1], axis=0)[::-1]
    out = values.astype(np.int64).copy()
    for m in range(months):
        p, n = prev[m], nxt[m]
        empty = ~filled[m]
        has_p, has_n = p >= 0, n < months
        pv = np.take_along_axis(values, np.clip(p, 0, months - 1)[None, None].repeat(values.shape[1], 1), 0)[0]
        nv = np.take_along_axis(values, np.clip(n, 0, months - 1)[None, None].repeat(values.shape[1], 1), 0)[0]
        pv, nv = pv.astype(np.int64), nv.astype(np.int64)
        span = np.maximum(n - p, 1)
        interp = (2 * (pv * (n - m) + nv * (m - p)) + span) // (2 * span)
        res = np.where(has_p & has_n, interp, np.where(has_p, pv, np.where(has_n, nv, NODATA)))
        out[m] = np.where(empty[None], res, out[m])
    return out.astype(np.int16)


def composite_tile(tile, method, valid_scl, dilation):
    bands = len(tile["acq"][0]["bands"])
    h, w = tile["height"], tile["width"]
    values = np.full((12, bands, h, w), NODATA, dtype=np.int16)
    count = np.zeros((12, h, w), dtype=np.uint8)
    for m in range(12):
        acqs = [a for a in tile["acq"] if a["month"] == m]
        if not acqs:
            continue
        pairs = [observation(a, tile, valid_scl, dilation) for a in acqs]
        values[m], count[m] = composite_month(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), method)
    return fill_gaps(values, count), count


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("plan")
    ap.add_argument("--method", default="median")
    ap.add_argument("--valid-scl", default="4,5,6,7")
    ap.add_argument("--dilation", type=int, default=2)
    ap.add_argument("--compare", help="s2crop composite HDF5 to compare with")
    ap.add_argument("--out", help="write the reference composites to this .npz")
    a = ap.parse_args()
    valid_scl = [int(v) for v in a.valid_scl.split(",")]
    season, order, tiles = read_plan(a.plan)
    results, t0 = {}, time.perf_counter()
    obs_px = 0
    for name in order:
        results[name] = composite_tile(tiles[name], a.method, valid_scl, a.dilation)
        t = tiles[name]
        obs_px += len(t["acq"]) * len(t["acq"][0]["bands"]) * t["width"] * t["height"]
    seconds = time.perf_counter() - t0
    print(f"numpy reference: {len(order)} tile(s), {seconds:.2f} s, {obs_px / seconds:.4g} acquisition-band-pixels/s")
    if a.out:
        np.savez(a.out, **{f"{k}_reflectance": v[0] for k, v in results.items()},
                 **{f"{k}_clear_count": v[1] for k, v in results.items()})
    if a.compare:
        import h5py
        bad = 0
        with h5py.File(a.compare, "r") as f:
            for name in order:
                r, c = f["tiles"][name]["reflectance"][...], f["tiles"][name]["clear_count"][...]
                for what, mine, ref in (("reflectance", r, results[name][0]), ("clear_count", c, results[name][1])):
                    n = int(np.count_nonzero(mine != ref))
                    if n:
                        bad += 1
                        where = np.argwhere(mine != ref)[0]
                        print(f"{name}/{what}: {n} values differ, first at {tuple(where)}: "
                              f"s2crop {mine[tuple(where)]} numpy {ref[tuple(where)]}")
        if bad:
            return 1
        print(f"identical to {a.compare}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
