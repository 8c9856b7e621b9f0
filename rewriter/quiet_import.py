"""Import TensorFlow without its start-up chatter on our stderr.

TensorFlow 2.16+ logs through absl before its log level is read, so `TF_CPP_MIN_LOG_LEVEL=3`
does not silence lines such as "oneDNN custom operations are on" (printed on CPUs where oneDNN
is enabled by default, twice per import in 2.21). They are written by C++ straight to file
descriptor 2, so `sys.stderr` redirection cannot catch them. The CLI promises one clear line
on error, so while the `tensorflow` package executes, descriptor 2 points at a temporary file;
what was written there is shown only if the import itself fails.

Whichever module imports TensorFlow first (protobuf modules or the Python API, now or after a
refactor), the hook catches it: it is a one-shot meta-path finder for the name `tensorflow`.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import tempfile
from types import ModuleType
from typing import Iterator, Sequence


@contextlib.contextmanager
def stderr_descriptor_captured() -> Iterator[list[bytes]]:
    """Point fd 2 at a temporary file; yields a list that receives what was written."""
    captured: list[bytes] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read())


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one shot: the real finders do the work
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            captured: list[bytes] = []
            try:
                with stderr_descriptor_captured() as captured:
                    run(module)
            except BaseException:
                sys.stderr.write(b"".join(captured).decode("utf-8", "replace"))
                raise

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def silence_tensorflow_import() -> None:
    """Install the hook unless TensorFlow is already imported or the user asked for its logs."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") in ("", "0"):
        return
    if not any(isinstance(finder, _QuietTensorFlowFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())
