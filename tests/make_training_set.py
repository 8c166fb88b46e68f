#!/usr/bin/python3
"""Writes a small training set in s2crop's documented layout (samples/training_set.hpp) with class-dependent seasonal
reflectance curves plus noise: a fixture for the trainer's tests that does not depend on extract/import."""
import argparse
import h5py
import numpy as np

BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
CLASSES = ["Legumes", "Grassland", "Maize", "Potato", "Sunflower", "Soy", "Winter barley", "Winter caraway", "Rye",
           "Rapeseed", "Beet", "Spring cereals", "Winter wheat", "Winter triticale", "Permanent plantation",
           "Other crops"]

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--samples", type=int, default=2000)
ap.add_argument("--classes", type=int, default=6)
ap.add_argument("--tiles", default="33UVP,33TUM")
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
rng = np.random.default_rng(a.seed)
tiles = a.tiles.split(",")
n, nb = a.samples, len(BANDS)
y = rng.integers(0, a.classes, n).astype(np.uint8)
peak = rng.uniform(1, 11, a.classes)      # month of peak greenness per class
width = rng.uniform(1.0, 3.0, a.classes)
months = np.arange(12)
green = np.exp(-0.5 * ((months[None, :] - peak[y][:, None]) / width[y][:, None]) ** 2)  # [n][12]
green += rng.normal(0, 0.08, green.shape)
soil = np.array([900, 1100, 1300, 1600, 1800, 1900, 2000, 2100, 2600, 2200], float)
veg = np.array([300, 600, 300, 900, 2500, 3200, 3600, 3700, 1800, 900], float)
x = soil[None, None, :] * (1 - green[..., None]) + veg[None, None, :] * green[..., None]
x += rng.normal(0, 60, x.shape)
x = np.clip(np.rint(x), 1, 10000).astype(np.int16)
tile = (np.arange(n) * len(tiles) // n).astype(np.uint16)
parcel = (np.arange(n) // 4).astype(np.int64)
with h5py.File(a.out, "w") as f:
    f.attrs["format"] = "s2crop training set"
    f.attrs["format_version"] = np.int64(1)
    f.attrs["s2crop_version"] = "test"
    f.attrs["created"] = "2026-01-01T00:00:00Z"
    f.attrs["config"] = "fixture"
    f.attrs["inputs"] = ["make_training_set.py"]
    f.attrs["source"] = "fixture"
    f.attrs["bands"] = BANDS
    f.attrs["class_names"] = CLASSES
    f.attrs["tiles"] = tiles
    f.attrs["months"] = ["Sep", "Oct", "Nov", "Dec", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug"]
    f.attrs["season_start_month"] = np.int64(9)
    f["x"] = x
    f["y"] = y
    f["tile"] = tile
    f["parcel"] = parcel
    f["row"] = np.full(n, -1, np.int32)
    f["col"] = np.full(n, -1, np.int32)
