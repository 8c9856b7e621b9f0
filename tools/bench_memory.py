#!/usr/bin/env python3
"""Peak RSS of a conversion against the size of saved_model.pb, on generated large graphs.

Each model is the tf_module fixture with its GraphDef grown to a target size, two ways:

  nodes      many small nodes: a chain a_i = AddV2(a_{i-1}, c_i) of float Consts, ~100 bytes
             per node. This is what stresses the graph model (one networkx node per NodeDef).
  constants  a few Const nodes holding large tensor_content (weights frozen into the graph):
             few nodes, many bytes. This is what stresses protobuf copies.

Every conversion runs in a fresh process (`tfdowngrade IN OUT --to T --no-verify -q`, through
rewriter.cli.main) and its peak RSS is its own VmHWM, printed as it exits (os.wait4's ru_maxrss
would carry this parent's high-water mark over fork+exec). The baseline is the same
conversion of the unmodified fixture (TensorFlow's import dominates it). The table gives
peak RSS, the growth over the baseline, and that growth divided by the saved_model.pb size.
Times are printed for information only.

    .venv/bin/python tools/bench_memory.py                          # default sizes
    .venv/bin/python tools/bench_memory.py --nodes-mib 8 32 --constants-mib 128 512 --to 2.3
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if TYPE_CHECKING:  # TensorFlow's import is paid only by the builder, not by `--help`
    from rewriter.protos.graph_pb2 import GraphDef

REPO = Path(__file__).resolve().parent.parent
BASE = REPO / "golden" / "fixtures" / "tf_module" / "saved_model"
CHUNK_MIB = 64  # tensor_content per Const in the "constants" flavour
CONVERT = (
    "import sys\nfrom rewriter.cli import main\ntry:\n    code = main(sys.argv[1:])\nfinally:\n"
    "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
    "    print('VmHWM', int(hwm) * 1024)\nsys.exit(code)\n"
)


@dataclass
class Row:
    flavour: str
    nodes_added: int
    pb_mib: float
    peak_rss_mib: float
    growth_mib: float
    growth_per_pb_byte: float | None
    seconds: float
    exit_code: int


def _grow_nodes(graph_def: GraphDef, target_bytes: int) -> int:
    """Append the Const/AddV2 chain until the GraphDef is about target_bytes."""
    from rewriter.protos import types_pb2

    start = graph_def.ByteSize()
    per_pair = None
    i, previous = 0, None
    while True:
        const = graph_def.node.add()
        const.name = f"bench/c{i}"
        const.op = "Const"
        const.attr["dtype"].type = types_pb2.DT_FLOAT
        const.attr["value"].tensor.dtype = types_pb2.DT_FLOAT
        const.attr["value"].tensor.float_val.append(float(i % 7))
        if previous is not None:
            add = graph_def.node.add()
            add.name = f"bench/a{i}"
            add.op = "AddV2"
            add.input.extend([previous, const.name])
            add.attr["T"].type = types_pb2.DT_FLOAT
            previous = add.name
        else:
            previous = const.name
        i += 1
        if per_pair is None and i == 1000:
            per_pair = (graph_def.ByteSize() - start) / 1000
        if per_pair is not None and i % 1000 == 0 and start + per_pair * i >= target_bytes:
            return len(graph_def.node)


def _grow_constants(graph_def: GraphDef, target_bytes: int) -> int:
    from rewriter.protos import types_pb2

    added = 0
    remaining = target_bytes - graph_def.ByteSize()
    while remaining > 0:
        size = min(CHUNK_MIB << 20, remaining)
        const = graph_def.node.add()
        const.name = f"bench/weights{added}"
        const.op = "Const"
        const.attr["dtype"].type = types_pb2.DT_FLOAT
        tensor = const.attr["value"].tensor
        tensor.dtype = types_pb2.DT_FLOAT
        tensor.tensor_shape.dim.add().size = size // 4
        # Not zeros: a pattern, so nothing can shortcut a run of zero bytes.
        tensor.tensor_content = (bytes(range(256)) * (size // 256 + 1))[: size // 4 * 4]
        remaining -= size
        added += 1
    return added


def build_model(flavour: str, mib: float, root: Path) -> tuple[Path, int]:
    from rewriter.protos import saved_model_pb2

    model = root / f"{flavour}-{mib:g}MiB"
    shutil.copytree(BASE, model)
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((BASE / "saved_model.pb").read_bytes())
    graph_def = proto.meta_graphs[0].graph_def
    grow = _grow_nodes if flavour == "nodes" else _grow_constants
    added = grow(graph_def, int(mib * 2**20))
    (model / "saved_model.pb").write_bytes(proto.SerializeToString(deterministic=True))
    (model / "fingerprint.pb").unlink()  # it would not match the grown graph
    return model, added


def measure(model: Path, out: Path, target: str) -> tuple[int, int, float]:
    """(exit code, peak RSS bytes, seconds) of converting model in a fresh process."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", CONVERT, str(model), str(out), "--to", target, "--no-verify", "-q", "--force"],
        capture_output=True, text=True, cwd=REPO,
    )
    if proc.returncode != 0:
        print(f"  exit {proc.returncode}: {proc.stderr.strip()[:300]}", file=sys.stderr)
    peak = int(proc.stdout.strip().splitlines()[-1].split()[1])
    return proc.returncode, peak, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes-mib", type=float, nargs="*", default=[4, 16, 64])
    parser.add_argument("--constants-mib", type=float, nargs="*", default=[64, 256, 1024])
    parser.add_argument("--to", default="2.3")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--work", type=Path, help="where to build models (default: a temporary folder)")
    args = parser.parse_args(argv)

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-", dir=args.work) as tmp:
        root = Path(tmp)
        code, baseline, seconds = measure(BASE, root / "out-baseline", args.to)
        base_mib = (BASE / "saved_model.pb").stat().st_size / 2**20
        rows.append(Row("baseline", 0, round(base_mib, 3), round(baseline / 2**20, 1), 0.0, None, round(seconds, 1), code))
        for flavour, sizes in (("nodes", args.nodes_mib), ("constants", args.constants_mib)):
            for mib in sizes:
                model, added = build_model(flavour, mib, root)
                size = (model / "saved_model.pb").stat().st_size
                code, peak, seconds = measure(model, root / "out", args.to)
                growth = peak - baseline
                rows.append(Row(flavour, added, round(size / 2**20, 1), round(peak / 2**20, 1), round(growth / 2**20, 1),
                                round(growth / size, 2), round(seconds, 1), code))
                shutil.rmtree(model)
                shutil.rmtree(root / "out", ignore_errors=True)
                print(_format(rows[-1]), file=sys.stderr, flush=True)
    print(f"{'flavour':10} {'nodes':>9} {'pb MiB':>8} {'peak MiB':>9} {'growth MiB':>11} {'growth/pb':>10} {'s':>6} exit")
    for row in rows:
        print(_format(row))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0 if all(r.exit_code == 0 for r in rows) else 1


def _format(row: Row) -> str:
    ratio = "-" if row.growth_per_pb_byte is None else f"{row.growth_per_pb_byte:.2f}"
    return (f"{row.flavour:10} {row.nodes_added:9d} {row.pb_mib:8.1f} {row.peak_rss_mib:9.1f} {row.growth_mib:11.1f} "
            f"{ratio:>10} {row.seconds:6.1f} {row.exit_code}")


if __name__ == "__main__":
    sys.exit(main())
