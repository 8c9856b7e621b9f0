"""TensorFlow releases this tool knows: their versions, producer versions and wheels.

The data lives in `rewriter/registries/releases.json`, written by `tools/gen_registries.py`
from the real wheels on PyPI. Nothing here is typed in by hand.

releases.json, format 1:
    {
      "format": 1,
      "releases": {
        "2.3": {
          "version": "2.3.4",                 # newest patch release of the minor; its registry is ours
          "producer": 440,                    # TF_GRAPH_DEF_VERSION from the wheel's version.h
          "min_consumer": 0,                  # TF_GRAPH_DEF_VERSION_MIN_CONSUMER
          "min_producer": 0,                  # TF_GRAPH_DEF_VERSION_MIN_PRODUCER
          "op_count": 1504,
          "ops_file": "ops-2.3.pb.gz",        # gzip (mtime 0) of a serialized OpList sorted by name
          "ops_sha256": "...",                # of the uncompressed OpList bytes
          "wheel": {
            "project": "tensorflow-cpu",
            "filename": "tensorflow_cpu-2.3.4-cp38-cp38-manylinux2010_x86_64.whl",
            "sha256": "...",
            "size": 137639211,
            "python_version": "3.8",
            "platform": "manylinux2010_x86_64"
          },
          "capi_libs": ["tensorflow/python/_pywrap_tensorflow_internal.so", ...],  # wheel members to unpack
          "capi_lib": "tensorflow/python/_pywrap_tensorflow_internal.so",           # the one to dlopen
          "string_layout": "tstring" | "legacy"    # TF_TString (2.4+) or offset table + varint (2.3)
        }, ...
      }
    }
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from rewriter.errors import BadInput

_RELEASE_RE = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?\s*$")


@dataclass(frozen=True, order=True)
class Release:
    """A TensorFlow minor release, e.g. 2.3. Patch releases share their minor's registry."""

    major: int
    minor: int
    # The consumer the user named (`--to tfjs-node@4.22`), for reports; not part of equality or
    # order: the release is what every rule, registry and runtime is keyed on.
    consumer: str | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        return f"{self.major}.{self.minor}"

    def __str__(self) -> str:
        return self.key

    def describe(self) -> str:
        """'2.9', or '2.9 (tfjs-node@4.22)' when the user named a consumer."""
        return f"{self.key} ({self.consumer})" if self.consumer else self.key


def parse_release(text: str) -> Release:
    """Parse '2.3', '2.3.4' or 'v2.3' into a Release; raise BadInput on anything else.

    A consumer (`tfjs-node@4.22`, `jetpack@4.6:tf2`; rewriter/targets/consumers.py) gives the release it runs,
    carrying the consumer's name for the report.
    """
    from rewriter.targets import consumers

    if consumers.is_consumer_target(text):
        found = consumers.resolve(text)
        release = parse_release(found.tensorflow)
        return Release(release.major, release.minor, consumer=found.name)
    match = _RELEASE_RE.match(str(text))
    if not match:
        name = str(text).strip().lower()
        if name in consumers.consumer_names():  # `--to tfjs-node`: the consumer, without its version
            listed = [c.name for c in consumers.consumer_releases() if c.consumer == name]  # (oldest first)
            example = listed[-1] if listed else f"{name}@X.Y"
            raise BadInput(f"--to {text!r} names a consumer without its version: write {name}@VERSION, e.g. "
                           f"{example} (`tfdowngrade targets` lists them)")
        raise BadInput(f"--to {text!r} is not a TensorFlow release: write it as 2.3 or 2.3.4, or a consumer as "
                       "NAME@VERSION (`tfdowngrade targets` lists them)")
    return Release(int(match.group(1)), int(match.group(2)))


@functools.cache
def _table() -> dict[str, Any]:
    data = resources.files("rewriter.registries").joinpath("releases.json").read_text("utf-8")
    table: dict[str, Any] = json.loads(data)
    if table.get("format") != 1:
        raise RuntimeError("rewriter/registries/releases.json has an unknown format")
    return table


def known_releases() -> list[Release]:
    """Every release with a shipped registry, oldest first."""
    return sorted(parse_release(k) for k in _table()["releases"])


def release_info(release: Release) -> dict[str, Any]:
    """The releases.json entry of a release; BadInput if we ship no registry for it."""
    info = _table()["releases"].get(release.key)
    if info is None:
        known = ", ".join(r.key for r in known_releases())
        raise BadInput(f"TensorFlow {release} is not a release this tool knows (known: {known})")
    return dict(info)


def producer_version(release: Release) -> int:
    """TF_GRAPH_DEF_VERSION of the release: the `producer` our output is stamped with."""
    return int(release_info(release)["producer"])


def release_of_producer(producer: int) -> Release | None:
    """The newest known release whose TF_GRAPH_DEF_VERSION is <= producer (None if older than all)."""
    best: Release | None = None
    for release in known_releases():
        if producer_version(release) <= producer:
            best = release
    return best
