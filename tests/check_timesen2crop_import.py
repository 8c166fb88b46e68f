"""Checks an imported TimeSen2Crop training set against the synthetic TimeSen2Crop folder it came from and against
`s2crop composite` of the same synthetic region (same season, --dilation 0) at the pixels listed in pixels.tsv.
usage: check_timesen2crop_import.py TRAINING.h5 TS2C_DIR COMPOSITES.h5"""
import collections
import csv
import sys
from pathlib import Path

import h5py
import numpy as np

train_path, ts2c_dir, comp_path = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
TS2C_BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12"]

pixels = list(csv.DictReader(open(ts2c_dir / "pixels.tsv"), delimiter="\t"))
with h5py.File(train_path, "r") as t, h5py.File(comp_path, "r") as c:
    a = t.attrs
    assert a["format"] == "s2crop training set" and a["source"] == "timesen2crop", dict(a)
    assert list(a["bands"]) == TS2C_BANDS, list(a["bands"])
    assert len(a["class_names"]) == 16 and a["class_names"][12] == "Winter wheat"
    assert list(a["months"]) == ["Sep", "Oct", "Nov", "Dec", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug"]
    tiles = list(a["tiles"])
    assert tiles == sorted({p["tile"] for p in pixels}), tiles
    x, y, tile = t["x"][...], t["y"][...], t["tile"][...]
    n = len(pixels)
    assert x.dtype == np.int16 and x.shape == (n, 12, 9), (x.dtype, x.shape)
    assert (x != -32768).all(), "no-data left in the imported series"
    for name in ("parcel", "row", "col"):
        assert (t[name][...] == -1).all(), f"{name} should be -1 (TimeSen2Crop has no coordinates)"
    # Class counts = CSV files written per (tile, class), and the sample order is (tile, class, file number).
    files = collections.Counter((p["tile"], int(p["class"])) for p in pixels)
    got = collections.Counter((tiles[k], int(v)) for k, v in zip(tile, y))
    assert got == files, (got, files)
    expected_order = sorted(pixels, key=lambda p: (p["tile"], int(p["class"]), int(Path(p["file"]).stem)))
    assert [(tiles[k], int(v)) for k, v in zip(tile, y)] == [(p["tile"], int(p["class"])) for p in expected_order]

    # The imported series against the composites at the same pixel, months with clear observations.
    assert "clear" in t and t["clear"].shape == (n, 12), "no per-month clear flags (ndvi train needs them)"
    flags = t["clear"][...].astype(bool)
    diffs, compared, flag_agree = [], 0, 0
    for i, p in enumerate(expected_order):
        g = c["tiles"][p["tile"]]
        idx = [list(g.attrs["bands"]).index(b) for b in TS2C_BANDS]
        r, col = int(p["row"]), int(p["col"])
        clear = g["clear_count"][:, r, col] > 0
        flag_agree += int((flags[i] == clear).sum())
        ref = g["reflectance"][:, :, r, col][:, idx].astype(np.int32)
        d = np.abs(x[i].astype(np.int32) - ref)[clear]
        diffs.append(d.ravel())
        compared += int(clear.sum())
    diffs = np.concatenate(diffs)
    exact = float((diffs == 0).mean())
    print(f"compared {compared} pixel-months x 9 bands: median |diff| {np.median(diffs):.1f}, "
          f"max {diffs.max()}, exactly equal {100 * exact:.2f} %")
    assert compared > n * 6, "too few clear months to compare"
    assert np.median(diffs) == 0, "imported series do not match the composites"
    assert exact >= 0.99, "imported series differ from the composites too often"
    print(f"clear flags agree with the composites' clear counts in {100 * flag_agree / (12 * n):.2f} % of pixel-months")
    assert flag_agree >= 0.99 * 12 * n, "the imported clear flags disagree with the composites"
print("timesen2crop import ok:", train_path)
