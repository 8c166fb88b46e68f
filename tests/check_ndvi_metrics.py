#!/usr/bin/python3
"""Checks `s2crop ndvi evaluate` JSON files: the model's overall RMSE must be below every baseline's (optionally
only the baselines named with --beat), prints the side-by-side table."""
import argparse
import json

ap = argparse.ArgumentParser()
ap.add_argument("metrics", nargs="+")
ap.add_argument("--beat", default="", help="comma-separated baselines the model must beat (default: all)")
a = ap.parse_args()
ok = True
for path in a.metrics:
    m = json.load(open(path))
    overall = m["overall"]
    row = ", ".join(f"{k} {v['rmse']:.4f}" for k, v in overall.items())
    print(f"{m['task']} on {m['tiles'] or 'all'} ({overall['model']['n']} targets) RMSE: {row}")
    for h in m["per_horizon"]:
        print(f"  horizon {h['horizon']}: " + ", ".join(f"{k} {v['rmse']:.4f}" for k, v in h["metrics"].items()))
    must = [b for b in overall if b != "model" and (not a.beat or b in a.beat.split(","))]
    for b in must:
        if not overall["model"]["rmse"] < overall[b]["rmse"]:
            print(f"  FAIL: model RMSE {overall['model']['rmse']:.4f} does not beat {b} {overall[b]['rmse']:.4f}")
            ok = False
raise SystemExit(0 if ok else 1)
