"""GIS tools place s2crop's HDF5 outputs where the COG exports are: gdalinfo through GDAL's netCDF driver (the view
QGIS and rioxarray share, CF-1.8 grid_mapping) reports the same CRS, origin and pixel size for every variable as for
the tile's COG export.

    check_cf_georeference.py COG FILE:/tiles/<tile>/<variable> ...
"""
import json
import subprocess
import sys

from osgeo import osr


def gdalinfo(name):
    p = subprocess.run(["gdalinfo", "-json", name], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        sys.exit(f"gdalinfo {name}: exit {p.returncode}: {p.stderr.strip()}")
    return json.loads(p.stdout)


def georeference(info, name):
    wkt = info.get("coordinateSystem", {}).get("wkt", "")
    gt = info.get("geoTransform")
    if not wkt or not gt:
        sys.exit(f"{name}: gdalinfo reports no {'CRS' if not wkt else 'geotransform'}: GIS tools cannot place it")
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    return srs, gt, info["size"]


def main():
    cog = sys.argv[1]
    ref_srs, ref_gt, ref_size = georeference(gdalinfo(cog), cog)
    errors = []
    for arg in sys.argv[2:]:
        path, var = arg.split(":", 1)
        name = f'NETCDF:"{path}":{var}'
        info = gdalinfo(name)
        if info.get("driverShortName") != "netCDF":
            errors.append(f"{name}: opened by {info.get('driverShortName')}, not GDAL's netCDF driver")
        srs, gt, size = georeference(info, name)
        if not srs.IsSame(ref_srs):
            errors.append(f"{name}: CRS {srs.GetName()} differs from the COG's {ref_srs.GetName()}")
        if any(abs(a - b) > 1e-6 for a, b in zip(gt, ref_gt)):
            errors.append(f"{name}: geotransform {gt} differs from the COG's {ref_gt}")
        if size != ref_size:
            errors.append(f"{name}: size {size} differs from the COG's {ref_size}")
        print(f"{name}: {srs.GetName()}, origin ({gt[0]}, {gt[3]}), pixel {gt[1]} x {gt[5]}")
    if errors:
        sys.exit("\n".join(errors))


main()
