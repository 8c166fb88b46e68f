"""Checks a composite file against the layout documented in README.md / DESIGN.md, opened with h5py."""
import sys

import h5py
import numpy as np

path, tiles, size = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
with h5py.File(path, "r") as f:
    for key in ("format", "format_version", "s2crop_version", "created", "config", "inputs", "skipped_acquisitions"):
        assert key in f.attrs, f"root attribute {key} missing"
    assert f.attrs["format_version"] == 1
    assert "input =" in f.attrs["config"], "effective configuration not stored"
    assert sorted(f["tiles"].keys()) == sorted(tiles), list(f["tiles"].keys())
    for t in tiles:
        g = f["tiles"][t]
        for key in ("crs_wkt", "geotransform", "year", "season_start", "bands", "months", "acquisitions"):
            assert key in g.attrs, f"{t}: attribute {key} missing"
        assert [b.decode() if isinstance(b, bytes) else b for b in g.attrs["bands"]] == BANDS
        assert len(g.attrs["months"]) == 12
        assert "UTM zone" in g.attrs["crs_wkt"]
        gt = g.attrs["geotransform"]
        assert gt[1] == 10 and gt[5] == -10, gt
        r, c = g["reflectance"], g["clear_count"]
        assert r.dtype == np.int16 and r.shape == (12, 10, size, size), (r.dtype, r.shape)
        assert c.dtype == np.uint8 and c.shape == (12, size, size)
        assert r.compression == "gzip" and r.chunks is not None
        assert r.attrs["nodata"] == -32768
        assert [d.label for d in r.dims] == ["month", "band", "y", "x"]
        assert r.dims[3][0].shape == (size,) and abs(r.dims[3][0][0] - (gt[0] + 5)) < 1e-6
        data = r[...]
        # Synthetic region: every pixel has clear observations in the season, so nothing stays no-data after filling.
        assert (data != -32768).all(), "no-data left after gap filling"
        assert 0 < np.median(data[:, 2]) < 3000, "red reflectance not plausible"
        assert c[...].max() > 0 and (c[...].sum(axis=0) > 0).all()
print("layout ok:", path)
