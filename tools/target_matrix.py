#!/usr/bin/env python3
"""Convert every fixture to each target release and judge it in that release's real runtime;
write the table into docs/targets.md (between the MATRIX markers).

    .venv/bin/python tools/target_matrix.py                       # fixtures x 1.15,2.3,2.5,2.7,2.9,2.10,2.11,2.15
    .venv/bin/python tools/target_matrix.py --releases 1.15,2.9 --models keras_cnn,keras3_lstm

Models: the bundled example (golden/examples/keras_cnn), golden/fixtures/* and golden/keras2/*.
Each cell is `match` (converted, and every output matched in the real runtime), `refused: ...`
(the conversion was refused: the first reason), or `FAILED: ...` (parity failed or the runtime
could not load the output). One process converts everything (TensorFlow imported once); each
parity check runs the target's runtime in a subprocess, as every conversion does.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_RELEASES = "1.15,2.3,2.5,2.7,2.9,2.10,2.11,2.15"
DOC = ROOT / "docs" / "targets.md"
BEGIN, END = "<!-- MATRIX BEGIN (tools/target_matrix.py) -->", "<!-- MATRIX END -->"


def models() -> dict[str, Path]:
    found = {"keras_cnn": ROOT / "golden" / "examples" / "keras_cnn"}
    for group in ("fixtures", "keras2"):
        for folder in sorted((ROOT / "golden" / group).iterdir()):
            if (folder / "saved_model").is_dir():
                found[folder.name] = folder / "saved_model"
    return found


def judge(source: Path, target: str, out: Path) -> str:
    from rewriter import api
    from rewriter.errors import Refused, TfDowngradeError

    try:
        report = api.convert(source, out, to=target)
    except Refused as error:
        first = error.findings[0].message if getattr(error, "findings", None) else str(error)
        return f"refused: {first.splitlines()[0][:120]}"
    except TfDowngradeError as error:
        return f"FAILED: {str(error).splitlines()[0][:120]}"
    if report.parity is None or not report.parity.ok:
        return "FAILED: parity"
    return "match"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", default=DEFAULT_RELEASES)
    parser.add_argument("--models", help="comma-separated model names (default: all)")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    releases = args.releases.split(",")
    chosen = models()
    if args.models:
        chosen = {k: v for k, v in chosen.items() if k in args.models.split(",")}
    rows = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="target-matrix-") as tmp:
        for name, source in chosen.items():
            cells = []
            for release in releases:
                verdict = judge(source, release, Path(tmp) / f"{name}-{release}")
                print(f"{name} -> {release}: {verdict}", flush=True)
                cells.append(verdict)
            rows.append((name, cells))
    table = ["| model | " + " | ".join(releases) + " |", "|---|" + "---|" * len(releases)]
    table += [f"| {name} | " + " | ".join(c.replace("|", "/") for c in cells) + " |" for name, cells in rows]
    table.append("")
    command = f"tools/target_matrix.py --releases {args.releases}" + (f" --models {args.models}" if args.models else "")
    table.append(f"Written by `{command}` in {time.time() - started:.0f} s.")
    text = args.doc.read_text("utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    args.doc.write_text(head + BEGIN + "\n" + "\n".join(table) + "\n" + END + tail, "utf-8")
    return 0 if all(c == "match" for _, cells in rows for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
