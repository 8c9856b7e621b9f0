"""Consumers: the programs that pin users to a TensorFlow release (tfjs-node, TF Java, JetPack,
TF Serving), and which release each of their versions runs.

`--to` takes a consumer as NAME@VERSION (`tfjs-node@4.22`, `tf-java@0.5`, `serving@2.5`); where a
consumer ships two runtimes the name says which (`jetpack@4.6:tf2`, `jetpack@4.6:tf1`). The data is
rewriter/registries/consumers.json; every mapping names the consumer's own file it was read from
(`tfdowngrade targets` lists them):

consumers.json, format 1:
    {"format": 1, "consumers": {"tfjs-node": {
        "description": "...",
        "versions": {"4.22": {"tensorflow": "2.9.1", "note": "..."}, ...} | "same-as-tensorflow",
        "source": {"repo": "tensorflow/tfjs", "path": "...", "what": "...", "checked": "..."},
        "verified": true}}}    # false: the mapping was not read from the consumer's files

A version may be given with its patch (`tfjs-node@4.22.0`): consumers map minors.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from rewriter.errors import BadInput

FORMAT = 1
SAME_AS_TENSORFLOW = "same-as-tensorflow"
_TARGET_RE = re.compile(r"^\s*([a-z][a-z0-9-]*)@v?(\d+)\.(\d+)(?:\.\d+)?(?::([a-z0-9]+))?\s*$")


@dataclass(frozen=True)
class ConsumerRelease:
    """One consumer version and the TensorFlow it runs."""

    consumer: str          # "tfjs-node"
    version: str           # "4.22" or "4.6:tf2"
    tensorflow: str        # "2.9.1"
    note: str | None
    source: dict[str, str]
    verified: bool

    @property
    def name(self) -> str:
        return f"{self.consumer}@{self.version}"


@functools.cache
def _table() -> dict[str, Any]:
    data = resources.files("rewriter.registries").joinpath("consumers.json").read_text("utf-8")
    table: dict[str, Any] = json.loads(data)
    if table.get("format") != FORMAT:
        raise RuntimeError("rewriter/registries/consumers.json has an unknown format")
    return table


def consumer_names() -> list[str]:
    return sorted(_table()["consumers"])


def consumer_releases() -> list[ConsumerRelease]:
    """Every listed consumer version (consumers that follow TF's numbering appear once, as X.Y)."""
    out = []
    for name, entry in sorted(_table()["consumers"].items()):
        versions = entry["versions"]
        if versions == SAME_AS_TENSORFLOW:
            out.append(ConsumerRelease(name, "X.Y", "X.Y", None, entry["source"], bool(entry["verified"])))
            continue
        for version, info in sorted(versions.items(), key=lambda kv: _version_key(kv[0])):
            out.append(ConsumerRelease(name, version, info["tensorflow"], info.get("note"), entry["source"],
                                       bool(entry["verified"])))
    return out


def _version_key(version: str) -> tuple[int, ...]:
    numbers, _, variant = version.partition(":")
    return (*(int(p) for p in numbers.split(".")), len(variant), *map(ord, variant))


def is_consumer_target(text: str) -> bool:
    return "@" in str(text)


def resolve(text: str) -> ConsumerRelease:
    """`tfjs-node@4.22` -> its ConsumerRelease; BadInput (one line, naming what is known) otherwise."""
    match = _TARGET_RE.match(str(text))
    if not match:
        raise BadInput(f"--to {text!r} is not a consumer: write NAME@X.Y, e.g. tfjs-node@4.22 "
                       f"(known: {', '.join(consumer_names())}; see `tfdowngrade targets`)")
    name, major, minor, variant = match.group(1), match.group(2), match.group(3), match.group(4)
    entry = _table()["consumers"].get(name)
    if entry is None:
        raise BadInput(f"--to {text!r}: unknown consumer {name!r} (known: {', '.join(consumer_names())})")
    version = f"{major}.{minor}"
    if entry["versions"] == SAME_AS_TENSORFLOW:
        if variant:
            raise BadInput(f"--to {text!r}: {name} has no variants")
        return ConsumerRelease(name, version, version, None, entry["source"], bool(entry["verified"]))
    versions: dict[str, Any] = entry["versions"]
    key = f"{version}:{variant}" if variant else version
    if key not in versions:
        variants = sorted(k for k in versions if k.startswith(f"{version}:"))
        if variants and not variant:
            raise BadInput(f"--to {text!r}: {name} {version} ships more than one TensorFlow; say which: "
                           + ", ".join(f"{name}@{k} (TF {versions[k]['tensorflow']})" for k in variants))
        listed = sorted(versions, key=_version_key)
        known = ", ".join(listed) if len(listed) <= 8 else f"{listed[0]} ... {listed[-1]}; see `tfdowngrade targets`"
        raise BadInput(f"--to {text!r}: {name} {key} is not listed (known: {known})")
    info = versions[key]
    return ConsumerRelease(name, key, info["tensorflow"], info.get("note"), entry["source"], bool(entry["verified"]))


def runtime_note(consumer: str | None, ran: str) -> str | None:
    """Where parity ran in another patch release than the consumer runs (jetpack@4.6:tf2 runs
    NVIDIA's 2.7.0; parity runs PyPI's newest 2.7): a sentence saying so, or None."""
    if not consumer:
        return None
    try:
        release = resolve(consumer)
    except BadInput:
        return None
    if release.tensorflow == ran:
        return None
    build = f" ({release.note})" if release.note else ""
    minor = ".".join(ran.split(".")[:2])
    return (f"{consumer} runs TensorFlow {release.tensorflow}{build}; parity ran in {ran}, the newest patch "
            f"release of {minor} on PyPI (a release's patches fix bugs and keep its ops)")


def to_json() -> list[dict[str, Any]]:
    """What `tfdowngrade targets --json` prints."""
    return [{"consumer": c.consumer, "version": c.version, "name": c.name if c.version != "X.Y" else f"{c.consumer}@X.Y",
             "tensorflow": c.tensorflow, "note": c.note, "source": c.source, "verified": c.verified}
            for c in consumer_releases()]
