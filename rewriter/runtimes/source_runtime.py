"""Which runtime runs the SOURCE side of parity, and running it there.

`--source-runtime` (ParityOptions.source_runtime):
  installed  the installed TensorFlow's Python API (tf.saved_model.load), in this process;
  VERSION    that release's real runtime (e.g. 2.21): its C API from the PyPI wheel, fetched,
             checksummed and cached like the target runtime, run in a worker subprocess with
             TF_LoadSessionFromSavedModel + TF_SessionRun by the SignatureDef's tensor names;
  auto       the installed TensorFlow if there is one and it is at least the release that wrote
             the model (meta_info_def.tensorflow_version), else the writing release's runtime.

The installed TensorFlow is found from the package metadata, without importing it: importing it
costs seconds and loads a TF library into this process, which a C-API source run does not need.
"""
from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rewriter.errors import BadInput
from rewriter.targets.releases import Release, known_releases

AUTO = "auto"
INSTALLED = "installed"
KIND_INSTALLED = "installed"  # TF's Python API in this process
KIND_CAPI = "capi"  # a release's C API, from its PyPI wheel, in a worker subprocess
KIND_EXPECTED = "expected"  # --expected: outputs read from a file, nothing run
_VERSION_RE = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?\s*$")
_LEADING_RELEASE_RE = re.compile(r"^\s*v?(\d+)\.(\d+)")  # "2.21.0", "2.16.0-rc1", "2.21.0-dev2025..."

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Choice:
    """A parsed --source-runtime: AUTO, INSTALLED, or a release."""

    mode: str  # AUTO, INSTALLED or "release"
    release: Release | None = None


def parse_choice(text: str) -> Choice:
    """'auto', 'installed', '2.21' or '2.21.0'; BadInput on anything else or an unknown release."""
    value = str(text).strip().lower()
    if value in (AUTO, INSTALLED):
        return Choice(value)
    match = _VERSION_RE.match(value)
    if not match:
        raise BadInput(f"--source-runtime {text!r}: say auto, installed or a release such as 2.21")
    release = Release(int(match.group(1)), int(match.group(2)))
    if release not in known_releases():
        known = ", ".join(r.key for r in known_releases())
        raise BadInput(f"--source-runtime {text}: TensorFlow {release} is not a release this tool can fetch "
                       f"(known: {known})")
    return Choice("release", release)


def check_choice(text: str) -> Choice:
    """parse_choice, and `installed` needs an installed TensorFlow: BadInput before any work."""
    choice = parse_choice(text)
    if choice.mode == INSTALLED and installed_tensorflow() is None:
        raise BadInput(NOT_INSTALLED)
    return choice


NOT_INSTALLED = ("--source-runtime installed: TensorFlow is not installed here "
                 "(pip install 'tfdowngrade[tf]', or use --source-runtime auto)")


def installed_tensorflow() -> str | None:
    """The version of the installed distribution that provides the `tensorflow` package
    (tensorflow, tensorflow-cpu, tf-nightly, ...), read from its metadata; None if there is none."""
    for name in sorted(set(importlib.metadata.packages_distributions().get("tensorflow", []))):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def release_of_version(version: str) -> Release | None:
    match = _LEADING_RELEASE_RE.match(version or "")
    return Release(int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class Decision:
    """Where the source runs: in the installed TF (release None) or in `release`'s C API."""

    kind: str  # KIND_INSTALLED or KIND_CAPI
    release: Release | None
    reason: str
    notes: tuple[str, ...] = ()


def _runtime_release_for(writer: Release) -> Release:
    """The writer's own release if we know it, else the oldest known one after it, else the newest."""
    known = known_releases()
    if writer in known:
        return writer
    newer = [r for r in known if r > writer]
    return newer[0] if newer else known[-1]


def decide(choice: Choice, writer: Release, writer_version: str, installed: str | None) -> Decision:
    """The source runtime for a model written by `writer_version` (release `writer`), given the
    installed TensorFlow's version (None: not installed). BadInput for `installed` without TF."""
    installed_release = release_of_version(installed) if installed else None
    notes: tuple[str, ...] = ()
    if choice.mode == INSTALLED:
        if installed is None:
            raise BadInput(NOT_INSTALLED)
        if installed_release is not None and installed_release < writer:
            notes = (f"the installed TensorFlow {installed} is older than the release that wrote the model "
                     f"({writer_version}): it may not read it",)
        return Decision(KIND_INSTALLED, None, "--source-runtime installed", notes)
    if choice.mode == "release":
        assert choice.release is not None
        if choice.release < writer:
            notes = (f"TensorFlow {choice.release} is older than the release that wrote the model ({writer_version}): "
                     "the source may not load there",)
        return Decision(KIND_CAPI, choice.release, f"--source-runtime {choice.release}", notes)
    if installed_release is not None and installed_release >= writer:
        return Decision(KIND_INSTALLED, None,
                        f"auto: the installed TensorFlow {installed} can read a model written by {writer_version}")
    why = ("no TensorFlow is installed" if installed is None else
           f"the installed TensorFlow {installed} is older than the release that wrote the model ({writer_version})")
    release = _runtime_release_for(writer)
    if release != writer:
        notes = (f"no runtime of TensorFlow {writer} is known; the nearest is {release}",)
    return Decision(KIND_CAPI, release, f"auto: {why}, so the source runs in the release that wrote it", notes)


@dataclass
class SourceRuntime:
    """The runtime that ran the source side of parity, as the report names it."""

    kind: str  # KIND_INSTALLED, KIND_CAPI or KIND_EXPECTED
    version: str  # "2.21.0" ("" for KIND_EXPECTED)
    reason: str
    wheel_sha256: str | None = None
    notes: list[str] = field(default_factory=list)
    handle: Any = field(default=None, repr=False)  # the RuntimeHandle of a C-API runtime

    def describe(self) -> str:
        if self.kind == KIND_INSTALLED:
            return f"the installed TensorFlow {self.version}, Python API (tf.saved_model.load)"
        if self.kind == KIND_CAPI:
            return f"TensorFlow {self.version}'s C API (TF_LoadSessionFromSavedModel, from its PyPI wheel)"
        return self.reason

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "version": self.version, "api": API_OF[self.kind],
                                "describe": self.describe(), "reason": self.reason, "notes": list(self.notes)}
        if self.wheel_sha256:
            data["wheel_sha256"] = self.wheel_sha256
        return data


API_OF = {KIND_INSTALLED: "python", KIND_CAPI: "c", KIND_EXPECTED: "none"}
# What the target side is, for reports: always the C API of the target's wheel (client.py).
TARGET_DESCRIBE = "TensorFlow {version}'s C API (TF_LoadSessionFromSavedModel, from its PyPI wheel)"


def resolve(choice_text: str, source_proto: Any, *, cache_dir: Path | None = None, offline: bool = False,
            progress: Progress | None = None) -> SourceRuntime:
    """Decide where the source runs and make that runtime ready (fetching a C-API runtime if
    needed: RuntimeUnavailable when it cannot be had)."""
    from rewriter.pipeline import source_release_of

    choice = parse_choice(choice_text)
    writer, writer_version = source_release_of(source_proto)
    installed = installed_tensorflow()
    decision = decide(choice, writer, writer_version, installed)
    if decision.kind == KIND_INSTALLED:
        assert installed is not None
        return SourceRuntime(KIND_INSTALLED, installed, decision.reason, notes=list(decision.notes))
    from rewriter.errors import RuntimeUnavailable
    from rewriter.runtimes import obtain_runtime

    assert decision.release is not None
    try:
        handle = obtain_runtime(decision.release, cache_dir=cache_dir, offline=offline, progress=progress)
    except RuntimeUnavailable as error:
        raise RuntimeUnavailable(f"the source's runtime ({decision.reason}): {error}") from None
    notes = list(decision.notes) + [
        "the source ran in a C++ loader (TF_LoadSessionFromSavedModel, as TF Serving loads it), not through "
        "tf.saved_model.load: a source that only TensorFlow's Python loader can run is reported as not compared "
        "(install TensorFlow and use --source-runtime installed for such a model)"]
    return SourceRuntime(KIND_CAPI, handle.version, decision.reason, handle.wheel_sha256, notes, handle)


def expected_file(path: Path) -> SourceRuntime:
    return SourceRuntime(KIND_EXPECTED, "", f"not run, its outputs read from --expected {path}")


class SourceCallError(Exception):
    """A signature call the source runtime refused; str() is the runtime's own message."""


class CapiSource:
    """The source's signatures, called in a release's C API as if in ONE loaded session.

    Each batch runs in a fresh worker (client.py: one TF library per process, one
    TF_LoadSessionFromSavedModel, the calls in order by the SignatureDef's tensor names). `call`
    serves callers that decide the next call from the last result (try another input strategy,
    run again to see if the model is deterministic): its worker first replays the earlier
    successful calls, so a model with state (counters, RNG) sees what one session would have."""

    def __init__(self, runtime: SourceRuntime, source_dir: Path, tags: list[str], meta_graph: Any,
                 timeout: float) -> None:
        from rewriter.runtimes import TargetRuntime

        self.runtime = runtime
        self.where = f"TensorFlow {runtime.version}'s C++ loader"
        self._worker = TargetRuntime(runtime.handle, timeout=timeout)
        self._dir, self._tags, self._meta_graph = source_dir, list(tags), meta_graph
        self._history: list[tuple[str, dict[str, np.ndarray]]] = []
        self.load_error: str | None = None

    def run_batch(self, batch: list[tuple[str, dict[str, np.ndarray]]]) -> list[dict[str, np.ndarray] | str]:
        """Each (signature, inputs by input name) in order in one session: its outputs by output
        name, or the reason it failed (for all of them the load error, if the source does not load)."""
        from rewriter.runtimes import SignatureCall

        results: list[dict[str, np.ndarray] | str] = []
        pending: list[tuple[int, Any, dict[str, str]]] = []  # (index in batch, call, tensor -> output name)
        for index, (key, arrays) in enumerate(batch):
            signature = self._meta_graph.signature_def[key] if key in self._meta_graph.signature_def else None
            unknown = sorted(set(arrays) - set(signature.inputs)) if signature is not None else []
            if signature is None or unknown:
                results.append(f"the source's signature {key} has no input {unknown[0]!r}" if signature is not None
                               else f"the source has no signature {key!r}")
                continue
            outputs = sorted(signature.outputs)
            feeds = {signature.inputs[name].name: value for name, value in arrays.items()}
            # the label only has to be unique: the worker runs by tensor names, in this order
            call = SignatureCall(f"{index}:{key}", feeds, [signature.outputs[name].name for name in outputs])
            pending.append((index, call, {signature.outputs[name].name: name for name in outputs}))
            results.append("")
        if not pending:
            return results
        run = self._worker.run_savedmodel(self._dir, self._tags, [call for _, call, _ in pending])
        self.load_error = run.load_error
        for index, call, output_names in pending:
            if run.load_error:
                results[index] = f"does not load: {run.load_error}"
            elif call.key in run.errors:
                results[index] = (run.errors[call.key].strip().splitlines() or [""])[0]
            else:
                got = run.outputs.get(call.key, {})
                results[index] = {output_names[tensor]: value for tensor, value in got.items()}
        return results

    def call(self, key: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One call after the earlier successful ones; SourceCallError if the source refuses it."""
        result = self.run_batch(self._history + [(key, arrays)])[-1]
        if isinstance(result, str):
            raise SourceCallError(result)
        self._history.append((key, arrays))
        return result


def run_in_capi(runtime: SourceRuntime, source_dir: Path, tags: list[str], meta_graph: Any,
                inputs: dict[str, dict[str, np.ndarray]], timeout: float) -> dict[str, dict[str, Any]]:
    """Run each signature of the source once, in one session of the C-API runtime of `runtime`.
    Returns signature -> output name -> array, or {"__error__": why} for a signature that did not
    run (as parity.run_source does)."""
    source = CapiSource(runtime, source_dir, tags, meta_graph, timeout)
    keys = list(inputs)
    results: dict[str, dict[str, Any]] = {}
    for key, result in zip(keys, source.run_batch([(key, inputs[key]) for key in keys])):
        if not isinstance(result, str):
            results[key] = result
        elif source.load_error:
            first = (source.load_error.strip().splitlines() or [""])[0]
            results[key] = {"__error__": f"the source does not load in {source.where}: {first}"}
        else:
            results[key] = {"__error__": f"the source fails in {source.where} on the parity inputs ({result}); "
                                         "pass valid inputs with --inputs"}
    return results
