#!/usr/bin/env python3
"""Fuzz the loader, graph model, rules, validator and writer with mutated saved_model.pb bytes.

Inputs are the golden fixtures' saved_model.pb, mutated
  - at the byte level: bit flips, byte sets, truncations, deleted/inserted/duplicated ranges;
  - at the protobuf level, on the wire format with lengths kept consistent (so the result
    usually still parses and reaches the graph model and the rules): a field of any depth
    deleted, duplicated, swapped with a sibling, renumbered, its varint set to an edge value,
    or its bytes replaced (emptied, cut, flipped, or taken from a sibling).
Each execution writes the bytes into a copy of the fixture's folder (variables and all),
runs `rewriter.api.check` and, when the plan is clean, `rewriter.pipeline.write` and
reads the output back with our own reader. Success, or a `TfDowngradeError` (the
documented errors, one line each), is fine. Anything else is a crash: an uncaught
exception, the process dying (a C++ abort in TensorFlow), a hang past --hang-seconds,
peak RSS past --max-rss-mib, or IN modified.

The long run (a supervisor and worker processes, so a hard crash or a hang is recorded
and the worker restarted; an input whose outcome is new joins the pool and is mutated
further):

    .venv/bin/python tools/fuzz_loader.py --minutes 10 --crash-dir /tmp/fuzz-crashes

It prints executions, outcomes and unique crashes (bucketed by exception type and the
innermost rewriter/ frame), and writes each crashing input with its traceback to
--crash-dir. tests/test_fuzz.py runs the same mutations and the same execution under
hypothesis for a bounded number of examples.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rewriter.runtimes.protowire import read_varint, write_varint

REPO = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO / "golden" / "fixtures"
TARGETS = ("2.3", "2.12")  # 2.12 keeps fingerprint.pb, so writing also runs TF's fingerprinting


# --- choices: random for the long run, hypothesis draws for the test -----------------------------
class Chooser(Protocol):
    def int(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        ...


class RandomChooser:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def int(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)


# --- the protobuf wire format, one level at a time ---------------------------------------------------
VARINT, I64, LEN, I32 = 0, 1, 2, 5
MAX_FIELD = (1 << 29) - 1
EDGE_VARINTS = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x3FFF, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1,
                2**64 - 2**31)  # the last two are int64 -1 and INT32_MIN as protobuf writes them


@dataclass
class Field:
    number: int
    wire: int
    value: int | bytes  # int for VARINT, bytes otherwise (the payload, for LEN)


def parse_fields(buf: bytes) -> list[Field] | None:
    """The top-level fields of `buf` as a message, or None if it is not one."""
    fields, pos = [], 0
    try:
        while pos < len(buf):
            key, pos = read_varint(buf, pos)
            number, wire = key >> 3, key & 7
            if not 0 < number <= MAX_FIELD:
                return None
            if wire == VARINT:
                value, pos = read_varint(buf, pos)
                fields.append(Field(number, wire, value))
            elif wire in (I64, I32):
                size = 8 if wire == I64 else 4
                if pos + size > len(buf):
                    return None
                fields.append(Field(number, wire, buf[pos : pos + size]))
                pos += size
            elif wire == LEN:
                size, pos = read_varint(buf, pos)
                if pos + size > len(buf):
                    return None
                fields.append(Field(number, wire, buf[pos : pos + size]))
                pos += size
            else:  # groups: never written by TensorFlow's protos
                return None
    except ValueError:
        return None
    return fields


def encode_fields(fields: list[Field]) -> bytes:
    out = bytearray()
    for f in fields:
        out += write_varint((f.number << 3) | f.wire)
        if f.wire == VARINT:
            assert isinstance(f.value, int)
            out += write_varint(f.value)
        else:
            assert isinstance(f.value, bytes)
            out += (write_varint(len(f.value)) + f.value) if f.wire == LEN else f.value
    return bytes(out)


def mutate_structure(data: bytes, ch: Chooser) -> bytes:
    """Descend into a random field at a random depth and change it; re-encode with right lengths."""
    fields = parse_fields(data)
    if not fields:
        return mutate_bytes(data, ch)
    path: list[tuple[list[Field], int]] = []
    while True:
        index = ch.int(0, len(fields) - 1)
        chosen = fields[index]
        if chosen.wire == LEN and ch.int(0, 4) > 0:  # mostly go deeper: the interesting parts are deep
            assert isinstance(chosen.value, bytes)
            inner = parse_fields(chosen.value)
            if inner:
                path.append((fields, index))
                fields = inner
                continue
        break
    _mutate_field(fields, index, ch)
    payload = encode_fields(fields)
    for parent, parent_index in reversed(path):
        old = parent[parent_index]
        parent[parent_index] = Field(old.number, old.wire, payload)
        payload = encode_fields(parent)
    return payload


def _mutate_field(fields: list[Field], index: int, ch: Chooser) -> None:
    chosen = fields[index]
    op = ch.int(0, 4)
    if op == 0:  # delete: the field deletions of the issue
        del fields[index]
    elif op == 1:  # duplicate: a repeated field twice, or a singular one set twice
        fields.insert(index + 1, Field(chosen.number, chosen.wire, chosen.value))
    elif op == 2:  # reorder: swap with a sibling
        other = ch.int(0, len(fields) - 1)
        fields[index], fields[other] = fields[other], fields[index]
    elif op == 3:  # renumber: the same payload under another field of the message
        fields[index] = Field(ch.int(1, 20), chosen.wire, chosen.value)
    else:
        fields[index] = Field(chosen.number, chosen.wire, _new_value(fields, chosen, ch))


def _new_value(fields: list[Field], chosen: Field, ch: Chooser) -> int | bytes:
    if chosen.wire == VARINT:
        assert isinstance(chosen.value, int)
        kind = ch.int(0, 2)
        if kind == 0:
            return EDGE_VARINTS[ch.int(0, len(EDGE_VARINTS) - 1)]
        return max(0, chosen.value + (1 if kind == 1 else -1))
    assert isinstance(chosen.value, bytes)
    value = chosen.value
    if chosen.wire != LEN:
        return bytes(ch.int(0, 255) for _ in value)
    kind = ch.int(0, 4)
    if kind == 0:
        return b""
    if kind == 1:
        return value[: ch.int(0, max(0, len(value) - 1))]
    if kind == 2 and value:
        position = ch.int(0, len(value) - 1)
        return value[:position] + bytes([value[position] ^ (1 << ch.int(0, 7))]) + value[position + 1 :]
    if kind == 3:
        # Another LEN sibling's bytes: a node named like another, an input naming an attr, ...
        donors = [f.value for f in fields if isinstance(f.value, bytes) and f.wire == LEN]
        return donors[ch.int(0, len(donors) - 1)]
    suffixes = (b":0", b":1", b"^", b"/", b"\x00", b"..", b":output:0")
    return value + suffixes[ch.int(0, len(suffixes) - 1)]


def mutate_bytes(data: bytes, ch: Chooser) -> bytes:
    if not data:
        return bytes([ch.int(0, 255)])
    n = len(data)
    op = ch.int(0, 5)
    if op == 0:  # flip a bit
        position = ch.int(0, n - 1)
        return data[:position] + bytes([data[position] ^ (1 << ch.int(0, 7))]) + data[position + 1 :]
    if op == 1:  # set a byte
        position = ch.int(0, n - 1)
        return data[:position] + bytes([ch.int(0, 255)]) + data[position + 1 :]
    if op == 2:  # truncate
        return data[: ch.int(0, n - 1)]
    if op == 3:  # delete a range
        start = ch.int(0, n - 1)
        return data[:start] + data[start + ch.int(1, 64) :]
    if op == 4:  # insert bytes
        position = ch.int(0, n)
        return data[:position] + bytes(ch.int(0, 255) for _ in range(ch.int(1, 16))) + data[position:]
    start = ch.int(0, n - 1)  # duplicate a range elsewhere
    chunk = data[start : start + ch.int(1, 256)]
    position = ch.int(0, n)
    return data[:position] + chunk + data[position:]


def mutate(data: bytes, ch: Chooser) -> bytes:
    """One to three mutations; structural ones three times out of four."""
    for _ in range(ch.int(1, 3)):
        data = mutate_structure(data, ch) if ch.int(0, 3) else mutate_bytes(data, ch)
    return data


# --- one execution -------------------------------------------------------------------------------------
def cache_rule_loading() -> None:
    """Parse the rule files once per process instead of once per execution.

    The rules are data that do not change during a run, and their YAML parsing took about
    two thirds of each execution; the fuzzed input is saved_model.pb, not the rules.
    """
    import functools

    from rewriter import pipeline

    for module, name in ((pipeline, "load_rules"), (getattr(pipeline, "object_graph", None), "load_object_graph_rules")):
        function = getattr(module, name, None)
        if function is not None and not hasattr(function, "cache_info"):
            setattr(module, name, functools.lru_cache(maxsize=None)(function))


class Crash(Exception):
    """An outcome other than success or a documented TfDowngradeError."""


def prepare(fixture: str, work: Path) -> Path:
    """work/in-<fixture>: the fixture's folder, to receive mutated saved_model.pb bytes."""
    model = work / f"in-{fixture}"
    if not model.exists():
        shutil.copytree(FIXTURES_DIR / fixture / "saved_model", model)
    return model


def execute(data: bytes, model: Path, target: str) -> str:
    """Run the pipeline on `data`; return the outcome's signature, raise on a crash.

    A TfDowngradeError returns "rejected:<class>:<message shape>". Other exceptions propagate.
    """
    from rewriter import api
    from rewriter.errors import TfDowngradeError
    from rewriter.pipeline import write
    from rewriter.savedmodel.files import read_saved_model

    pb = model / "saved_model.pb"
    pb.write_bytes(data)
    out = model.with_name(model.name.replace("in-", "out-", 1))
    try:
        planned = api.check(model, target)
        if planned.ok:
            write(planned, out, force=True)
            read_saved_model(out)  # what we write, we must be able to read
            outcome = "ok"
        else:
            outcome = "refused:" + ",".join(sorted({f.kind for f in planned.refusals}))
    except TfDowngradeError as error:
        outcome = f"rejected:{type(error).__name__}:{message_shape(str(error))}"
    if pb.read_bytes() != data:
        raise Crash("IN was modified")
    return outcome


def message_shape(message: str) -> str:
    """The message with names, paths and numbers blanked: one class of error, whatever the model."""
    shape = re.sub(r"'[^']*'|\"[^\"]*\"|/\S+|\d+", "_", message.splitlines()[0] if message else "")
    return shape[:80]


def crash_signature(error: BaseException) -> str:
    """Exception type + innermost frame in rewriter/ (else the innermost frame)."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "/rewriter/" in f.filename]
    chosen = ours or list(frames)
    where = f"{Path(chosen[-1].filename).name}:{chosen[-1].lineno}" if chosen else "?"
    return f"{type(error).__name__} at {where}"


# --- the long run: supervisor and workers ------------------------------------------------------------------
def _worker(args: argparse.Namespace) -> int:
    """Loop: pick from the pool, mutate, execute; one JSON line per crash and per 20 executions."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import rewriter.api  # noqa: F401 - import TensorFlow once, before the first execution

    cache_rule_loading()

    work = Path(args.work)
    rng = random.Random(args.seed)
    chooser = RandomChooser(rng)
    fixtures = sorted(p.name for p in FIXTURES_DIR.iterdir() if (p / "saved_model").is_dir())
    pool: list[tuple[str, bytes]] = [(f, (FIXTURES_DIR / f / "saved_model" / "saved_model.pb").read_bytes()) for f in fixtures]
    seen: set[str] = set()
    models = {f: prepare(f, work) for f in fixtures}
    counts: dict[str, int] = {}
    executions = 0
    current = work / "current.json"

    def emit(record: dict) -> None:
        print(json.dumps(record), flush=True)

    while True:
        # Half the time an original fixture, half the time an input that found something new.
        fixture, parent = pool[rng.randrange(len(fixtures) if rng.random() < 0.5 else len(pool))]
        data = mutate(parent, chooser)
        target = TARGETS[rng.randrange(len(TARGETS))]
        # Written before running, so the supervisor can name the input if this process dies.
        current.write_text(json.dumps({"fixture": fixture, "target": target, "data": data.hex()}))
        try:
            outcome = execute(data, models[fixture], target)
        except Exception as error:  # noqa: BLE001 - every undocumented exception is a finding
            outcome = "crash"
            emit({"crash": crash_signature(error), "fixture": fixture, "target": target, "data": data.hex(),
                  "traceback": traceback.format_exc()})
        executions += 1
        kind = outcome.split(":")[0]
        counts[kind] = counts.get(kind, 0) + 1
        if outcome not in seen and outcome != "crash" and _parses(data):
            # Inputs protobuf itself rejects are left out: mutating them mostly finds the
            # parser again, which protobuf's own fuzzing covers; the pool is for depth.
            seen.add(outcome)
            if len(pool) < args.pool_size:
                pool.append((fixture, data))  # a new kind of outcome: mutate it further
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if rss > args.max_rss_mib * 2**20:
            emit({"memory": rss, "fixture": fixture, "target": target, "data": data.hex()})
            emit({"stats": executions, "counts": counts, "pool": len(pool), "rss": rss})
            return 3  # peak RSS never falls again: restart fresh
        if executions % 20 == 0:
            emit({"stats": executions, "counts": counts, "pool": len(pool), "rss": rss})


def _parses(data: bytes) -> bool:
    from google.protobuf.message import DecodeError
    from rewriter.protos.saved_model_pb2 import SavedModel

    try:
        SavedModel().ParseFromString(data)
        return True
    except (DecodeError, RuntimeWarning):
        return False


@dataclass
class Totals:
    executions: int = 0
    counts: dict[str, int] | None = None
    crashes: int = 0
    unique: dict[str, str] | None = None  # signature -> file of the first input
    hangs: int = 0
    deaths: int = 0
    memory: int = 0
    peak_rss: int = 0
    outcomes_seen: int = 0


def _save_crash(crash_dir: Path, kind: str, signature: str, record: dict, totals: Totals) -> None:
    assert totals.unique is not None
    totals.crashes += 1
    if signature in totals.unique:
        return
    crash_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(bytes.fromhex(record.get("data", ""))).hexdigest()[:16]
    stem = crash_dir / f"{kind}-{digest}"
    stem.with_suffix(".pb").write_bytes(bytes.fromhex(record.get("data", "")))
    stem.with_suffix(".txt").write_text(
        f"{signature}\nfixture: {record.get('fixture')}\ntarget: {record.get('target')}\n\n{record.get('traceback', '')}")
    totals.unique[signature] = str(stem.with_suffix(".pb"))
    print(f"new crash: {signature} -> {stem}.pb", file=sys.stderr, flush=True)


def _supervise(args: argparse.Namespace) -> int:
    crash_dir = Path(args.crash_dir)
    deadline = time.monotonic() + args.minutes * 60
    totals = Totals(counts={}, unique={})
    seed = args.seed
    with tempfile.TemporaryDirectory(prefix="fuzz-loader-") as work_root:
        while time.monotonic() < deadline:
            work = Path(work_root) / f"w{seed}"
            work.mkdir(exist_ok=True)
            worker = subprocess.Popen(
                [sys.executable, __file__, "--worker", "--seed", str(seed), "--work", str(work),
                 "--max-rss-mib", str(args.max_rss_mib), "--pool-size", str(args.pool_size)],
                stdout=subprocess.PIPE, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )
            base = totals.executions
            base_counts = dict(totals.counts or {})
            last_stats: dict = {"stats": 0, "counts": {}}
            lines = _Lines(worker)
            last_line = time.monotonic()
            while True:
                # Stats come every 20 executions, which take milliseconds each: silence for
                # --hang-seconds is a hang. The deadline is checked on every line, since a
                # fast worker is never silent.
                now = time.monotonic()
                if now >= deadline:
                    worker.kill()
                    worker.wait()
                    break
                line = lines.next(max(0.01, min(deadline - now, args.hang_seconds - (now - last_line))))
                if line is None:
                    if time.monotonic() - last_line >= args.hang_seconds:
                        worker.kill()
                        worker.wait()
                        totals.hangs += 1
                        _save_crash(crash_dir, "hang", "hang", _current(work), totals)
                        break
                    continue  # the deadline: checked at the top
                last_line = time.monotonic()
                if line == "":  # the worker died
                    code = worker.wait()
                    if code != 3:  # 3: it stopped itself over the memory bound, already reported
                        totals.deaths += 1
                        _save_crash(crash_dir, "death", f"process died ({code})", _current(work), totals)
                    break
                record = json.loads(line)
                if "stats" in record:
                    last_stats = record
                    totals.executions = base + record["stats"]
                    totals.counts = {k: base_counts.get(k, 0) + v for k, v in record["counts"].items()}
                    totals.peak_rss = max(totals.peak_rss, record["rss"])
                    totals.outcomes_seen = max(totals.outcomes_seen, record["pool"])
                elif "crash" in record:
                    _save_crash(crash_dir, "crash", record["crash"], record, totals)
                elif "memory" in record:
                    totals.memory += 1
                    _save_crash(crash_dir, "memory", "peak RSS over the bound", record, totals)
            totals.executions = base + last_stats["stats"]
            seed += 1
    _summary(totals, args)
    return 1 if totals.unique else 0


class _Lines:
    """The worker's stdout lines through a thread, so waiting for one can time out."""

    def __init__(self, worker: subprocess.Popen) -> None:
        import queue
        import threading

        self.queue: "queue.Queue[str]" = queue.Queue()
        self._empty = queue.Empty
        assert worker.stdout is not None
        stream = worker.stdout

        def pump() -> None:
            for line in stream:
                self.queue.put(line)
            self.queue.put("")  # the end: the worker exited

        threading.Thread(target=pump, daemon=True).start()

    def next(self, timeout: float) -> str | None:
        """The next line, "" at the end, None after `timeout` seconds of silence."""
        try:
            return self.queue.get(timeout=timeout)
        except self._empty:
            return None


def _current(work: Path) -> dict:
    try:
        return json.loads((work / "current.json").read_text())
    except (OSError, ValueError):
        return {}


def _summary(totals: Totals, args: argparse.Namespace) -> None:
    assert totals.unique is not None
    print(json.dumps({
        "minutes": args.minutes,
        "executions": totals.executions,
        "outcomes": totals.counts,
        "crashes": totals.crashes,
        "unique_crashes": len(totals.unique),
        "unique": totals.unique,
        "hangs": totals.hangs,
        "process_deaths": totals.deaths,
        "memory_over_bound": totals.memory,
        "worker_peak_rss_mib": round(totals.peak_rss / 2**20),
        "pool_high_water": totals.outcomes_seen,
    }, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--crash-dir", default="fuzz-crashes")
    parser.add_argument("--hang-seconds", type=float, default=120.0, help="silence that counts as a hang")
    parser.add_argument("--max-rss-mib", type=int, default=4096, help="peak RSS that counts as a memory failure")
    parser.add_argument("--pool-size", type=int, default=2000)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        return _worker(args)
    return _supervise(args)


if __name__ == "__main__":
    sys.exit(main())
