#!/usr/bin/env python3
"""Run cairn's benchmark shapes with the workflow tools a cairn user would
otherwise pick: Snakemake and Marin's StepRunner (Python).

Optional companion of `go run ./bench` (which measures cairn, ninja and
make): it prints one JSON line per tool and shape in the same spirit, with
the same shapes and the same environment record, so that the comparison in
the README can be reproduced:

    python3 bench/peers/peers.py [--scale 0.1] [--repeat 3] [--tools snakemake,marin]
                                 [--shapes chain,fanout,grid,fanout-cached] [-j 2] [--tmp /dev/shm]

Every step writes one 1-byte file and nothing else, with no shell command:

  snakemake  a `run:` block (Python) writes the output; one wildcard rule
             with the dependencies as its input function. Snakemake 7 runs
             each such job in a new `python3 -m snakemake` process, so a
             step costs an interpreter start. Debian: apt-get install
             snakemake.
  marin      a StepSpec whose fn writes a file under its output path, run by
             marin.execution.step_runner.StepRunner, which adds Marin's
             control files (.executor_info, .executor_status, the lock).
             Needs a Marin checkout importable as `marin` (set PYTHONPATH or
             MARIN_DIR to the checkout's lib/marin/src); skipped otherwise.

A tool that is not installed is skipped with a message on stderr. Tools are
interleaved within each repetition, the previous tree is removed and the
file systems synced before each timed run, as in `go run ./bench`. Times
are whole processes (interpreter start included), from fork to exit.
"""

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SHAPES = ["chain", "fanout", "grid", "fanout-cached"]


def scaled(n, scale, lo):
    return max(lo, int(round(n * scale)))


def build(shape, scale):
    """Returns (names, deps) in topological order, as bench/shape.go."""
    names, deps = [], []
    if shape == "chain":
        n = scaled(1000, scale, 2)
        for i in range(n):
            names.append(f"chain-{i}")
            deps.append([] if i == 0 else [i - 1])
    elif shape in ("fanout", "fanout-cached"):
        n = scaled(10000, scale, 1)
        names.append("fanout-root")
        deps.append([])
        for i in range(n):
            names.append(f"fanout-{i}")
            deps.append([0])
    elif shape == "grid":
        side = scaled(100, math.sqrt(scale), 2)
        for i in range(side):
            for j in range(side):
                names.append(f"grid-{i}-{j}")
                prev = (i - 1) * side
                deps.append([] if i == 0 else [prev + j, prev + (j + 1) % side])
    else:
        raise SystemExit(f"unknown shape {shape}")
    return names, deps


def fs_type(path):
    try:
        out = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True, check=True)
        name = out.stdout.strip()
        return "ext4" if name == "ext2/ext3" else name
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


SNAKEFILE = """
import json
with open("deps.json") as f:
    DEPS = json.load(f)
SINKS = DEPS.pop("__sinks__")

rule all:
    input: ["out/" + s for s in SINKS]

rule step:
    output: "out/{n}"
    input: lambda wc: ["out/" + d for d in DEPS[wc.n]]
    run:
        with open(output[0], "w") as f:
            f.write("x")
"""

MARIN_SCRIPT = """
import sys, json, os
from marin.execution.step_spec import StepSpec
from marin.execution.step_runner import StepRunner

prefix, jobs = sys.argv[1], int(sys.argv[2])
with open(sys.argv[3]) as f:
    g = json.load(f)

def write(output_path):
    os.makedirs(output_path, exist_ok=True)
    with open(os.path.join(output_path, "out"), "w") as f:
        f.write("x")

specs = []
for name, ds in zip(g["names"], g["deps"]):
    specs.append(StepSpec(name=name, fn=write, deps=[specs[d] for d in ds], output_path_prefix=prefix))
StepRunner().run(specs, max_concurrent=jobs)
"""


class Snakemake:
    name = "snakemake"

    def available(self):
        return shutil.which("snakemake") is not None

    def prepare(self, d, names, deps):
        os.makedirs(os.path.join(d, "out"))
        used = {x for ds in deps for x in ds}
        table = {n: [names[x] for x in ds] for n, ds in zip(names, deps)}
        table["__sinks__"] = [n for i, n in enumerate(names) if i not in used]
        with open(os.path.join(d, "deps.json"), "w") as f:
            json.dump(table, f)
        with open(os.path.join(d, "Snakefile"), "w") as f:
            f.write(SNAKEFILE)

    def argv(self, d, jobs):
        return ["snakemake", "--cores", str(jobs), "--quiet", "--nolock", "-s", os.path.join(d, "Snakefile"), "-d", d]

    def check(self, d, names, cached):
        missing = [n for n in names if not os.path.exists(os.path.join(d, "out", n))]
        if missing:
            raise SystemExit(f"snakemake: {len(missing)} outputs missing in {d} (first {missing[0]})")


class Marin:
    name = "marin"

    def available(self):
        env = self.env()
        r = subprocess.run([sys.executable, "-c", "import marin.execution.step_runner"], env=env, capture_output=True)
        return r.returncode == 0

    def env(self):
        env = dict(os.environ)
        if os.environ.get("MARIN_DIR"):
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ["MARIN_DIR"], env.get("PYTHONPATH")]))
        return env

    def prepare(self, d, names, deps):
        os.makedirs(os.path.join(d, "prefix"))
        with open(os.path.join(d, "graph.json"), "w") as f:
            json.dump({"names": names, "deps": deps}, f)
        with open(os.path.join(d, "run.py"), "w") as f:
            f.write(MARIN_SCRIPT)

    def argv(self, d, jobs):
        return [sys.executable, os.path.join(d, "run.py"), os.path.join(d, "prefix"), str(jobs), os.path.join(d, "graph.json")]

    def check(self, d, names, cached):
        done = sum(1 for e in os.scandir(os.path.join(d, "prefix")) if os.path.exists(os.path.join(e.path, "out")))
        if done != len(names):
            raise SystemExit(f"marin: {done} of {len(names)} steps wrote their output in {d}")


def run_one(tool, d, jobs, names, cached):
    os.sync()
    load = load1()
    start = time.monotonic()
    r = subprocess.run(tool.argv(d, jobs), cwd=d, capture_output=True, text=True,
                       env=tool.env() if hasattr(tool, "env") else None)
    wall = time.monotonic() - start
    if r.returncode != 0:
        raise SystemExit(f"{tool.name} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    tool.check(d, names, cached)
    return wall, load


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--tools", default="snakemake,marin")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("-j", type=int, default=2, help="concurrency of every tool (cores / max_concurrent)")
    ap.add_argument("--tmp", default=None, help="directory for the trees (default $TMPDIR or /tmp)")
    a = ap.parse_args()

    tools = []
    for t in a.tools.split(","):
        tool = {"snakemake": Snakemake, "marin": Marin}[t.strip()]()
        if tool.available():
            tools.append(tool)
        else:
            print(f"peers: skipping {tool.name}: not installed (see the module doc)", file=sys.stderr)
    root = tempfile.mkdtemp(prefix="cairn-peers-", dir=a.tmp)
    env = {"fs": fs_type(root), "dir": root, "kernel": f"{platform.system()} {platform.release()}",
           "cpus": os.cpu_count(), "python": platform.python_version()}
    try:
        for shape in a.shapes.split(","):
            cached = shape.endswith("-cached")
            names, deps = build(shape, a.scale)
            walls = {t.name: [] for t in tools}
            loads = {t.name: [] for t in tools}
            base = {}
            for i in range(a.repeat):
                for k in range(len(tools)):
                    tool = tools[(k + i) % len(tools)]
                    d = os.path.join(root, tool.name, f"{shape}-{i}")
                    if cached:
                        d = base.get(tool.name)
                        if d is None:  # untimed cold run to re-run
                            d = os.path.join(root, tool.name, f"{shape}-base")
                            tool.prepare(d, names, deps)
                            run_one(tool, d, a.j, names, False)
                            base[tool.name] = d
                    else:
                        shutil.rmtree(os.path.join(root, tool.name), ignore_errors=True)
                        tool.prepare(d, names, deps)
                    wall, load = run_one(tool, d, a.j, names, cached)
                    walls[tool.name].append(wall)
                    loads[tool.name].append(load)
            for t in tools:
                w = walls[t.name]
                print(json.dumps({
                    "tool": t.name, "shape": shape, "run": "cached" if cached else "cold", "steps": len(names),
                    "scale": a.scale, "wall_s": statistics.median(w), "wall_s_min": min(w), "wall_s_max": max(w),
                    "steps_per_s": len(names) / statistics.median(w), "repeat": len(w), "jobs": a.j,
                    "step_work": {"snakemake": "a run: block writing a 1-byte file, in a new python3 -m snakemake process per job", "marin": "a Python function writing a 1-byte file, in the StepRunner's thread pool"}[t.name],
                    "env": dict(env, load1=statistics.median(loads[t.name]), load1_max=max(loads[t.name])),
                }), flush=True)
            for t in tools:
                if cached:
                    shutil.rmtree(os.path.join(root, t.name), ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
