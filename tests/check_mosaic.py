#!/usr/bin/python3
"""Checks a class mosaic (s2crop mosaic) against its map files, independently of s2crop's code:

- the COG: EPSG:3035, tiled, DEFLATE, overviews, no-data 255, colour table and category names of the maps;
- every mosaic pixel centre is transformed back to each tile's grid with osr (one point at a time, exactly); the
  expected value is the overlap rule applied in numpy (higher confidence wins, ties to the tile whose name sorts
  first, a tile's no data never wins), and the mosaic must equal it everywhere (pixels whose centre falls within
  1e-6 px of a source pixel edge are left out: there rounding may go either way);
- NO-DATA COUNT: the union of the tile footprints (each tile's grid outline, every pixel corner along its edges,
  transformed to EPSG:3035, eroded by one pixel) rasterised on the mosaic grid has no no-data pixel except where the
  covering tiles are no data themselves; pixels outside every footprint (dilated by one pixel) are all no data;
- the confidence COG (if given) holds the winning tile's confidence, 255 exactly where the class is no data.
Prints the counts; exits non-zero on the first failed check."""
import argparse
import json

import h5py
import numpy as np
from osgeo import gdal, ogr, osr

gdal.UseExceptions()
ap = argparse.ArgumentParser()
ap.add_argument("mosaic")
ap.add_argument("maps", nargs="+")
ap.add_argument("--confidence")
ap.add_argument("--json", help="write the counts here")
a = ap.parse_args()


def srs_of(wkt_or_epsg):
    s = osr.SpatialReference()
    if isinstance(wkt_or_epsg, int):
        s.ImportFromEPSG(wkt_or_epsg)
    else:
        s.ImportFromWkt(wkt_or_epsg)
    s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return s


# ---- the maps
tiles = {}
names = colours = None
for path in a.maps:
    with h5py.File(path, "r") as f:
        n = [x.decode() if isinstance(x, bytes) else x for x in f.attrs["class_names"]]
        c = np.asarray(f.attrs["class_colours"]).reshape(-1, 3).astype(int)
        assert names is None or n == names, f"{path}: other class names"
        names, colours = n, c
        for t in f["tiles"]:
            g = f["tiles"][t]
            tiles[t] = dict(wkt=g.attrs["crs_wkt"], gt=np.asarray(g.attrs["geotransform"]), cls=g["class"][()],
                            conf=g["confidence"][()])
order = sorted(tiles)

# ---- the COG
ds = gdal.Open(a.mosaic)
band = ds.GetRasterBand(1)
srs = ds.GetSpatialRef()
assert srs.GetAuthorityCode(None) == "3035", f"CRS is {srs.GetAuthorityName(None)}:{srs.GetAuthorityCode(None)}"
assert ds.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG"
assert ds.GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE") == "DEFLATE"
assert band.GetBlockSize() == [256, 256] or min(ds.RasterXSize, ds.RasterYSize) < 256
assert band.GetOverviewCount() >= 1, "no overviews"
assert band.GetNoDataValue() == 255
cats = band.GetCategoryNames()
assert cats[:len(names)] == names, "category names differ from the maps' class_names"
ct = band.GetColorTable()
for k, rgb in enumerate(colours):
    assert tuple(ct.GetColorEntry(k)[:3]) == tuple(rgb), f"colour of class {k}"
gt = ds.GetGeoTransform()
res = gt[1]
assert gt[0] % res == 0 and gt[3] % res == 0, "grid not aligned to the resolution"
W, H = ds.RasterXSize, ds.RasterYSize
mosaic = band.ReadAsArray()

# ---- expected values: pixel centres back to each tile
ix, iy = np.meshgrid(np.arange(W), np.arange(H))
X = gt[0] + (ix.ravel() + 0.5) * res
Y = gt[3] - (iy.ravel() + 0.5) * res
laea = srs_of(3035)
best_cls = np.full(W * H, 255, np.uint8)
best_conf = np.full(W * H, 255, np.uint8)
ambiguous = np.zeros(W * H, bool)
covered = {}
winner = np.full(W * H, -1)
for k, t in enumerate(order):
    T = tiles[t]
    ct_ = osr.CoordinateTransformation(laea, srs_of(T["wkt"]))
    pts = np.asarray(ct_.TransformPoints(np.column_stack([X, Y])))
    sx = (pts[:, 0] - T["gt"][0]) / T["gt"][1]
    sy = (pts[:, 1] - T["gt"][3]) / T["gt"][5]
    h, w = T["cls"].shape
    ambiguous |= (np.abs(sx - np.round(sx)) < 1e-6) | (np.abs(sy - np.round(sy)) < 1e-6)
    inside = (sx >= 0) & (sy >= 0) & (sx < w) & (sy < h)
    covered[t] = inside
    c = np.full(W * H, 255, np.uint8)
    p = np.zeros(W * H, np.uint8)
    c[inside] = T["cls"][sy[inside].astype(int), sx[inside].astype(int)]
    p[inside] = T["conf"][sy[inside].astype(int), sx[inside].astype(int)]
    T["c"], T["p"] = c, p
    # name order + strict '>' = ties go to the tile whose name sorts first; no data never takes a pixel
    take = (c != 255) & ((best_cls == 255) | (p > best_conf))
    best_cls[take], best_conf[take], winner[take] = c[take], p[take], k
flat = mosaic.ravel()
mismatch = (flat != best_cls) & ~ambiguous
counts = dict(pixels=W * H, width=W, height=H, with_class=int((flat != 255).sum()),
              ambiguous_left_out=int(ambiguous.sum()), mismatches=int(mismatch.sum()))
if mismatch.any():
    bad = np.flatnonzero(mismatch)[:10]
    print("first mismatches (index, mosaic, expected):", [(int(i), int(flat[i]), int(best_cls[i])) for i in bad])
assert not mismatch.any(), f"{counts['mismatches']} pixels differ from the overlap rule applied to the maps"

# ---- the overlap: it must exercise every branch of the rule
if len(order) >= 2:
    t0, t1 = order[0], order[1]
    both = covered[t0] & covered[t1] & ~ambiguous
    c0, c1, p0, p1 = tiles[t0]["c"], tiles[t1]["c"], tiles[t0]["p"], tiles[t1]["p"]
    differ = both & (c0 != 255) & (c1 != 255) & (c0 != c1)
    counts.update(overlap=int(both.sum()), overlap_classes_differ=int(differ.sum()),
                  won_by_second_tile=int((differ & (p1 > p0)).sum()),
                  ties_to_first_tile=int((differ & (p1 == p0)).sum()),
                  hole_filled_by_second_tile=int((both & (c0 == 255) & (c1 != 255)).sum()))
    assert ((flat == c1) | ambiguous)[differ & (p1 > p0)].all()
    assert ((flat == c0) | ambiguous)[differ & (p0 >= p1)].all()

# ---- NO-DATA COUNT against the rasterised footprints
def footprint(t, grow):
    T = tiles[t]
    h, w = T["cls"].shape
    g = T["gt"]
    edge = ([(i, 0) for i in range(w)] + [(w, j) for j in range(h)] + [(w - i, h) for i in range(w)] +
            [(0, h - j) for j in range(h)])
    ring = ogr.Geometry(ogr.wkbLinearRing)
    ct_ = osr.CoordinateTransformation(srs_of(T["wkt"]), laea)
    for px, py, *_ in ct_.TransformPoints([(g[0] + px * g[1], g[3] + py * g[5]) for px, py in edge]):
        ring.AddPoint_2D(px, py)
    ring.CloseRings()
    poly = ogr.Geometry(ogr.wkbPolygon)
    poly.AddGeometry(ring)
    return poly.Buffer(grow * res)


def rasterise(geom):
    mem = gdal.GetDriverByName("MEM").Create("", W, H, 1, gdal.GDT_Byte)
    mem.SetGeoTransform(gt)
    mem.SetSpatialRef(laea)
    layer_ds = ogr.GetDriverByName("Memory").CreateDataSource("")
    layer = layer_ds.CreateLayer("f", laea, ogr.wkbPolygon)
    feat = ogr.Feature(layer.GetLayerDefn())
    feat.SetGeometry(geom)
    layer.CreateFeature(feat)
    gdal.RasterizeLayer(mem, [1], layer, burn_values=[1])  # pixel centres inside
    return mem.GetRasterBand(1).ReadAsArray().astype(bool).ravel()


eroded = dilated = None
for t in order:
    e, d = footprint(t, -1), footprint(t, +1)
    eroded = e if eroded is None else eroded.Union(e)
    dilated = d if dilated is None else dilated.Union(d)
inside = rasterise(eroded)
outside = ~rasterise(dilated)
nodata_inside = inside & (flat == 255)
source_nodata = best_cls == 255  # every tile covering the pixel is no data there (or none covers it)
counts.update(inside_footprints=int(inside.sum()), nodata_inside=int(nodata_inside.sum()),
              nodata_inside_unexplained=int((nodata_inside & ~source_nodata).sum()),
              outside_footprints=int(outside.sum()), outside_with_value=int((outside & (flat != 255)).sum()))
assert counts["nodata_inside_unexplained"] == 0, "no-data pixels inside the footprints where a tile has a class"
assert counts["outside_with_value"] == 0, "pixels outside every footprint have a value"
assert inside.sum() > 0 and outside.sum() > 0

# ---- confidence
if a.confidence:
    conf = gdal.Open(a.confidence).ReadAsArray().ravel()
    assert ((conf == 255) == (flat == 255)).all(), "confidence no data differs from class no data"
    keep = ~ambiguous & (flat != 255)
    assert (conf[keep] == best_conf[keep]).all(), "confidence is not the winning tile's"
    counts["confidence_checked"] = int(keep.sum())

print("ok: mosaic checks", json.dumps(counts))
if a.json:
    with open(a.json, "w") as f:
        json.dump(counts, f)
