"""Compares two s2crop HDF5 files: every dataset byte for byte (dtype, shape, values) and every attribute,
except the creation time (and any attribute named by --ignore-attr NAME, repeatable). Exit 0 if identical, 1 with
the first differences otherwise.
  --values-of-a   only A's datasets, by value, must be in B: attributes and objects only B has are not compared (an
                  older s2crop's output against a newer one that adds metadata, e.g. CF grid mapping)"""
import sys

import h5py
import numpy as np

IGNORED_ATTRS = {"created"}
VALUES_OF_A = False


def attrs(obj):
    out = {}
    for k, v in obj.attrs.items():
        if k in IGNORED_ATTRS or k in ("DIMENSION_LIST", "REFERENCE_LIST"):
            continue  # object references differ in address, not meaning; scales are compared as datasets
        out[k] = v.tolist() if isinstance(v, np.ndarray) else v
    return out


def collect(f):
    items = {}

    def visit(name, obj):
        items[name] = obj

    f.visititems(visit)
    return items


def main(a_path, b_path):
    problems = []
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        if attrs(a) != attrs(b) and not VALUES_OF_A:
            problems.append("root attributes differ")
        ia, ib = collect(a), collect(b)
        if VALUES_OF_A:
            ia = {k: v for k, v in ia.items() if isinstance(v, h5py.Dataset)}
            if set(ia) - set(ib):
                problems.append(f"datasets only in A: {sorted(set(ia) - set(ib))}")
        elif set(ia) != set(ib):
            problems.append(f"objects differ: only in A {sorted(set(ia) - set(ib))}, only in B {sorted(set(ib) - set(ia))}")
        for name in sorted(set(ia) & set(ib)):
            oa, ob = ia[name], ib[name]
            if attrs(oa) != attrs(ob) and not VALUES_OF_A:
                problems.append(f"{name}: attributes differ")
            if isinstance(oa, h5py.Dataset):
                if oa.dtype != ob.dtype or oa.shape != ob.shape:
                    problems.append(f"{name}: dtype/shape {oa.dtype}{oa.shape} vs {ob.dtype}{ob.shape}")
                    continue
                va, vb = oa[()], ob[()]
                if isinstance(va, np.ndarray) and va.dtype.kind == "O":  # variable-length strings: by value
                    if va.tolist() != vb.tolist():
                        diff = sum(x != y for x, y in zip(va.ravel().tolist(), vb.ravel().tolist()))
                        problems.append(f"{name}: {diff} values differ")
                elif isinstance(va, np.ndarray):
                    if va.tobytes() != vb.tobytes():
                        diff = np.count_nonzero(va != vb)
                        problems.append(f"{name}: {diff} values differ")
                elif va != vb:
                    problems.append(f"{name}: differs")
    if problems:
        print("DIFFERENT:", a_path, b_path)
        for p in problems[:20]:
            print("  ", p)
        return 1
    print("identical:", a_path, b_path, f"({len(ia)} objects)")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    while "--ignore-attr" in args:
        i = args.index("--ignore-attr")
        IGNORED_ATTRS.add(args[i + 1])
        del args[i:i + 2]
    if "--values-of-a" in args:
        VALUES_OF_A = True
        args.remove("--values-of-a")
    sys.exit(main(args[0], args[1]))
