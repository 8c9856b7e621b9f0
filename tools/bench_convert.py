#!/usr/bin/env python3
"""Benchmark: conversion against the physical limit (parse + serialize + copy), memory, start-up.

    .venv/bin/python tools/bench_convert.py                    # the whole table (a few minutes)
    .venv/bin/python tools/bench_convert.py --models gen-30k example --repeat 1
    .venv/bin/python tools/bench_convert.py --markdown         # the table of docs/performance.md
    .venv/bin/python tools/bench_convert.py --baseline 7103432 --markdown   # before / after, side by side
    .venv/bin/python tools/bench_convert.py --models path/to/saved_model_dir  # your own model
    .venv/bin/python tools/bench_convert.py --models gen-30k --floor   # what this design spends at least

Every ratio is measured side by side in one run, on this machine, as it is loaded right now.
Times are CPU seconds (user + system, of this process or of the child) and the ratios are taken
on them: on a shared machine wall time measures the neighbours (the wall times are printed too).

  time   `plan` + `write` (no parity), in a fresh process, against the physical limit: parse
         saved_model.pb, serialize it again and copy variables/. The two are measured in turn in
         that process, --repeat times: the ratio is the median of the --repeat paired ratios, each
         taken a second apart (a shared machine's speed drifts by 2x over tens of seconds here), and
         the times shown are the best of each;
  RSS    peak RSS of `tfdowngrade IN OUT --to T --no-verify` in a fresh process (os.wait4),
         against 300 MB + 15 x the size of saved_model.pb (the budget of issue 14);
  start  `tfdowngrade check` on the bundled example, in a fresh process, against
         `python -c "import google.protobuf"` (best of --repeat, with bytecode cached as an
         installed package has it).

--baseline REF measures the same models with the code of git commit REF too (exported into a
temporary folder with `git archive`, run with the same interpreter), model by model in the same
run, so before and after see the same machine load. Both sides load the installed rules (this
checkout's, through the `tfdowngrade_rules` package), so what differs is the code; a baseline
too old to read today's rule files fails, and its row says "(refused)".

Models (all built without TensorFlow, from the committed fixtures, in a temporary directory):
  gen-30k / gen-300k  golden/fixtures/keras3_cnn with its function library copied until the model
                      has about 30k / 300k nodes (each copy renamed, its calls pointing at its
                      own copies): the rewrite work a large real model has (VarHandleOp debug_name,
                      DisableCopyOnRead) in every copy, and every function validated;
  const-100MB         golden/fixtures/tf_module with one float Const of 100 MB in its GraphDef;
  <fixture name>      each committed fixture, and `example` (golden/examples/keras_cnn).
A goal, not a test: nothing asserts on these numbers.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
FIXTURES = REPO / "golden" / "fixtures"
EXAMPLE = REPO / "golden" / "examples" / "keras_cnn"
CONVERT = "import sys\nfrom rewriter.cli import main\nsys.exit(main(sys.argv[1:]))\n"
# The same, then its own peak RSS (VmHWM of this process's memory since exec) on stdout's last line.
# Not os.wait4's ru_maxrss: Linux carries the parent's high-water mark over fork+exec into it.
CONVERT_RSS = (
    "import sys\nfrom rewriter.cli import main\ntry:\n    code = main(sys.argv[1:])\nfinally:\n"
    "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
    "    print('VmHWM', int(hwm) * 1024)\nsys.exit(code)\n"
)
MIB = 1 << 20


def grow_library(source: Path, out: Path, nodes: int) -> int:
    """Copy SOURCE to OUT with its function library repeated until the model has `nodes` nodes."""
    from rewriter.protos import saved_model_pb2

    shutil.copytree(source, out)
    (out / "fingerprint.pb").unlink(missing_ok=True)  # it would not match the new graph
    proto = saved_model_pb2.SavedModel.FromString((source / "saved_model.pb").read_bytes())
    graph_def = proto.meta_graphs[0].graph_def
    originals = list(graph_def.library.function)
    names = {f.signature.name for f in originals}
    total = len(graph_def.node) + sum(len(f.node_def) for f in originals)
    per_copy = sum(len(f.node_def) for f in originals)
    copy = 0
    while total < nodes:
        suffix = f"_copy{copy}"
        for function in originals:
            clone = graph_def.library.function.add()
            clone.CopyFrom(function)
            clone.signature.name += suffix
            for node in clone.node_def:
                if node.op in names:
                    node.op += suffix
                for value in node.attr.values():
                    if value.HasField("func") and value.func.name in names:
                        value.func.name += suffix
                    for func in value.list.func:
                        if func.name in names:
                            func.name += suffix
        total += per_copy
        copy += 1
    (out / "saved_model.pb").write_bytes(proto.SerializeToString(deterministic=True))
    return total


def big_constant(source: Path, out: Path, size: int) -> int:
    """Copy SOURCE to OUT with one float Const of `size` bytes of tensor_content added."""
    from rewriter.protos import saved_model_pb2, types_pb2

    shutil.copytree(source, out)
    (out / "fingerprint.pb").unlink(missing_ok=True)
    proto = saved_model_pb2.SavedModel.FromString((source / "saved_model.pb").read_bytes())
    graph_def = proto.meta_graphs[0].graph_def
    const = graph_def.node.add(name="bench/weights", op="Const")
    const.attr["dtype"].type = types_pb2.DT_FLOAT
    tensor = const.attr["value"].tensor
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add().size = size // 4
    tensor.tensor_content = (bytes(range(256)) * (size // 256 + 1))[: size // 4 * 4]  # no run of zeros
    (out / "saved_model.pb").write_bytes(proto.SerializeToString(deterministic=True))
    return len(graph_def.node) + sum(len(f.node_def) for f in graph_def.library.function)


def count_nodes(model: Path) -> int:
    from rewriter.protos import saved_model_pb2

    proto = saved_model_pb2.SavedModel.FromString((model / "saved_model.pb").read_bytes())
    return sum(len(m.graph_def.node) + sum(len(f.node_def) for f in m.graph_def.library.function)
               for m in proto.meta_graphs)


@dataclass
class Seconds:
    cpu: float = float("inf")
    wall: float = float("inf")

    def min(self, other: "Seconds") -> "Seconds":
        return Seconds(min(self.cpu, other.cpu), min(self.wall, other.wall))


class Clock:
    """CPU (user + system) and wall seconds since creation, of this process or of its children."""

    def __init__(self, children: bool = False) -> None:
        self.who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
        self.cpu, self.wall = self._cpu(), time.perf_counter()

    def _cpu(self) -> float:
        usage = resource.getrusage(self.who)
        return usage.ru_utime + usage.ru_stime

    def stop(self) -> Seconds:
        return Seconds(self._cpu() - self.cpu, time.perf_counter() - self.wall)


# The physical limit, and plan + write of one model, measured in turn REPEAT times in a fresh
# interpreter whose `rewriter` is the one under ROOT (this checkout or a baseline's); prints one
# line "limit_cpu limit_wall convert_cpu convert_wall" per attempt, then "ok" or "refused". The
# module paths moved in the layout change: parse_release is taken from the module the pipeline's
# Release comes from.
CONVERT_TIME = """
import os, resource, shutil, sys, time
root, model, out, target, repeat = sys.argv[1:6]
sys.path.insert(0, root)
from pathlib import Path
from rewriter.pipeline import Options, Release, plan, write
from rewriter.protos import saved_model_pb2
parse_release = sys.modules[Release.__module__].parse_release  # wherever that checkout keeps it
model, out = Path(model), Path(out)

def clock():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, time.perf_counter()

def since(start):
    cpu, wall = clock()
    return cpu - start[0], wall - start[1]

ok = True
for attempt in range(int(repeat)):
    start = clock()  # the physical limit: parse, serialize, copy variables/
    proto = saved_model_pb2.SavedModel.FromString((model / "saved_model.pb").read_bytes())
    out.mkdir()
    (out / "saved_model.pb").write_bytes(proto.SerializeToString(deterministic=True))
    if (model / "variables").is_dir():
        shutil.copytree(model / "variables", out / "variables")
    limit = since(start)
    del proto
    shutil.rmtree(out)
    start = clock()
    planned = plan(model, Options(target=parse_release(target)))
    ok = planned.ok
    if ok:
        write(planned, out, force=True)
    convert = since(start)
    del planned
    shutil.rmtree(out, ignore_errors=True)
    print(*limit, *convert)
print("ok" if ok else "refused")
"""


# What the design's own per-node passes cost at least, against the limit, in turn with it
# (--floor, this checkout only): one read of every node of every scope (savedmodel.node_reading,
# which the structure checks and the validator share), and the networkx graph models of the scopes
# the rules rewrite (the design card's model of every rewritten graph), without any check or rule.
# Prints "limit_cpu read_cpu models_cpu" per attempt.
FLOOR_TIME = """
import resource, sys
from pathlib import Path
from rewriter.pipeline import Options, Release, plan
from rewriter.protos import saved_model_pb2
from rewriter.savedmodel.node_reading import NodeKinds
from rewriter.savedmodel.graph_model import scope_from_function, scope_from_graph_def
parse_release = sys.modules[Release.__module__].parse_release
model, target, repeat = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

rewritten = {app.where for app in plan(model, Options(target=parse_release(target))).applications}
data = (model / "saved_model.pb").read_bytes()
proto = saved_model_pb2.SavedModel.FromString(data)
for attempt in range(repeat):
    start = cpu()
    saved_model_pb2.SavedModel.FromString(data).SerializeToString(deterministic=True)
    limit = cpu() - start
    start = cpu()
    kinds = NodeKinds()
    for meta_graph in proto.meta_graphs:
        kinds.read_nodes(meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            kinds.read_nodes(function.node_def)
    read = cpu() - start
    start = cpu()
    for index, meta_graph in enumerate(proto.meta_graphs):
        if any(where.startswith("graph ") for where in rewritten):
            scope_from_graph_def(f"meta_graph_{index}", meta_graph.graph_def)
        for function in meta_graph.graph_def.library.function:
            if "function " + function.signature.name in rewritten:
                scope_from_function(function)
    models = cpu() - start
    print(limit, read, models)
"""


@dataclass
class Timing:
    """The attempts of one model's measurement: the limit's and the conversion's times, in turn."""

    limits: list[Seconds]
    converts: list[Seconds]

    @property
    def limit(self) -> Seconds:
        return _best(self.limits)

    @property
    def convert(self) -> Seconds:
        return _best(self.converts)

    @property
    def ratios(self) -> list[float]:
        """Each attempt's conversion CPU time over the limit's just before it, in order."""
        return [c.cpu / max(l.cpu, 1e-3) for l, c in zip(self.limits, self.converts)]  # (getrusage ticks: 1-4 ms)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


def _best(times: list[Seconds]) -> Seconds:
    best = Seconds()
    for seconds in times:
        best = best.min(seconds)
    return best


def conversion(root: Path, model: Path, scratch: Path, target: str, repeat: int) -> tuple[Timing, bool]:
    """The limit and plan + write with the code under `root`, in turn, in a fresh process; whether it converts."""
    proc = subprocess.run([sys.executable, "-c", CONVERT_TIME, str(root), str(model), str(scratch / "out"), target,
                           str(repeat)], capture_output=True, text=True, cwd=root)
    if proc.returncode != 0:
        raise SystemExit(f"plan + write failed under {root}:\n{proc.stderr[-2000:]}")
    *attempts, verdict = proc.stdout.split("\n")[-repeat - 2:-1]
    timing = Timing([], [])
    for line in attempts:
        limit_cpu, limit_wall, convert_cpu, convert_wall = map(float, line.split())
        timing.limits.append(Seconds(limit_cpu, limit_wall))
        timing.converts.append(Seconds(convert_cpu, convert_wall))
    return timing, verdict == "ok"


def floor(model: Path, target: str, repeat: int) -> tuple[float, float]:
    """The median paired ratios to the limit (parse + serialize only) of one read of every node and
    of the graph models of the rewritten scopes (FLOOR_TIME), with this checkout's code."""
    proc = subprocess.run([sys.executable, "-c", FLOOR_TIME, str(model), target, str(repeat)],
                          capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"--floor failed:\n{proc.stderr[-2000:]}")
    rows = [tuple(map(float, line.split())) for line in proc.stdout.strip().splitlines()[-repeat:]]
    return (statistics.median(read / max(limit, 1e-3) for limit, read, _ in rows),
            statistics.median(models / max(limit, 1e-3) for limit, _, models in rows))


def peak_rss(args: list[str], root: Path = REPO) -> tuple[int, int]:
    """(exit code, peak RSS in bytes) of `tfdowngrade ARGS` in a fresh process, with the code under `root`."""
    proc = subprocess.run([sys.executable, "-c", CONVERT_RSS, *args], capture_output=True, text=True, cwd=root)
    last = proc.stdout.strip().splitlines()[-1].split()
    return proc.returncode, int(last[1])


def run_time(command: list[str], repeat: int, pycache: Path) -> Seconds:
    """Best time of `command`, with Python's bytecode cached (in `pycache`, warmed by one run first)
    as an installed package has it (pip compiles it), whatever PYTHONDONTWRITEBYTECODE says here:
    without the cache every start compiles the package's modules again (0.2 s)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    best = Seconds()
    for attempt in range(repeat + 1):
        clock = Clock(children=True)
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, check=False, env=env)
        if attempt:
            best = best.min(clock.stop())
    return best


@dataclass
class Row:
    model: str
    pb_mib: float
    nodes: int
    timing: Timing
    rss_mib: float
    ok: bool
    before: "Row | None" = None  # the same model with --baseline's code

    @property
    def limit(self) -> Seconds:
        return self.timing.limit

    @property
    def convert(self) -> Seconds:
        return self.timing.convert

    @property
    def ratio(self) -> float:
        return self.timing.ratio

    @property
    def spread(self) -> str:
        """The lowest and highest of the paired ratios."""
        ratios = self.timing.ratios
        return f"{min(ratios):.1f}x-{max(ratios):.1f}x"

    @property
    def rss_budget_mib(self) -> float:
        return 300 + 15 * self.pb_mib


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    choices = ["gen-30k", "gen-300k", "const-100MB", "example", *sorted(p.name for p in FIXTURES.iterdir())]
    parser.add_argument("--models", nargs="*", default=choices, metavar="MODEL",
                        help=f"any of {', '.join(choices)}, or the path of a SavedModel folder (copied, never changed)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--to", default="2.3")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--baseline", metavar="REF", help="also measure the code of git commit REF, side by side")
    parser.add_argument("--floor", action="store_true",
                        help="also measure what one read of every node and the graph models of the rewritten scopes "
                             "cost against parse + serialize (what any conversion of this design spends at least)")
    args = parser.parse_args()
    for name in args.models:
        if name not in choices and not (Path(name) / "saved_model.pb").is_file():
            parser.error(f"--models {name}: neither one of {', '.join(choices)} nor a SavedModel folder")

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        root = Path(tmp)
        baseline = None
        if args.baseline:
            baseline = root / "baseline"
            baseline.mkdir()
            archive = subprocess.run(["git", "archive", args.baseline], cwd=REPO, capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
        for name in args.models:
            if name not in choices:  # a SavedModel folder of the user's: measured on a copy
                source, name = Path(name), f"{Path(name).resolve().name} (yours)"
                model = root / name
                shutil.copytree(source, model)
                nodes = count_nodes(model)
            elif name.startswith("gen-"):
                model = root / name
                nodes = grow_library(FIXTURES / "keras3_cnn" / "saved_model", model, int(name[4:-1]) * 1000)
            elif name == "const-100MB":
                model = root / name
                nodes = big_constant(FIXTURES / "tf_module" / "saved_model", model, 100 * MIB)
            else:
                model = root / name
                shutil.copytree(EXAMPLE if name == "example" else FIXTURES / name / "saved_model", model)
                nodes = count_nodes(model)
            scratch = root / f"{name}-scratch"
            scratch.mkdir()
            pb_mib = (model / "saved_model.pb").stat().st_size / MIB
            cli_args = [str(model), str(scratch / "cli-out"), "--to", args.to, "--no-verify", "-q", "--force"]
            before = None
            if baseline is not None:
                timing, ok = conversion(baseline, model, scratch, args.to, args.repeat)
                code, rss = peak_rss(cli_args, baseline)
                before = Row(name, pb_mib, nodes, timing, rss / MIB, ok and code == 0)
            timing, ok = conversion(REPO, model, scratch, args.to, args.repeat)
            code, rss = peak_rss(cli_args)
            row = Row(name, pb_mib, nodes, timing, rss / MIB, ok and code == 0, before)
            rows.append(row)
            print(f"{name}: {row.nodes} nodes, {row.pb_mib:.1f} MiB: limit {row.limit.cpu:.3f} s cpu, plan+write "
                  f"{row.convert.cpu:.3f} s cpu (paired ratios: median {row.ratio:.1f}x, {row.spread}), peak RSS "
                  f"{row.rss_mib:.0f} MiB (budget {row.rss_budget_mib:.0f})" + ("" if row.ok else " NOT CONVERTED")
                  + (f"; baseline {before.convert.cpu:.3f} s cpu ({before.ratio:.1f}x, {before.spread}), "
                     f"{before.rss_mib:.0f} MiB" if before is not None else ""), file=sys.stderr, flush=True)
            if args.floor:
                read, models = floor(model, args.to, args.repeat)
                print(f"{name}: floor (median of paired ratios to parse + serialize): one read of every node {read:.1f}x, "
                      f"graph models of the rewritten scopes {models:.1f}x", file=sys.stderr, flush=True)
            shutil.rmtree(scratch)
            shutil.rmtree(model)
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as pycache:
        import_protobuf = run_time([sys.executable, "-c", "import google.protobuf"], args.repeat, Path(pycache))
        check = run_time([sys.executable, "-c", CONVERT, "check", str(EXAMPLE), "--to", args.to], args.repeat,
                         Path(pycache))
    by_name = {r.model: r for r in rows}
    growth = (by_name["gen-300k"].convert.cpu / by_name["gen-30k"].convert.cpu
              if "gen-30k" in by_name and "gen-300k" in by_name else None)
    if args.markdown and args.baseline:
        print(f"| model | saved_model.pb | nodes | parse + serialize + copy (CPU) | plan + write, {args.baseline} (CPU) | "
              "plan + write, now (CPU) | ratio before / now (median of paired) | peak RSS before / now | RSS budget |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            b = r.before
            assert b is not None
            flag = "" if r.ok and b.ok else " (refused)"
            print(f"| {r.model}{flag} | {r.pb_mib:.2f} MiB | {r.nodes:,} | {r.limit.cpu:.3f} s | {b.convert.cpu:.3f} s | "
                  f"{r.convert.cpu:.3f} s | {b.ratio:.1f}x / **{r.ratio:.1f}x** ({r.spread}) | {b.rss_mib:.0f} / **{r.rss_mib:.0f}** MiB | "
                  f"{r.rss_budget_mib:.0f} MiB |")
        by_before = {r.model: r.before for r in rows if r.before is not None}
        if "gen-30k" in by_before and "gen-300k" in by_before:
            old_growth = by_before["gen-300k"].convert.cpu / by_before["gen-30k"].convert.cpu  # type: ignore[union-attr]
            print(f"\ngen-300k takes {growth:.1f}x the CPU time of gen-30k now, {old_growth:.1f}x before (10x the nodes).")
        print(f"\n`tfdowngrade check` on the bundled example: {check.cpu:.2f} s CPU ({check.wall:.2f} s wall); "
              f"`python -c \"import google.protobuf\"`: {import_protobuf.cpu:.2f} s CPU ({import_protobuf.wall:.2f} s wall): "
              f"{check.cpu / max(import_protobuf.cpu, 1e-3):.1f}x.")
    elif args.markdown:
        print("| model | saved_model.pb | nodes | parse + serialize + copy (CPU) | plan + write (CPU) | ratio (median of paired; range) | "
              "wall: limit / plan + write | peak RSS | RSS budget |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            flag = "" if r.ok else " (refused)"
            print(f"| {r.model}{flag} | {r.pb_mib:.2f} MiB | {r.nodes:,} | {r.limit.cpu:.3f} s | {r.convert.cpu:.3f} s | "
                  f"**{r.ratio:.1f}x** ({r.spread}) | {r.limit.wall:.3f} s / {r.convert.wall:.3f} s | {r.rss_mib:.0f} MiB | "
                  f"{r.rss_budget_mib:.0f} MiB |")
        if growth is not None:
            print(f"\ngen-300k takes {growth:.1f}x the CPU time of gen-30k (10x the nodes).")
        print(f"\n`tfdowngrade check` on the bundled example: {check.cpu:.2f} s CPU ({check.wall:.2f} s wall); "
              f"`python -c \"import google.protobuf\"`: {import_protobuf.cpu:.2f} s CPU ({import_protobuf.wall:.2f} s wall): "
              f"{check.cpu / max(import_protobuf.cpu, 1e-3):.1f}x.")
    else:
        for r in rows:
            print(f"{r.model:14} {r.pb_mib:8.2f} MiB {r.nodes:8} nodes  limit {r.limit.cpu:7.3f} s  plan+write "
                  f"{r.convert.cpu:7.3f} s  {r.ratio:6.1f}x ({r.spread})  (wall {r.limit.wall:.3f} / {r.convert.wall:.3f} s)  "
                  f"RSS {r.rss_mib:5.0f} MiB / budget {r.rss_budget_mib:5.0f}" + ("" if r.ok else "  (refused)"))
        if growth is not None:
            print(f"gen-300k / gen-30k: {growth:.1f}x")
        print(f"start-up: check {check.cpu:.2f} s CPU ({check.wall:.2f} s wall), import google.protobuf "
              f"{import_protobuf.cpu:.2f} s CPU ({import_protobuf.wall:.2f} s wall): "
              f"{check.cpu / max(import_protobuf.cpu, 1e-3):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
