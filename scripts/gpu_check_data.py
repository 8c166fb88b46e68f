#!/usr/bin/env python3
"""Inputs of scripts/gpu-check.sh written with h5py alone (the GPU machine has no GDAL, so no `s2crop synth` or
`extract`), in s2crop's documented layouts, from the series of a training set (tests/make_training_set.py):

  gpu_check_data.py composites OUT.h5 --set SET.h5 --tile NAME:SIZE [--tile ...]
      a composite file (pipeline/composite_file.hpp): every tile a mosaic of 16 x 16 px "parcels", each parcel the
      series of one training sample, so a map of it has the set's classes; uncompressed, chunks of 1024 x 1024 px.
  gpu_check_data.py patches OUT.h5 --set SET.h5 --patches N --size S
      a patch set (samples/patch_set.hpp) of N patches of S x S px cut from the same kind of mosaic, with the three
      label layers extract writes (crop_type, field_boundary, cropland)."""
import argparse

import h5py
import numpy as np

PARCEL = 16


def parcel_index(height, width, n_samples, seed):
    """Sample index per pixel: 16 x 16 px parcels, each one sample drawn at random."""
    rng = np.random.default_rng(seed)
    py, px = (height + PARCEL - 1) // PARCEL, (width + PARCEL - 1) // PARCEL
    pick = rng.integers(0, n_samples, (py, px)).astype(np.int32)
    return np.repeat(np.repeat(pick, PARCEL, 0), PARCEL, 1)[:height, :width]


def provenance(o, fmt, source):
    """The attributes every s2crop file starts with."""
    o.attrs["format"] = fmt
    o.attrs["format_version"] = np.int64(1)
    o.attrs["s2crop_version"] = "gpu_check_data.py"
    o.attrs["created"] = "2026-01-01T00:00:00Z"
    o.attrs["config"] = "gpu-check fixture from " + source
    o.attrs["inputs"] = [source]


def read_set(path):
    with h5py.File(path, "r") as f:
        return (f["x"][()], f["y"][()], [str(b) for b in f.attrs["bands"]], [str(c) for c in f.attrs["class_names"]],
                int(f.attrs["season_start_month"]))


def composites(a):
    x, _, bands, _, start = read_set(a.set)
    year = 2021
    with h5py.File(a.out, "w") as o:
        provenance(o, "s2crop monthly composites", a.set)
        o.attrs["run_fingerprint"] = "gpu-check:" + a.set
        tiles = o.create_group("tiles")
        for k, spec in enumerate(a.tile):
            name, size = spec.split(":")
            size = int(size)
            idx = parcel_index(size, size, x.shape[0], 100 + k)
            g = tiles.create_group(name)
            g.attrs["crs_wkt"] = ('PROJCS["WGS 84 / UTM zone 33N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",'
                                  '6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
                                  'PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],'
                                  'PARAMETER["central_meridian",15],PARAMETER["scale_factor",0.9996],'
                                  'PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],'
                                  'AUTHORITY["EPSG","32633"]]')
            g.attrs["geotransform"] = [399960.0 + k * 200000, 10.0, 0.0, 5300040.0, 0.0, -10.0]
            g.attrs["year"] = np.int64(year)
            g.attrs["season_start"] = f"{year}-{start:02d}"
            g.attrs["bands"] = bands
            g.attrs["block_size"] = np.int64(1024)
            g.attrs["months"] = [f"{year + (start - 1 + m) // 12}-{(start - 1 + m) % 12 + 1:02d}" for m in range(12)]
            chunk = min(1024, size)
            refl = g.create_dataset("reflectance", (12, len(bands), size, size), np.int16, chunks=(1, 1, chunk, chunk))
            for m in range(12):
                for b in range(len(bands)):
                    refl[m, b] = x[:, m, b][idx]
            g.create_dataset("clear_count", data=np.ones((12, size, size), np.uint8), chunks=(1, chunk, chunk))
            print(f"{a.out}: tile {name} {size} x {size} px, {len(bands)} bands")


def patches(a):
    x, y, bands, classes, start = read_set(a.set)
    n, s = a.patches, a.size
    idx = parcel_index(s * n, s, x.shape[0], 7)  # n patches stacked vertically
    xs = np.empty((n, 12, len(bands), s, s), np.int16)
    labels = np.empty((n, 3, s, s), np.uint8)
    for i in range(n):
        block = idx[i * s:(i + 1) * s]
        xs[i] = np.moveaxis(x[block], (2, 3), (0, 1))
        crop = y[block].astype(np.uint8)
        edge = np.zeros((s, s), bool)
        edge[:-1] |= block[:-1] != block[1:]
        edge[1:] |= block[1:] != block[:-1]
        edge[:, :-1] |= block[:, :-1] != block[:, 1:]
        edge[:, 1:] |= block[:, 1:] != block[:, :-1]
        labels[i, 0], labels[i, 1], labels[i, 2] = crop, edge, 1
    with h5py.File(a.out, "w") as o:
        provenance(o, "s2crop patch set", a.set)
        o.attrs["bands"] = bands
        o.attrs["months"] = [f"2021-{(start - 1 + m) % 12 + 1:02d}" for m in range(12)]
        o.attrs["season_start_month"] = np.int64(start)
        o.attrs["tiles"] = ["33UVP", "33TUM"]
        o.attrs["patch_size"] = np.int64(s)
        o.attrs["label_layers"] = ["crop_type", "field_boundary", "cropland"]
        o.attrs["class_names"] = classes
        o.create_dataset("x", data=xs, chunks=(1, 12, len(bands), s, s))
        o.create_dataset("labels", data=labels, chunks=(1, 3, s, s))
        o.create_dataset("clear", data=np.ones((n, 12, s, s), np.uint8), chunks=(1, 12, s, s))
        o["tile"] = (np.arange(n) * 2 // n).astype(np.uint16)  # first half 33UVP, second half 33TUM (validation)
        o["row"] = (np.arange(n) * s).astype(np.int32)
        o["col"] = np.zeros(n, np.int32)
    print(f"{a.out}: {n} patches of {s} x {s} px")


ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
sub = ap.add_subparsers(dest="what", required=True)
c = sub.add_parser("composites")
c.add_argument("out")
c.add_argument("--set", required=True)
c.add_argument("--tile", action="append", required=True)
p = sub.add_parser("patches")
p.add_argument("out")
p.add_argument("--set", required=True)
p.add_argument("--patches", type=int, default=256)
p.add_argument("--size", type=int, default=64)
args = ap.parse_args()
composites(args) if args.what == "composites" else patches(args)
