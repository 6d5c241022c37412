#!/usr/bin/env python3
"""Where a sync Send's CPU goes: `python3 bench/profile.py [SERVICE...]`.

Starts the benchmark topology (bench/bench.py), drives 32 callers of sync `Send`
with k6 for 12 s, and records each named service process (default: delivery,
template, token, logquery) with `perf record -g` meanwhile; prints the top
symbols of each by self time (`perf report --no-children`) and the same self time
summed by crate. Needs linux-perf
(Debian `linux-perf`).
"""

import pathlib
import re
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402


def perf_report(data, *args):
    """The lines of `perf report` (self time, no call graphs) over `data`."""
    out = subprocess.run(
        ["perf", "report", "--no-children", "--stdio", "-g", "none", *args, "-i", data],
        capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if l.strip() and not l.startswith("#")]


GENERIC = {"core", "alloc", "std", "__rust_alloc", "hashbrown"}


def by_crate(lines):
    """Self time summed by the crate a symbol belongs to: the first crate its
    demangled name mentions other than core/alloc/std (`drop_in_place<h2::..>`
    counts for h2), else the object (`[kernel]`, `libc`, `mimalloc`)."""
    totals = {}
    for line in lines:
        parts = line.split()
        if len(parts) < 5 or not parts[0].endswith("%"):
            continue
        share, dso, sym = float(parts[0][:-1]), parts[2], " ".join(parts[4:])
        crates = [c for c in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)::", sym) if c not in GENERIC]
        if crates:
            key = crates[0]
        elif sym.startswith(("mi_", "_mi_")):
            key = "mimalloc"
        else:
            key = dso.strip("[]")
        totals[key] = totals.get(key, 0.0) + share
    return sorted(totals.items(), key=lambda kv: -kv[1])


def main():
    services = sys.argv[1:] or ["delivery", "template", "token", "logquery"]
    bench.ensure_tools()
    topology = bench.Topology(0)
    out = pathlib.Path(tempfile.mkdtemp(prefix="wxpush-profile-"))
    try:
        load = threading.Thread(target=lambda: bench.k6(
            "grpc_send.js", 32, "12s",
            env={"ADDR": topology.addr("delivery"), "PROTO_ROOT": str(bench.ROOT / "proto")}))
        load.start()
        recorders = []
        for p in topology.procs:
            if p.name in services:
                recorders.append((p.name, subprocess.Popen(
                    ["perf", "record", "-F", "499", "-g", "-o", str(out / f"{p.name}.data"),
                     "-p", str(p.popen.pid), "--", "sleep", "8"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        for _, r in recorders:
            r.wait()
        load.join()
        for name, _ in recorders:
            data = str(out / f"{name}.data")
            print(f"\n## {name}: self time by object\n")
            print("\n".join(perf_report(data, "--sort", "dso")[:6]))
            print(f"\n## {name}: top symbols by self time\n")
            print("\n".join(perf_report(data, "--percent-limit", "1.5")[:25]))
            print(f"\n## {name}: self time by crate\n")
            for crate, share in by_crate(perf_report(data))[:20]:
                print(f"    {share:6.2f}%  {crate}")
    finally:
        topology.stop()


if __name__ == "__main__":
    main()
