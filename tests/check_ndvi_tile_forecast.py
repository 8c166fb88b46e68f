"""Tile-level check of `s2crop ndvi predict` with a forecast model: on every pixel of a tile where a forecast month
was observed (clear), the model's forecast against persistence (the last NDVI observed up to the origin).
Usage: check_ndvi_tile_forecast.py PREDICTION.h5 COMPOSITES.h5 TILE [--must-beat-persistence]"""
import sys

import h5py
import numpy as np

pred_path, comp_path, tile = sys.argv[1:4]
must_beat = "--must-beat-persistence" in sys.argv
with h5py.File(pred_path, "r") as p, h5py.File(comp_path, "r") as c:
    origin, horizon = int(p.attrs["origin"]), int(p.attrs["horizon"])
    forecast = p["tiles"][tile]["ndvi_forecast"][()].astype(np.float64)
    g = c["tiles"][tile]
    bands = [b.decode() if isinstance(b, bytes) else b for b in g.attrs["bands"]]
    refl = g["reflectance"][()].astype(np.float64)  # [month][band][y][x]
    clear = g["clear_count"][()] > 0
red, nir = refl[:, bands.index("B04")], refl[:, bands.index("B08" if "B08" in bands else "B8A")]
observed = clear & (red != -32768) & (nir != -32768)
with np.errstate(invalid="ignore", divide="ignore"):
    ndvi = np.where(red + nir > 0, (nir - red) / (red + nir), 0.0)
seen = observed[:origin].any(axis=0)
assert ((forecast[0] == -32768) == ~seen).all(), "no-data must be exactly the pixels without an observed month up to the origin"
last = np.full(seen.shape, np.nan)
for m in range(origin):
    last = np.where(observed[m], ndvi[m], last)
model_err, pers_err = [], []
for k in range(horizon):
    m = origin + k
    target = observed[m] & seen
    model_err.append(forecast[k][target] / 1e4 - ndvi[m][target])
    pers_err.append(last[target] - ndvi[m][target])
model_rmse = float(np.sqrt(np.mean(np.concatenate(model_err) ** 2)))
pers_rmse = float(np.sqrt(np.mean(np.concatenate(pers_err) ** 2)))
n = sum(len(e) for e in model_err)
print(f"ok: tile {tile}, forecast of months {origin + 1}..{origin + horizon} from 1..{origin} on {n} observed pixels: "
      f"RMSE model {model_rmse:.4f}, persistence {pers_rmse:.4f}")
assert n > 0, "no observed target pixel"
if must_beat:
    assert model_rmse < pers_rmse, "the model does not beat persistence on the tile"
