#!/usr/bin/python3
"""Turns a CF/NetCDF file of 12 monthly Sentinel-2 L2A composites (variables S2-L2A-Bxx [t][y][x], uint16 stored as
int16 with _Unsigned, 0 and 65535 = no data; e.g. ESA WorldCereal's preprocessed inputs) into s2crop's composite
layout, so `s2crop classify` can map real composites. Months missing in a pixel are filled by linear interpolation
in time, as s2crop's own compositing does; a pixel with no valid month in a band is no data (-32768).

  netcdf_to_composite.py IN.nc OUT.h5 [--tile NAME]"""
import argparse
import datetime

import h5py
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("netcdf")
ap.add_argument("out")
ap.add_argument("--tile", default="worldcereal")
a = ap.parse_args()
with h5py.File(a.netcdf, "r") as f:
    bands = sorted(k[len("S2-L2A-"):] for k in f if k.startswith("S2-L2A-B"))
    stack = np.stack([f["S2-L2A-" + b][()].view(np.uint16).astype(np.int32) for b in bands], 1)  # [t][band][y][x]
    x, y = f["x"][()], f["y"][()]
    wkt = f["crs"].attrs.get("crs_wkt", f["crs"].attrs.get("spatial_ref"))
    wkt = wkt.decode() if isinstance(wkt, bytes) else str(wkt)
    t0 = datetime.date(1990, 1, 1) + datetime.timedelta(days=int(f["t"][0]))
assert stack.shape[0] == 12, "needs 12 monthly composites"
valid = (stack > 0) & (stack < 65535)
out = np.full(stack.shape, -32768, np.int16)
months = np.arange(12)
for b in range(stack.shape[1]):
    for iy in range(stack.shape[2]):
        for ix in range(stack.shape[3]):
            ok = valid[:, b, iy, ix]
            if ok.any():
                out[:, b, iy, ix] = np.rint(np.interp(months, months[ok], stack[ok, b, iy, ix])).astype(np.int16)
# s2crop's convention: no data means no data in every band and month
nodata = (out == -32768).any(axis=(0, 1))
out[:, :, nodata] = -32768
dx, dy = float(x[1] - x[0]), float(y[1] - y[0])
gt = [float(x[0]) - dx / 2, dx, 0.0, float(y[0]) - dy / 2, 0.0, dy]
with h5py.File(a.out, "w") as o:
    o.attrs["format"] = "s2crop monthly composites"
    o.attrs["format_version"] = np.int64(1)
    o.attrs["s2crop_version"] = "netcdf_to_composite.py"
    o.attrs["created"] = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    o.attrs["config"] = "converted from " + a.netcdf
    o.attrs["inputs"] = [a.netcdf]
    o.attrs["run_fingerprint"] = "netcdf:" + a.netcdf
    g = o.create_group("tiles").create_group(a.tile)
    g.attrs["crs_wkt"] = wkt
    g.attrs["geotransform"] = gt
    g.attrs["year"] = np.int64(t0.year)
    g.attrs["season_start"] = f"{t0.year}-{t0.month:02d}"
    g.attrs["bands"] = bands
    g.attrs["block_size"] = np.int64(512)
    g.attrs["months"] = [f"{t0.year + (t0.month - 1 + m) // 12}-{(t0.month - 1 + m) % 12 + 1:02d}" for m in range(12)]
    g.create_dataset("reflectance", data=out, chunks=(1, 1) + out.shape[2:], compression="gzip")
    g.create_dataset("clear_count", data=valid.all(axis=1).astype(np.uint8))
print(f"{a.out}: tile {a.tile}, bands {','.join(bands)}, {out.shape[2]}x{out.shape[3]} px, "
      f"{int(nodata.sum())} no-data pixels, season from {t0}")
