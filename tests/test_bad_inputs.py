"""The bad-input corpus (issue 5 §1): every way IN, OUT or the command line can be wrong.

Each case asserts the documented exit code, one clear line on stderr (no traceback),
IN unchanged (content, mode bits, mtime: see test_input_safety.py), and OUT absent, or
unchanged if it existed, or complete where the failure comes after writing.

Most runs call the CLI entry point in this process (`run_main`): TensorFlow's import
would otherwise cost ~5 s per case. `test_real_process` runs a sample of the corpus,
plus the permission cases that need a process without root's override of file modes,
through the real console script.

Binary inputs come from tests/bad_inputs/ (written by tools/make_bad_inputs.py).
"""
from __future__ import annotations

import errno
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np
import pytest

from conftest import load_tool
from test_input_safety import (
    ROOT,
    Batch,
    CliResult,
    changes,
    fixture_dir,
    leftovers,
    one_clear_line,
    run_main,
    snapshot_tree,
    start_batch,
    start_subprocess,
    unchanged,
)

CORPUS = ROOT / "tests" / "bad_inputs"
GENERATOR = ROOT / "tools" / "make_bad_inputs.py"
BASE = fixture_dir("int_output")  # the generator edits this fixture's saved_model.pb
NO_VERIFY = ("--no-verify", "-q")

EXIT_REFUSED, EXIT_BAD_INPUT = 1, 2


# --- recording what the tool opens, to prove it never reads outside IN -------------------------
_OPENED: list[str] | None = None
_PATH_EVENTS = {"open", "os.listdir", "os.scandir", "shutil.copyfile", "os.link", "os.symlink"}


def _audit(event: str, args: tuple) -> None:
    if _OPENED is None or event not in _PATH_EVENTS:
        return
    for arg in args[:2]:
        if isinstance(arg, (str, bytes, os.PathLike)):
            _OPENED.append(os.path.realpath(os.fsdecode(arg)))


sys.addaudithook(_audit)  # cannot be removed; inert unless _OPENED is a list


def run_recorded(argv: list[object], guard: list[Path]) -> tuple[CliResult, list[str]]:
    """run_main, plus the real paths of everything opened, listed or linked meanwhile."""
    global _OPENED
    with unchanged(*guard):  # outside the recording: the snapshot itself reads everything
        _OPENED = []
        try:
            result = run_main(argv)
            opened = list(_OPENED)
        finally:
            _OPENED = None
    return result, opened


# --- the cases ------------------------------------------------------------------------------------
@dataclass
class Setup:
    argv: list[object]
    in_dir: Path | None  # guarded: must not change
    out: Path | None  # must be absent afterwards (unless out_existed / out_complete)
    outside: Path | None = None  # a folder beside IN that nothing may open or change
    out_existed: bool = False  # OUT was there before the run: it must be unchanged
    out_complete: bool = False  # the failure comes after writing: OUT must be a full SavedModel


@dataclass
class Case:
    name: str
    build: Callable[[Path], Setup]
    code: int
    needle: str


def _model(tmp: Path, pb: str | None = None) -> Path:
    """A copy of the base fixture at tmp/in, with the corpus's `pb` as its saved_model.pb."""
    source = tmp / "in"
    shutil.copytree(BASE, source)
    # TF writes an empty assets/ folder; git does not keep empty folders, so a fresh clone lacks it.
    (source / "assets").mkdir(exist_ok=True)
    if pb is not None:
        shutil.copyfile(CORPUS / f"{pb}.pb", source / "saved_model.pb")
    return source


def _outside(tmp: Path) -> Path:
    """tmp/outside/secret.txt: what a hostile model would like us to read or copy."""
    outside = tmp / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours\n")
    return outside


def _convert(tmp: Path, source: Path, *extra: object, to: str = "2.3") -> Setup:
    return Setup([source, tmp / "out", "--to", to, *NO_VERIFY, *extra], source, tmp / "out")


def _binary(name: str, to: str = "2.3") -> Callable[[Path], Setup]:
    def build(tmp: Path) -> Setup:
        setup = _convert(tmp, _model(tmp, name), to=to)
        setup.outside = _outside(tmp)
        return setup

    return build


# Expected outcome of every file of the binary corpus (test_corpus_is_covered keeps them in step).
BINARY: dict[str, tuple[int, str, str]] = {
    # name: (exit code, text the error line must contain, --to)
    "truncated": (EXIT_BAD_INPUT, "not a SavedModel protobuf", "2.3"),
    "empty": (EXIT_BAD_INPUT, "empty file", "2.3"),
    "random_bytes": (EXIT_BAD_INPUT, "not a SavedModel protobuf", "2.3"),
    "wrong_message": (EXIT_BAD_INPUT, "holds no MetaGraphDef", "2.3"),
    "call_cycle": (EXIT_BAD_INPUT, "function call cycle", "2.3"),
    "missing_function": (EXIT_BAD_INPUT, "'__inference_deleted_function_999', which the library lacks", "2.3"),
    "dangling_input_graph": (EXIT_BAD_INPUT, "input 'no_such_node' that names no node", "2.3"),
    "dangling_input_function": (EXIT_BAD_INPUT, "input 'no_such_node:z:0' that names no node", "2.3"),
    "duplicate_node": (EXIT_BAD_INPUT, "two nodes are named", "2.3"),
    "custom_op": (EXIT_REFUSED, "nothing was written", "2.3"),
    "asset_escape": (EXIT_BAD_INPUT, "'../../outside/secret.txt' points outside", "2.3"),
    "asset_absolute": (EXIT_BAD_INPUT, "'/etc/hostname' points outside", "2.3"),
    "asset_nul_byte": (EXIT_BAD_INPUT, "not a valid file name (embedded null byte)", "2.3"),
    "old_source": (EXIT_BAD_INPUT, "--to 2.9 is newer than the release that wrote the model (2.5.0)", "2.9"),
    "no_meta_graph_tags": (EXIT_BAD_INPUT, "no graph or no tags", "2.3"),
    "object_graph_unknown_function": (EXIT_BAD_INPUT, "the object graph names function '', which the library lacks", "2.21"),
    "object_graph_dangling_child": (EXIT_BAD_INPUT, "refers to object 999, but the object graph has 7 objects", "2.3"),
    "attr_wrong_kind": (EXIT_BAD_INPUT, "attr 'T' should be a type, holds s: a malformed model", "2.3"),
}


def _missing(tmp: Path) -> Setup:
    return Setup([tmp / "nope", tmp / "out", "--to", "2.3", *NO_VERIFY], None, tmp / "out")


def _file_not_folder(tmp: Path) -> Setup:
    (tmp / "in").write_bytes((BASE / "saved_model.pb").read_bytes())
    return _convert(tmp, tmp / "in")


def _keras_archive(tmp: Path) -> Setup:
    import zipfile

    with zipfile.ZipFile(tmp / "model.keras", "w") as archive:  # what Keras 3's model.save writes
        archive.writestr("config.json", "{}")
    return _convert(tmp, tmp / "model.keras")


def _hdf5_file(tmp: Path) -> Setup:
    (tmp / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))  # HDF5's signature
    return _convert(tmp, tmp / "model.h5")


def _saved_model_pb_itself(tmp: Path) -> Setup:
    (tmp / "in").mkdir()
    (tmp / "in" / "saved_model.pb").write_bytes((BASE / "saved_model.pb").read_bytes())
    return _convert(tmp, tmp / "in" / "saved_model.pb")


def _empty_folder(tmp: Path) -> Setup:
    (tmp / "in").mkdir()
    return _convert(tmp, tmp / "in")


def _no_pb(tmp: Path) -> Setup:
    source = _model(tmp)
    (source / "saved_model.pb").unlink()
    return _convert(tmp, source)


def _pb_and_pbtxt(tmp: Path) -> Setup:
    source = _model(tmp)
    (source / "saved_model.pbtxt").write_text("saved_model_schema_version: 1\n")
    return _convert(tmp, source)


def _bad_pbtxt(tmp: Path) -> Setup:
    source = _model(tmp)
    (source / "saved_model.pb").unlink()
    (source / "saved_model.pbtxt").write_text("meta_graphs {\n  graph_def { node { name: \"x\" \n")
    return _convert(tmp, source)


def _pb_is_folder(tmp: Path) -> Setup:
    source = _model(tmp)
    (source / "saved_model.pb").unlink()
    (source / "saved_model.pb").mkdir()
    return _convert(tmp, source)


def _no_variables_folder(tmp: Path) -> Setup:
    source = _model(tmp)
    shutil.rmtree(source / "variables")
    return _convert(tmp, source)


def _no_index(tmp: Path) -> Setup:
    source = _model(tmp)
    (source / "variables" / "variables.index").unlink()
    return _convert(tmp, source)


def _no_data_shard(tmp: Path) -> Setup:
    source = _model(tmp)
    (source / "variables" / "variables.data-00000-of-00001").unlink()
    return _convert(tmp, source)


def _missing_second_shard(tmp: Path) -> Setup:
    source = _model(tmp)
    variables = source / "variables"
    (variables / "variables.data-00000-of-00001").rename(variables / "variables.data-00000-of-00002")
    return _convert(tmp, source)


def _tags_convert(tmp: Path) -> Setup:
    # An unknown tag set is bad input before anything is written (with or without parity), so
    # OUT must be absent. --offline: the tag check comes before any runtime would be fetched.
    source = _model(tmp)
    return Setup([source, tmp / "out", "--to", "2.3", "--tags", "train", "--offline", "-q"], source, tmp / "out")


def _tags_verify(tmp: Path) -> Setup:
    source = _model(tmp)
    return Setup(["verify", source, "--against", source, "--to", "2.3", "--tags", "serve,gpu", "--offline", "-q"],
                 source, None)


def _symlink(kind: str) -> Callable[[Path], Setup]:
    def build(tmp: Path) -> Setup:
        source, outside = _model(tmp), _outside(tmp)
        if kind == "file":
            (source / "assets" / "vocab.txt").symlink_to(outside / "secret.txt")
        elif kind == "relative file":
            (source / "assets" / "vocab.txt").symlink_to(Path("..") / ".." / "outside" / "secret.txt")
        elif kind == "folder":
            (source / "assets" / "more").symlink_to(outside)
        elif kind == "saved_model.pb":
            shutil.copyfile(BASE / "saved_model.pb", outside / "saved_model.pb")
            (source / "saved_model.pb").unlink()
            (source / "saved_model.pb").symlink_to(outside / "saved_model.pb")
        elif kind == "variables":
            shutil.copytree(source / "variables", outside / "variables")
            shutil.rmtree(source / "variables")
            (source / "variables").symlink_to(outside / "variables")
        elif kind == "loop":
            (source / "assets" / "loop").symlink_to(source / "assets" / "loop")
        setup = _convert(tmp, source)
        setup.outside = outside
        return setup

    return build


def _fifo(tmp: Path) -> Setup:
    source = _model(tmp)
    os.mkfifo(source / "assets" / "pipe")  # opening it to copy would block forever
    return _convert(tmp, source)


def _out_is_in(tmp: Path) -> Setup:
    source = _model(tmp)
    return Setup([source, source, "--to", "2.3", *NO_VERIFY, "--force"], source, None)


def _out_inside_in(tmp: Path) -> Setup:
    source = _model(tmp)
    return Setup([source, source / "converted", "--to", "2.3", *NO_VERIFY, "--force"], source, None)


def _out_contains_in(tmp: Path) -> Setup:
    source = _model(tmp)
    # OUT = tmp, which holds IN: --force would replace IN along with it.
    return Setup([source, tmp, "--to", "2.3", *NO_VERIFY, "--force"], source, None)


def _out_not_empty(tmp: Path) -> Setup:
    source = _model(tmp)
    (tmp / "out").mkdir()
    (tmp / "out" / "keep.txt").write_text("mine\n")
    setup = _convert(tmp, source)
    setup.out_existed = True
    return setup


def _out_inside_in_before_work(tmp: Path) -> Setup:
    """Without -q: the error is the first line, before any progress line (no model read, no rules run)."""
    source = _model(tmp)
    return Setup([source, source / "converted", "--to", "2.3"], source, None)


def _out_is_file(force: bool) -> Callable[[Path], Setup]:
    def build(tmp: Path) -> Setup:
        source = _model(tmp)
        (tmp / "out").write_text("mine\n")
        setup = _convert(tmp, source, *(["--force"] if force else []))
        setup.out_existed = True
        return setup

    return build


def _out_symlink_loop(tmp: Path) -> Setup:
    source = _model(tmp)
    (tmp / "out").symlink_to(tmp / "out")
    setup = _convert(tmp, source)
    setup.out_existed = True
    return setup


def _to(value: str) -> Callable[[Path], Setup]:
    def build(tmp: Path) -> Setup:
        return _convert(tmp, _model(tmp), to=value)

    return build


def _inputs_file(name: str) -> Callable[[Path], Setup]:
    """--inputs naming a file that is not a .npz of named arrays: one .npy array, JSON, nothing."""
    def build(tmp: Path) -> Setup:
        path = tmp / name
        if name.endswith(".npy"):
            np.save(path, np.zeros(3, np.float32))
        elif name.endswith(".json"):
            path.write_text('{"image": [0.0]}')
        return Setup([_model(tmp), tmp / "out", "--to", "2.3", "--inputs", path], None, tmp / "out")

    return build


def _check_command(pb: str) -> Callable[[Path], Setup]:
    def build(tmp: Path) -> Setup:
        source = _model(tmp, pb)
        return Setup(["check", source, "--to", "2.3", "-q"], source, None)

    return build


def _inspect_command(pb: str) -> Callable[[Path], Setup]:
    def build(tmp: Path) -> Setup:
        source = _model(tmp, pb)
        return Setup(["inspect", source, "--to", "2.3"], source, None)

    return build


CASES: list[Case] = [
    Case("missing-folder", _missing, EXIT_BAD_INPUT, "nope: no such folder"),
    Case("file-not-folder", _file_not_folder, EXIT_BAD_INPUT, "not a folder"),
    Case("keras-archive", _keras_archive, EXIT_BAD_INPUT, "zip archive, such as a Keras 3 .keras file: export a SavedModel"),
    Case("hdf5-file", _hdf5_file, EXIT_BAD_INPUT, "HDF5 file, such as a Keras .h5 model"),
    Case("saved_model.pb-itself", _saved_model_pb_itself, EXIT_BAD_INPUT, "give the folder that holds it"),
    Case("empty-folder", _empty_folder, EXIT_BAD_INPUT, "no saved_model.pb or saved_model.pbtxt"),
    Case("no-saved_model.pb", _no_pb, EXIT_BAD_INPUT, "no saved_model.pb or saved_model.pbtxt"),
    Case("pb-and-pbtxt", _pb_and_pbtxt, EXIT_BAD_INPUT, "holds both saved_model.pb and saved_model.pbtxt"),
    Case("malformed-pbtxt", _bad_pbtxt, EXIT_BAD_INPUT, "saved_model.pbtxt: not a SavedModel protobuf"),
    Case("saved_model.pb-is-a-folder", _pb_is_folder, EXIT_BAD_INPUT, "is a folder, not a file"),
    *[Case(f"corpus-{name}", _binary(name, to), code, needle) for name, (code, needle, to) in BINARY.items()],
    Case("no-variables-folder", _no_variables_folder, EXIT_BAD_INPUT, "2 variable(s) but no variables/variables.index"),
    Case("no-variables-index", _no_index, EXIT_BAD_INPUT, "data shards but no variables.index"),
    Case("no-data-shard", _no_data_shard, EXIT_BAD_INPUT, "variables.index has no data shards"),
    Case("missing-second-shard", _missing_second_shard, EXIT_BAD_INPUT, "variables.data-00001-of-00002 is missing"),
    Case("unknown-tags-convert", _tags_convert, EXIT_BAD_INPUT, "no MetaGraphDef has tags train (available: serve)"),
    Case("unknown-tags-verify", _tags_verify, EXIT_BAD_INPUT, "no MetaGraphDef has tags serve,gpu"),
    Case("symlink-file-outside", _symlink("file"), EXIT_BAD_INPUT, "outside the SavedModel folder"),
    Case("symlink-relative-outside", _symlink("relative file"), EXIT_BAD_INPUT, "outside the SavedModel folder"),
    Case("symlink-folder-outside", _symlink("folder"), EXIT_BAD_INPUT, "outside the SavedModel folder"),
    Case("symlink-pb-outside", _symlink("saved_model.pb"), EXIT_BAD_INPUT, "outside the SavedModel folder"),
    Case("symlink-variables-outside", _symlink("variables"), EXIT_BAD_INPUT, "outside the SavedModel folder"),
    Case("symlink-loop", _symlink("loop"), EXIT_BAD_INPUT, "symbolic link loop"),
    Case("fifo-in-assets", _fifo, EXIT_BAD_INPUT, "not a regular file"),
    Case("out-is-in", _out_is_in, EXIT_BAD_INPUT, "must not be the input folder or inside it"),
    Case("out-inside-in", _out_inside_in, EXIT_BAD_INPUT, "must not be the input folder or inside it"),
    Case("out-inside-in-before-work", _out_inside_in_before_work, EXIT_BAD_INPUT,
         "must not be the input folder or inside it"),
    Case("out-contains-in", _out_contains_in, EXIT_BAD_INPUT, "must not contain the input folder"),
    Case("out-not-empty", _out_not_empty, EXIT_BAD_INPUT, "exists and is not empty (use --force"),
    Case("out-is-a-file", _out_is_file(False), EXIT_BAD_INPUT, "exists and is not a folder"),
    Case("out-is-a-file-force", _out_is_file(True), EXIT_BAD_INPUT, "exists and is not a folder"),
    Case("out-symlink-loop", _out_symlink_loop, EXIT_BAD_INPUT, "symbolic link loop"),
    Case("to-malformed", _to("two.three"), EXIT_BAD_INPUT, "--to 'two.three' is not a TensorFlow release"),
    Case("to-major-only", _to("2"), EXIT_BAD_INPUT, "--to '2' is not a TensorFlow release"),
    Case("to-four-parts", _to("2.3.4.5"), EXIT_BAD_INPUT, "is not a TensorFlow release"),
    Case("to-empty", _to(""), EXIT_BAD_INPUT, "is not a TensorFlow release"),
    Case("to-unknown-old", _to("1.14"), EXIT_BAD_INPUT, "TensorFlow 1.14 is not a release this tool knows"),
    Case("to-consumer-without-version", _to("tfjs-node"), EXIT_BAD_INPUT,
         "--to 'tfjs-node' names a consumer without its version: write tfjs-node@VERSION, e.g. tfjs-node@"),
    Case("inputs-npy", _inputs_file("x.npy"), EXIT_BAD_INPUT, "one .npy array, not a .npz of named arrays"),
    Case("inputs-not-npz", _inputs_file("x.json"), EXIT_BAD_INPUT, "not a .npz file (a zip of named .npy arrays"),
    Case("inputs-missing", _inputs_file("gone.npz"), EXIT_BAD_INPUT, "gone.npz: cannot be read (No such file"),
    Case("to-unknown-new", _to("2.99"), EXIT_BAD_INPUT, "TensorFlow 2.99 is not a release this tool knows"),
    Case("check-truncated", _check_command("truncated"), EXIT_BAD_INPUT, "not a SavedModel protobuf"),
    Case("check-call-cycle", _check_command("call_cycle"), EXIT_BAD_INPUT, "function call cycle"),
    Case("inspect-random-bytes", _inspect_command("random_bytes"), EXIT_BAD_INPUT, "not a SavedModel protobuf"),
    Case("inspect-dangling-input", _inspect_command("dangling_input_graph"), EXIT_BAD_INPUT, "names no node"),
]


@pytest.fixture(autouse=True)
def _log_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Internal-error logs go to a folder of our own, which must stay empty."""
    logs = tmp_path_factory.mktemp("logs")
    monkeypatch.setenv("TFDOWNGRADE_LOG_DIR", str(logs))
    yield logs
    assert not list(logs.iterdir()), "an internal error was logged"


def _assert_out(setup: Setup, before_out: dict) -> None:
    from rewriter.savedmodel.files import read_saved_model

    if setup.out is None:
        return
    parent, name = setup.out.parent, setup.out.name
    assert not leftovers(parent, name), f"temporary folders left beside OUT: {leftovers(parent, name)}"
    if setup.out_existed:
        assert not changes(before_out, snapshot_tree(setup.out)), "a failed run changed the existing OUT"
    elif setup.out_complete:
        written = read_saved_model(setup.out)
        assert setup.in_dir is not None
        expected = sorted(name for name in read_saved_model(setup.in_dir).other_files if name != "fingerprint.pb")
        assert sorted(written.other_files) == expected
    else:
        assert not os.path.lexists(setup.out), "OUT exists after a failed run"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    setup = case.build(tmp_path)
    guard = [p for p in (setup.in_dir, setup.outside) if p is not None]
    before_out = snapshot_tree(setup.out) if setup.out is not None and setup.out_existed else {}
    result, opened = run_recorded(setup.argv, guard)
    assert result.code == case.code, result.stderr
    line = one_clear_line(result)
    assert case.needle in line, line
    _assert_out(setup, before_out)
    if setup.outside is not None:
        read = [path for path in opened if Path(path).is_relative_to(setup.outside.resolve())]
        assert not read, f"opened outside IN: {read}"


def test_recording_sees_what_the_tool_reads(tmp_path: Path) -> None:
    # The control for the "nothing outside IN opened" assertions: a good run's reads show up.
    source = _model(tmp_path)
    result, opened = run_recorded([source, tmp_path / "out", "--to", "2.3", *NO_VERIFY], [source])
    assert result.code == 0, result.stderr
    assert str((source / "saved_model.pb").resolve()) in opened


# --- the corpus is what the generator writes, and every file of it has a case ------------------------
def test_corpus_is_fresh_and_covered() -> None:
    generator = load_tool("make_bad_inputs")
    files = generator.generate(CORPUS)
    assert generator.stale(CORPUS, files) == [], "run: .venv/bin/python tools/make_bad_inputs.py"
    manifest = json.loads((CORPUS / "cases.json").read_text())
    assert set(manifest["cases"]) == set(BINARY), "every corpus file needs an expectation in BINARY"


# --- 2 GiB: protobuf's limit for one message ------------------------------------------------------------
def test_saved_model_pb_over_2gib_is_refused_unread(tmp_path: Path) -> None:
    from rewriter.savedmodel.files import PROTO_LIMIT

    source = _model(tmp_path)
    with open(source / "saved_model.pb", "r+b") as handle:
        handle.truncate(PROTO_LIMIT + 1)  # sparse: 2 GiB of size, a few KiB of disk
    result, opened = run_recorded([source, tmp_path / "out", "--to", "2.3", *NO_VERIFY], [source])
    assert result.code == EXIT_BAD_INPUT
    line = one_clear_line(result)
    assert f"{PROTO_LIMIT + 1} bytes, over protobuf's 2 GiB limit" in line
    assert str((source / "saved_model.pb").resolve()) not in opened, "read a saved_model.pb it had to refuse"
    assert not os.path.lexists(tmp_path / "out")


def test_output_over_2gib_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Growing a real model past 2 GiB needs gigabytes of memory; the limit logic is the same
    # at any size, so lower the limit below the rewritten fixture's size.
    import rewriter.savedmodel.files as savedmodel_io
    from rewriter import api
    from rewriter.errors import BadInput

    planned = api.check(BASE, "2.3")
    assert planned.output_proto is not None
    size = len(savedmodel_io.serialize(planned.output_proto))
    monkeypatch.setattr(savedmodel_io, "PROTO_LIMIT", size - 1)
    with pytest.raises(BadInput, match=f"would be {size} bytes, over protobuf's 2 GiB limit"):
        savedmodel_io.serialize(planned.output_proto)


# --- a disk that fills up (or fails) while OUT is written -------------------------------------------
def _no_space(path: object = None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), None if path is None else str(path))


def _in_temp_output(path: Path) -> bool:
    return any(part.startswith(".out.tfdowngrade-") for part in Path(path).parts)


def _inject(point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make one write of the output fail the way a full (or broken) disk does, half-way through."""
    if point == "saved_model.pb":
        real_write_bytes = pathlib.Path.write_bytes

        def write_bytes(self: Path, data: bytes) -> int:
            if _in_temp_output(self) and self.name == "saved_model.pb":
                real_write_bytes(self, data[: len(data) // 2])
                raise _no_space(self)
            return real_write_bytes(self, data)

        monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
    elif point == "variables":
        # Across filesystems there is no hard link: the shard is streamed, and the disk fills.
        def no_link(*args: object, **kwargs: object) -> None:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

        def copy_some(reader: BinaryIO, writer: BinaryIO, length: int = 0) -> None:
            writer.write(reader.read(16))
            raise _no_space(getattr(writer, "name", None))

        monkeypatch.setattr(os, "link", no_link)
        monkeypatch.setattr(shutil, "copyfileobj", copy_some)
    elif point == "fingerprint":
        import rewriter.pipeline as pipeline

        def fingerprint(directory: Path, target: object, written: object) -> None:
            (directory / "fingerprint.pb").write_bytes(b"\x08")
            raise _no_space(directory / "fingerprint.pb")

        monkeypatch.setattr(pipeline, "_write_fingerprint", fingerprint)
    elif point == "rename":
        real_rename = os.rename

        def rename(src: object, dst: object, *args: object, **kwargs: object) -> None:
            # Only the move of the finished temporary folder into place fails; moving a
            # previous OUT aside and back (with --force) still works.
            name = Path(str(src)).name
            if name.startswith(".out.tfdowngrade-") and "-old-" not in name:
                raise OSError(errno.EIO, os.strerror(errno.EIO), str(src))
            real_rename(src, dst, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "rename", rename)


@pytest.mark.parametrize("force", [False, True], ids=["new-OUT", "force-over-OUT"])
@pytest.mark.parametrize("point", ["saved_model.pb", "variables", "fingerprint", "rename"])
def test_write_failure_leaves_no_output(point: str, force: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, out = _model(tmp_path), tmp_path / "out"
    to = "2.21" if point == "fingerprint" else "2.3"  # releases from 2.12 on get a new fingerprint.pb
    if force:  # a previous good OUT, which a failed --force must leave exactly as it was
        assert run_main([source, out, "--to", "2.3", *NO_VERIFY], [source]).code == 0
    before_out = snapshot_tree(out)
    _inject(point, monkeypatch)
    result = run_main([source, out, "--to", to, *NO_VERIFY, *(["--force"] if force else [])], [source])
    monkeypatch.undo()
    assert result.code == EXIT_BAD_INPUT, result.stderr
    line = one_clear_line(result)
    assert f"cannot write {out}" in line and "nothing was written" in line, line
    assert not leftovers(tmp_path, "out"), leftovers(tmp_path, "out")
    if force:
        assert not changes(before_out, snapshot_tree(out)), "the failed --force run changed the previous OUT"
    else:
        assert not os.path.lexists(out)


def test_api_convert_raises_bad_input_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rewriter import api
    from rewriter.errors import BadInput

    source, out = _model(tmp_path), tmp_path / "out"
    _inject("variables", monkeypatch)
    with unchanged(source), pytest.raises(BadInput, match="No space left on device; nothing was written"):
        api.convert(source, out, "2.3", verify_parity=False)
    assert not os.path.lexists(out) and not leftovers(tmp_path, "out")


@pytest.mark.parametrize("room", ["none", "saved_model.pb-only"])
def test_real_full_disk(room: str, tmp_path: Path, small_tmpfs: Callable[[int], Path]) -> None:
    from rewriter import api
    from rewriter.savedmodel.files import serialize

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; test_write_failure_leaves_no_output injects the same failure")
    source = _model(tmp_path)
    planned = api.check(source, "2.3")
    assert planned.output_proto is not None
    pages = math.ceil(len(serialize(planned.output_proto)) / 4096)
    # tmpfs counts whole pages: room for nothing, or for saved_model.pb but not the variables.
    disk = small_tmpfs(4096 if room == "none" else pages * 4096)
    out = disk / "out"
    result = run_main([source, out, "--to", "2.3", *NO_VERIFY], [source])
    assert result.code == EXIT_BAD_INPUT, result.stderr
    assert "No space left on device; nothing was written" in one_clear_line(result)
    assert list(disk.iterdir()) == [], "OUT or its temporary folder is left on the full disk"


# --- in a real process: the console script, FIFOs outside IN, unreadable files -----------------------
SETPRIV = shutil.which("setpriv")
# As root, file modes do not stop reads; without these two capabilities they do again.
DROP_DAC = [SETPRIV or "setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def _fifo_outside(kind: str) -> Callable[[Path], Setup]:
    """The thing outside IN is a FIFO: opening it would block, so a run that ends proves it was never opened."""
    def build(tmp: Path) -> Setup:
        outside = tmp / "outside"
        outside.mkdir()
        os.mkfifo(outside / "secret.txt")
        if kind == "symlink":
            source = _model(tmp)
            (source / "assets" / "vocab.txt").symlink_to(outside / "secret.txt")
        else:
            source = _model(tmp, "asset_escape")
        setup = _convert(tmp, source)
        setup.outside = outside
        return setup

    return build


def _unreadable(what: str) -> Callable[[Path], Setup]:
    def build(tmp: Path) -> Setup:
        source = _model(tmp)
        (source / what).chmod(0)
        return _convert(tmp, source)

    return build


@dataclass
class ProcessCase:
    name: str
    build: Callable[[Path], Setup]
    code: int
    needle: str
    needs_mode_checks: bool = False  # must run where file modes are enforced (not as all-powerful root)


_BY_NAME = {case.name: case for case in CASES}
PROCESS_CASES = [  # the first runs through the console script itself
    *[ProcessCase(c.name, c.build, c.code, c.needle) for c in (_BY_NAME["corpus-truncated"], _BY_NAME["corpus-custom_op"])],
    ProcessCase("symlink-to-fifo-outside", _fifo_outside("symlink"), EXIT_BAD_INPUT, "outside the SavedModel folder"),
    ProcessCase("asset-escape-to-fifo", _fifo_outside("asset"), EXIT_BAD_INPUT, "points outside"),
    ProcessCase("unreadable-saved_model.pb", _unreadable("saved_model.pb"), EXIT_BAD_INPUT,
                "saved_model.pb: cannot be read (permission denied)", True),
    ProcessCase("unreadable-variables-shard", _unreadable("variables/variables.data-00000-of-00001"),
                EXIT_BAD_INPUT, "variables.data-00000-of-00001: cannot be read (permission denied)", True),
    ProcessCase("unreadable-variables-folder", _unreadable("variables"), EXIT_BAD_INPUT,
                "variables: cannot be read (Permission denied)", True),
]


@dataclass
class ProcessRun:
    setup: Setup
    result: CliResult | None
    in_changes: list[str]
    skip: str | None = None


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ProcessRun]]:
    """PROCESS_CASES in fresh processes: one through the console script, the rest in two
    batch-driver processes (one without root's override of file modes), all at once."""
    runs: dict[str, ProcessRun] = {}
    setups = {case.name: case.build(tmp_path_factory.mktemp(case.name)) for case in PROCESS_CASES}
    console_name = PROCESS_CASES[0].name
    console_in = setups[console_name].in_dir
    assert console_in is not None
    console = start_subprocess(setups[console_name].argv, guard=[console_in])
    batches: list[tuple[list[str], Batch]] = []
    plain = [c.name for c in PROCESS_CASES[1:] if not c.needs_mode_checks]
    modes = [c.name for c in PROCESS_CASES if c.needs_mode_checks]
    prefix: list[str] = []
    if modes and os.geteuid() == 0:
        if SETPRIV is None:
            for name in modes:
                runs[name] = ProcessRun(setups[name], None, [], "running as root, and no setpriv to drop CAP_DAC_OVERRIDE")
            modes = []
        prefix = DROP_DAC
    # IN and the outside folder are snapshot here, not in the batch: a process without
    # CAP_DAC_OVERRIDE could not read the folders these cases made unreadable.
    guards = {name: [p for p in (setup.in_dir, setup.outside) if p is not None] for name, setup in setups.items()}
    before = {name: {root: snapshot_tree(root) for root in guards[name]} for name in plain + modes}
    for names, batch_prefix in ((plain, []), (modes, prefix)):
        if names:
            spec = tmp_path_factory.mktemp("batch") / "spec.json"
            batches.append((names, start_batch([{"argv": setups[n].argv} for n in names], spec, batch_prefix)))
    runs[console_name] = ProcessRun(setups[console_name], console.wait(), [])
    for names, batch in batches:
        for name, done in zip(names, batch.wait()):
            result = CliResult(done["code"], done["stdout"], done["stderr"], done["argv"])
            changed = [f"{root}/{line}" for root, snap in before[name].items() for line in changes(snap, snapshot_tree(root))]
            runs[name] = ProcessRun(setups[name], result, changed)
    yield runs
    for setup in setups.values():  # let pytest clean up what we made unreadable
        if setup.in_dir is not None and setup.in_dir.exists():
            for path in [setup.in_dir, *setup.in_dir.rglob("*")]:
                if not path.is_symlink():
                    path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.mark.parametrize("case", PROCESS_CASES, ids=[case.name for case in PROCESS_CASES])
def test_real_process(case: ProcessCase, real_runs: dict[str, ProcessRun]) -> None:
    run = real_runs[case.name]
    if run.skip:
        pytest.skip(run.skip)
    assert run.result is not None
    assert run.result.code == case.code, run.result.stderr
    line = one_clear_line(run.result)
    assert case.needle in line, line
    assert not run.in_changes, "the input changed:\n" + "\n".join(run.in_changes)
    _assert_out(run.setup, {})
