"""Bounded fuzzing of the loader, graph model, rules, validator and writer (issue 5 §2).

Hypothesis drives the mutations of tools/fuzz_loader.py (byte flips, truncations,
protobuf-level field deletions and edits, with lengths kept consistent) over every golden
fixture's saved_model.pb, and runs the same execution as the long run: `rewriter.api.check`,
then, for a clean plan, `rewriter.pipeline.write` and our own reader on the output.
Success or a documented TfDowngradeError is fine; any other exception fails, as do IN
being modified, peak RSS past a bound, or an execution that does not come back (a hang
detector, set far above the few milliseconds an execution takes).

The example count is bounded to keep this around half a minute; derandomized, so CI runs
are reproducible. The long, exploring run is `tools/fuzz_loader.py` (see its docstring).
"""
from __future__ import annotations

import resource
import signal
from pathlib import Path
from types import FrameType
from typing import Iterator

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from conftest import load_tool

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted(p.name for p in (ROOT / "golden" / "fixtures").iterdir() if (p / "saved_model").is_dir())
EXAMPLES = 400  # about 20 s on 2 cores; the long run is tools/fuzz_loader.py
HANG_SECONDS = 120  # an execution takes milliseconds; this only catches one that never returns
MAX_RSS_GROWTH = 2 << 30  # peak RSS may not grow by more than this over the whole run


fuzz = load_tool("fuzz_loader")


class DrawChooser:
    """The fuzzer's choices as hypothesis draws, so failures shrink to a minimal mutation."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def int(self, low: int, high: int) -> int:
        return self.data.draw(st.integers(low, high))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("fuzz")
    return {name: fuzz.prepare(name, work) for name in FIXTURES}


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    return {name: (ROOT / "golden" / "fixtures" / name / "saved_model" / "saved_model.pb").read_bytes() for name in FIXTURES}


@pytest.fixture(scope="module")
def rss_baseline() -> Iterator[int]:
    import rewriter.api  # noqa: F401 - TensorFlow's import is not the code under test

    fuzz.cache_rule_loading()  # as the long run does: the rules are not what is fuzzed
    yield resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Hang(Exception):
    pass


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang(f"an execution did not return within {HANG_SECONDS} s")


def test_mutators_change_and_keep_wire_format(seeds: dict[str, bytes]) -> None:
    """The protobuf-level mutators re-encode lengths: untouched bytes round-trip exactly,
    and a deleted field leaves a message that still parses (so it reaches the graph model)."""
    import random

    from rewriter.protos import saved_model_pb2

    data = seeds["tf_module"]
    fields = fuzz.parse_fields(data)
    assert fields and fuzz.encode_fields(fields) == data
    chooser = fuzz.RandomChooser(random.Random(7))
    parsed = changed = 0
    for _ in range(50):
        mutated = fuzz.mutate_structure(data, chooser)
        changed += mutated != data
        proto = saved_model_pb2.SavedModel()
        try:
            proto.ParseFromString(mutated)
            parsed += 1
        except Exception:  # noqa: BLE001 - renumbered fields may clash in type: that is allowed
            pass
    assert changed >= 45 and parsed >= 25, (changed, parsed)


@settings(
    max_examples=EXAMPLES,
    deadline=None,  # never a timing assertion; hangs are caught by the alarm below
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), fixture=st.sampled_from(FIXTURES), target=st.sampled_from(fuzz.TARGETS))
def test_fuzz_loader(data: st.DataObject, fixture: str, target: str, models: dict[str, Path],
                     seeds: dict[str, bytes], rss_baseline: int) -> None:
    mutated = fuzz.mutate(seeds[fixture], DrawChooser(data))
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(HANG_SECONDS)
    try:
        outcome = fuzz.execute(mutated, models[fixture], target)  # raises on anything but a TfDowngradeError
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    event(outcome.split(":")[0])  # ok / refused / rejected: see --hypothesis-show-statistics
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak - rss_baseline < MAX_RSS_GROWTH, f"peak RSS grew by {(peak - rss_baseline) >> 20} MiB"
