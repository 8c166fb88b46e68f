"""Opens s2crop's HDF5 outputs with the common readers: gdalinfo (the whole file and every subdataset it lists),
gdalmdiminfo (GDAL's multidimensional view) and xarray.open_dataset with the netCDF4 and the h5netcdf engine (the
root and every group holding datasets).

    check_output_readers.py KIND=FILE ...

Each reader runs in a child process, so a crash (libnetcdf's abort, GDAL's segfault) is reported with the file, group
and engine instead of ending the check. Besides opening, it checks what the reader shows against h5py: every dataset
is a variable of the same shape, with the names of its dimension scales as dimensions, string coordinates with the
same labels, and every root attribute (empty lists included) present; no attribute is an empty array (DESIGN.md);
KIND adds the variables and dimensions the README documents. Groups whose datasets have no dimension scales
(training sets, patch sets, model weights) have phony dimensions: netCDF4 names them itself, h5netcdf needs
phony_dims="sort".
"""
import json
import os
import subprocess
import sys

# Variables and their dimensions per kind of output, in the group tiles/<tile> (or "/" for per-sample files).
EXPECT = {
    "composite": {"tile": {"reflectance": ("month", "band", "y", "x"), "clear_count": ("month", "y", "x"),
                           "month": ("month",), "band": ("band",), "x": ("x",), "y": ("y",)}},
    "map": {"tile": {"class": ("y", "x"), "confidence": ("y", "x"), "probability": ("class_name", "y", "x"),
                     "class_name": ("class_name",)}},
    "ndvi": {"tile": {"ndvi_filled": ("month", "y", "x"), "ndvi_predicted": ("month", "y", "x"), "month": ("month",)}},
    "ndvi_forecast": {"tile": {"ndvi_forecast": ("forecast_month", "y", "x")}},
    "segment_map": {"tile": {"class": ("y", "x"), "confidence": ("y", "x")}},
    "training_set": {"/": {"x": 3, "y": 1, "tile": 1, "row": 1, "col": 1}},
    "patch_set": {"/": {"x": 5, "labels": 4, "tile": 1}},
    "predictions": {"/": {"prediction": 4, "tile": 1}},
    "model": {"/parameters": {}},
}


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def describe(path):
    """h5py's view: {group: {"labelled": bool, "vars": {name: [shape, dims or None, strings or None]}}}, root attrs."""
    import h5py
    import numpy as np
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if not isinstance(obj, h5py.Group):
                return
            dsets = {k: v for k, v in obj.items() if isinstance(v, h5py.Dataset)}
            if not dsets and name != "/":
                return
            g = {"labelled": True, "vars": {}}
            for k, d in dsets.items():
                if h5py.h5ds.is_scale(d.id) and d.ndim == 1:  # a coordinate: its own dimension
                    dims = [k]
                else:
                    dims = [d.dims[i][0].name.rsplit("/", 1)[-1] if len(d.dims[i]) else None for i in range(d.ndim)]
                if None in dims:
                    g["labelled"], dims = False, None
                strings = [text(s) for s in d[()]] if d.dtype.kind in "OS" and d.ndim == 1 else None
                g["vars"][k] = [list(d.shape), dims, strings]
            out[name] = g
        visit("/", f)
        f.visititems(lambda n, o: visit("/" + n, o))
        def empty_arrays(name, obj):  # DESIGN.md: no empty array attributes (GDAL crashes or reads garbage)
            for k in obj.attrs:
                space = obj.attrs.get_id(k).get_space()
                if space.get_simple_extent_type() == h5py.h5s.SIMPLE and space.get_simple_extent_npoints() == 0:
                    empty.append(f"{name}:{k}")
        empty = []
        empty_arrays("/", f)
        f.visititems(lambda n, o: empty_arrays("/" + n, o))
        attrs = {}
        for k, v in f.attrs.items():
            if isinstance(v, (bytes, str)):
                attrs[k] = text(v)
            elif isinstance(v, np.ndarray) and v.dtype.kind in "OS":
                attrs[k] = [text(s) for s in v]
            else:
                attrs[k] = None  # numbers: present is enough
    return out, attrs, empty


def xarray_child(engine, jobs):
    """Child process: opens each (file, group) with xarray, printing a line before (for crash reports) and a JSON
    result after each."""
    import warnings
    import xarray as xr
    warnings.simplefilter("ignore")
    for path, group, labelled in jobs:
        print("open", path, group, flush=True)
        kw = {} if labelled or engine == "netcdf4" else {"phony_dims": "sort"}
        try:
            with xr.open_dataset(path, group=None if group == "/" else group, engine=engine, **kw) as ds:
                res = {"vars": {k: [list(v.shape), list(v.dims),
                                    [text(s) for s in v.values] if v.dtype.kind in "OSU" and v.ndim == 1 else None]
                                for k, v in ds.variables.items()},
                       "attrs": {k: (text(v) if isinstance(v, (bytes, str)) else
                                     [text(s) for s in v] if hasattr(v, "dtype") and v.dtype.kind in "OSU" else
                                     [text(s) for s in v] if isinstance(v, list) else None)
                                 for k, v in ds.attrs.items()}}
        except Exception as e:  # noqa: BLE001 - reported by the parent
            res = {"error": f"{type(e).__name__}: {e}"}
        print("result", json.dumps(res), flush=True)


def run_xarray(engine, jobs):
    """Runs the jobs in children, restarting after a crash; returns one result (or crash report) per job."""
    results, i = [], 0
    while i < len(jobs):
        p = subprocess.run([sys.executable, __file__, "--child", engine, json.dumps(jobs[i:])],
                           capture_output=True, text=True, timeout=600)
        lines = p.stdout.splitlines()
        for line in lines:
            if line.startswith("result "):
                results.append(json.loads(line[7:]))
                i += 1
        if p.returncode != 0:
            tail = (p.stderr.strip().splitlines() or [""])[-1]
            how = f"signal {-p.returncode}" if p.returncode < 0 else f"exit {p.returncode}"
            results.append({"error": f"the reader crashed ({how}{': ' + tail if tail else ''})"})
            i += 1
    return results


def gdal_check(path, errors):
    """gdalinfo on the file and on every subdataset it lists; returns the number of subdatasets opened."""
    def gdalinfo(name):
        p = subprocess.run(["gdalinfo", name], capture_output=True, text=True, timeout=300)
        if p.returncode < 0:
            errors.append(f"gdalinfo {name}: crashed (signal {-p.returncode})")
        elif p.returncode != 0:
            errors.append(f"gdalinfo {name}: exit {p.returncode} ({(p.stderr.strip().splitlines() or [''])[-1]})")
        return p.stdout
    info = gdalinfo(path)
    subs = [line.split("=", 1)[1] for line in info.splitlines() if "SUBDATASET_" in line and "_NAME=" in line]
    for s in subs:
        gdalinfo(s)
    if info and "format=" not in info:
        errors.append(f"gdalinfo {path}: the root attribute 'format' is not in its metadata")
    return len(subs)


def mdim_check(path, groups, errors):
    """gdalmdiminfo (GDAL's multidimensional API, which reads the 4-D reflectance too): every dataset is an array
    of the same shape, with its dimension scales as dimensions."""
    p = subprocess.run(["gdalmdiminfo", path], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        how = f"crashed (signal {-p.returncode})" if p.returncode < 0 else f"exit {p.returncode}"
        errors.append(f"gdalmdiminfo {path}: {how}")
        return
    info = json.loads(p.stdout)
    for group, g in groups.items():
        node = info
        for part in [q for q in group.split("/") if q]:
            node = node.get("groups", {}).get(part, {})
        arrays = node.get("arrays", {})
        for name, (shape, dims, _) in g["vars"].items():
            a = arrays.get(name)
            if a is None:
                errors.append(f"gdalmdiminfo {path}: no array {group.rstrip('/')}/{name}")
                continue
            # dimensions: full names (/tiles/33UVP/month) of scales, or anonymous dimensions (dicts with a size)
            names = [d.rsplit("/", 1)[-1] if isinstance(d, str) else None for d in a.get("dimensions", [])]
            if dims is not None and names != dims:
                errors.append(f"gdalmdiminfo {path}: {group.rstrip('/')}/{name} has dimensions {names}, scales {dims}")
            sizes = [d["size"] for d in a.get("dimensions", []) if isinstance(d, dict)]
            if dims is None and sizes and sizes != shape:
                errors.append(f"gdalmdiminfo {path}: {group.rstrip('/')}/{name} has shape {sizes}, h5py {shape}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        xarray_child(sys.argv[2], json.loads(sys.argv[3]))
        return
    files = [a.split("=", 1) for a in sys.argv[1:]]
    errors, jobs, views = [], [], {}
    for kind, path in files:
        n = gdal_check(path, errors)
        groups, attrs, empty = describe(path)
        views[path] = (kind, groups, attrs)
        if empty:
            errors.append(f"{path}: empty array attributes {', '.join(empty)}")
        mdim_check(path, groups, errors)
        for group, g in groups.items():
            jobs.append((path, group, g["labelled"]))
        print(f"gdalinfo: {os.path.basename(path)} ({kind}) and its {n} subdatasets; gdalmdiminfo")
    for engine in ("netcdf4", "h5netcdf"):
        for (path, group, labelled), res in zip(jobs, run_xarray(engine, jobs)):
            kind, groups, attrs = views[path]
            where = f"xarray engine={engine} {os.path.basename(path)} group={group}"
            if "error" in res:
                errors.append(f"{where}: {res['error']}")
                continue
            for name, (shape, dims, strings) in groups[group]["vars"].items():
                got = res["vars"].get(name)
                if got is None:
                    errors.append(f"{where}: variable {name} missing ({sorted(res['vars'])})")
                    continue
                if got[0] != shape:
                    errors.append(f"{where}: {name} has shape {got[0]}, h5py {shape}")
                if dims is not None and got[1] != dims:
                    errors.append(f"{where}: {name} has dimensions {got[1]}, the scales are {dims}")
                if strings is not None and got[2] != strings:
                    errors.append(f"{where}: {name} reads {got[2]}, h5py {strings}")
            want = EXPECT.get(kind, {}).get("tile" if group.startswith("/tiles/") else group, {})
            for name, dims in want.items():
                got = res["vars"].get(name)
                if got is None:
                    errors.append(f"{where}: expected variable {name} missing")
                elif isinstance(dims, int) and len(got[1]) != dims:
                    errors.append(f"{where}: {name} has dimensions {got[1]}, expected {dims}")
                elif isinstance(dims, tuple) and tuple(got[1]) != dims:
                    errors.append(f"{where}: {name} has dimensions {got[1]}, expected {list(dims)}")
            if group == "/":
                for k, v in attrs.items():
                    if k not in res["attrs"]:
                        errors.append(f"{where}: root attribute {k} missing")
                    elif isinstance(v, list) and res["attrs"][k] not in (v, "".join(v)):
                        errors.append(f"{where}: root attribute {k} reads {res['attrs'][k]!r}, h5py {v!r}")
        print(f"xarray engine={engine}: {len(jobs)} groups of {len(files)} files opened")
    for kind, path in files:  # every kind expected in a tile group must have had one
        if any(k == "tile" for k in EXPECT.get(kind, {})) and not any(g.startswith("/tiles/") for g in views[path][1]):
            errors.append(f"{path}: no group tiles/<tile>")
    if errors:
        print("\n".join("FAIL: " + e for e in errors))
        sys.exit(1)
    print(f"ok: {len(files)} files open in gdalinfo and xarray (netCDF4 and h5netcdf)")


if __name__ == "__main__":
    main()
