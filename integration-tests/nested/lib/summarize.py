#!/usr/bin/env python3
"""Summarize run-l1 result.json files: phase times per run, ranges, and ratios.

    summarize.py RESULT.json...

Times are host seconds since L0 started. Intervals reported:
  l0->l1-init, l1-init->kvm-hv, l2-vmm-start->l2-init (VMM start to L2 /init), total.
Ratios are against the L0-start->L1-/init interval of the same run, so they compare phases
measured under the same host load rather than absolute seconds.
"""
import json
import sys

INTERVALS = [
    ("L0 start -> L1 /init", None, "l1-init"),
    ("L1 /init -> kvm-hv loaded", "l1-init", "kvm-hv-loaded"),
    ("L2 VMM start -> L2 /init", "l2-vmm-start", "l2-init"),
    ("L2 /init -> L2 VMM exit", "l2-init", "l2-vmm-exit"),
    ("L0 start -> L0 exit", None, "l0-exit"),
]


def first(phases, name):
    for n, t in phases:
        if n == name:
            return t
    return None


def main():
    rows = []
    for path in sys.argv[1:]:
        with open(path) as fh:
            r = json.load(fh)
        ph = r["phases"]
        vals = {}
        for label, a, b in INTERVALS:
            ta = 0.0 if a is None else first(ph, a)
            tb = first(ph, b)
            vals[label] = None if ta is None or tb is None else tb - ta
        rows.append((path, r, vals))
        print(f"summary: {path}: machine={r['machine']} exit={r['exit']}")
        print(f"summary:   load at start: {r['load_start']}")
        print(f"summary:   load at end:   {r['load_end']}")
        if r.get("concurrent_emulators_at_start"):
            print(f"summary:   WARNING: other emulators were running: "
                  f"{r['concurrent_emulators_at_start']}")
        for n, t in ph:
            print(f"summary:   {t:9.3f}  {n}")
    if not rows:
        return
    print("summary: intervals (s), min-max over %d run(s):" % len(rows))
    for label, _a, _b in INTERVALS:
        v = [x[2][label] for x in rows if x[2][label] is not None]
        if v:
            print(f"summary:   {label:28s} {min(v):7.2f} - {max(v):7.2f}")
    base = "L0 start -> L1 /init"
    print(f"summary: ratios to '{base}' of the same run:")
    for label, _a, _b in INTERVALS[1:]:
        v = [x[2][label] / x[2][base] for x in rows
             if x[2][label] is not None and x[2][base]]
        if v:
            print(f"summary:   {label:28s} {min(v):6.2f}x - {max(v):6.2f}x")


if __name__ == "__main__":
    main()
