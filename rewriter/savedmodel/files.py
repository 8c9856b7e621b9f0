"""Reading a SavedModel folder and writing the result, atomically, without touching the input.

Reading never writes anything. Writing builds the whole output in a temporary folder beside
OUT (stage_saved_model); conversion proves parity on that folder and only then renames it into
place (publish), so OUT is complete and proven, or absent. An unproven output goes to
OUT.unverified (set_aside), never to OUT. Variables are hard-linked
where the filesystem allows it and otherwise streamed, never loaded into memory.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from google.protobuf import message, text_format
from rewriter.protos import saved_model_pb2

from rewriter.errors import BadInput

SAVED_MODEL_PB = "saved_model.pb"
SAVED_MODEL_PBTXT = "saved_model.pbtxt"
FINGERPRINT_PB = "fingerprint.pb"
KERAS_METADATA_PB = "keras_metadata.pb"
# Protobuf refuses messages of 2 GiB or more; say so before it fails obscurely.
PROTO_LIMIT = 2**31 - 1
COPY_CHUNK = 1 << 20


@dataclass
class SavedModelFiles:
    """A SavedModel as found on disk. `proto` is the parsed saved_model.pb(txt)."""

    root: Path
    proto: saved_model_pb2.SavedModel
    pb_name: str
    pb_size: int
    # Relative paths of every other file (variables/, assets/, assets.extra/, fingerprint.pb, ...).
    other_files: list[str] = field(default_factory=list)

    @property
    def has_fingerprint(self) -> bool:
        return FINGERPRINT_PB in self.other_files

    @property
    def has_keras_metadata(self) -> bool:
        return KERAS_METADATA_PB in self.other_files


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _resolve(path: Path) -> Path:
    """path.resolve(), with a symlink loop (RuntimeError before Python 3.13, OSError after) or a
    name the OS cannot take (ValueError: a NUL byte) as BadInput."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as error:
        raise BadInput(f"{path}: cannot be resolved ({_first_line(error)}); a symbolic link loop?") from None
    except ValueError as error:
        raise BadInput(f"{str(path)!r}: not a valid file name ({_first_line(error)})") from None


def _walk_error(error: OSError) -> None:
    # os.walk skips folders it cannot list unless told otherwise: a silently skipped
    # variables/ would make a broken OUT, so an unlistable folder is an error.
    raise BadInput(f"{error.filename}: cannot be read ({error.strerror or error})")


def _walk_files(root: Path) -> list[str]:
    """Every regular file below root, relative, sorted; refuse links that leave root."""
    real_root = _resolve(root)
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=_walk_error, followlinks=False):
        for name in sorted(dirnames) + sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink():
                target = _resolve(path)
                if not _inside(target, real_root):
                    raise BadInput(
                        f"{path} is a symbolic link to {target}, outside the SavedModel folder; refusing to follow it"
                    )
                if target.is_dir():
                    raise BadInput(f"{path} is a symbolic link to a folder; copy the folder in instead")
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                mode = path.stat().st_mode
            except OSError as error:
                raise BadInput(f"{path}: cannot be read ({error.strerror or error})") from None
            if not stat.S_ISREG(mode):
                # A FIFO or device would block or stream forever when copied: never open one.
                raise BadInput(f"{path}: not a regular file (a FIFO, socket or device); refusing it")
            found.append(path.relative_to(root).as_posix())
    return sorted(found)


def _file_hint(path: Path) -> str:
    """What a file given where a SavedModel folder belongs seems to be, and what to do instead
    (read from its first bytes: Keras files are often named anything)."""
    if path.name == SAVED_MODEL_PB:
        return f"; give the folder that holds it: {path.parent}"
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return ""  # a FIFO or device would block when opened: never open one
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return ""
    if head.startswith(b"PK\x03\x04"):
        return ("; this is a zip archive, such as a Keras 3 .keras file: export a SavedModel from it first "
                "(model.export(DIR) in Keras 3), then convert DIR")
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return ("; this is an HDF5 file, such as a Keras .h5 model: load it with its Keras and save a SavedModel "
                "(tf.saved_model.save(model, DIR)), then convert DIR")
    return ""


def read_saved_model(root: Path) -> SavedModelFiles:
    """Read and parse IN; BadInput with one clear line for every way it can be wrong."""
    if not root.exists():
        raise BadInput(f"{root}: no such folder")
    if not root.is_dir():
        raise BadInput(f"{root}: not a folder (a SavedModel is a folder holding saved_model.pb){_file_hint(root)}")
    pb, pbtxt = root / SAVED_MODEL_PB, root / SAVED_MODEL_PBTXT
    if pb.exists() and pbtxt.exists():
        raise BadInput(f"{root}: holds both {SAVED_MODEL_PB} and {SAVED_MODEL_PBTXT}; keep only one")
    if not pb.exists() and not pbtxt.exists():
        raise BadInput(f"{root}: no {SAVED_MODEL_PB} or {SAVED_MODEL_PBTXT}; is this a SavedModel folder?")
    source = pb if pb.exists() else pbtxt
    others = [name for name in _walk_files(root) if name != source.name]
    try:
        size = source.stat().st_size
        if size > PROTO_LIMIT:
            raise BadInput(f"{source}: {size} bytes, over protobuf's 2 GiB limit for one message")
        data = source.read_bytes()
    except PermissionError:
        raise BadInput(f"{source}: cannot be read (permission denied)") from None
    except IsADirectoryError:
        raise BadInput(f"{source}: is a folder, not a file") from None
    except OSError as error:
        raise BadInput(f"{source}: cannot be read ({error.strerror or error})") from None
    proto = saved_model_pb2.SavedModel()
    if not data:
        raise BadInput(f"{source}: empty file")
    try:
        if source is pb:
            proto.ParseFromString(data)
        else:
            text_format.Parse(data.decode("utf-8"), proto)
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError, RuntimeWarning) as error:
        raise BadInput(f"{source}: not a SavedModel protobuf ({_first_line(error)})") from None
    if not proto.meta_graphs:
        raise BadInput(f"{source}: parses, but holds no MetaGraphDef (is it a SavedModel?)")
    for meta_graph in proto.meta_graphs:
        if not meta_graph.HasField("graph_def") or not meta_graph.meta_info_def.tags:
            raise BadInput(f"{source}: a MetaGraphDef has no graph or no tags (is it a SavedModel?)")
    _check_variables(root, others)
    _check_variables_present(root, proto, others)
    _check_assets(root, proto)
    return SavedModelFiles(root=root, proto=proto, pb_name=source.name, pb_size=size, other_files=others)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _check_assets(root: Path, proto: saved_model_pb2.SavedModel) -> None:
    """An asset is read from assets/<filename>: a name that climbs out of it is refused unread."""
    for meta_graph in proto.meta_graphs:
        for asset in meta_graph.asset_file_def:
            name = asset.filename
            resolved = _resolve(root / "assets" / name)
            if not name or Path(name).is_absolute() or not _inside(resolved, _resolve(root / "assets")):
                raise BadInput(f"{root}: asset {name!r} points outside the SavedModel's assets/ folder; refusing it")


def _check_variables(root: Path, files: list[str]) -> None:
    """A checkpoint index without its shards (or the reverse) is a broken model."""
    index = "variables/variables.index"
    shards = [name for name in files if name.startswith("variables/variables.data-")]
    if index in files and not shards:
        raise BadInput(f"{root}: variables/variables.index has no data shards beside it")
    if shards and index not in files:
        raise BadInput(f"{root}: variables/ has data shards but no variables.index")
    for name in shards:
        # variables.data-00000-of-00002: every shard of the count must be there.
        try:
            total = int(name.rsplit("-of-", 1)[1])
        except (IndexError, ValueError):
            continue
        for part in range(total):
            expected = f"variables/variables.data-{part:05d}-of-{total:05d}"
            if expected not in files:
                raise BadInput(f"{root}: checkpoint shard {expected} is missing")
    for name in files:
        path = root / name
        if not os.access(path, os.R_OK):
            raise BadInput(f"{path}: cannot be read (permission denied)")


def _check_variables_present(root: Path, proto: saved_model_pb2.SavedModel, files: list[str]) -> None:
    """A TF2 model whose object graph holds variables cannot load without its checkpoint.

    TensorFlow's loader fails on it ("Failed to find any matching files for variables/variables"),
    so converting it would only produce an output that cannot load either.
    """
    count = sum(
        1
        for meta_graph in proto.meta_graphs
        for node in meta_graph.object_graph_def.nodes
        if node.WhichOneof("kind") == "variable"
    )
    if count and "variables/variables.index" not in files:
        raise BadInput(f"{root}: the model has {count} variable(s) but no variables/variables.index (variables/ missing?)")


def check_output_location(in_dir: Path, out_dir: Path, force: bool) -> None:
    """OUT must not be IN or inside it, and must be empty unless --force."""
    real_in, real_out = _resolve(in_dir), _resolve(out_dir)
    if real_out == real_in or _inside(real_out, real_in):
        raise BadInput(f"{out_dir}: the output must not be the input folder or inside it")
    if _inside(real_in, real_out):
        raise BadInput(f"{out_dir}: the output must not contain the input folder")
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir():
            raise BadInput(f"{out_dir}: exists and is not a folder")
        if any(out_dir.iterdir()) and not force:
            raise BadInput(f"{out_dir}: exists and is not empty (use --force to replace it)")


def _copy_file(src: Path, dst: Path) -> str:
    """Hard link when possible (same filesystem, no bytes copied), else a streamed copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    real = src.resolve()
    try:
        os.link(real, dst)
        return "linked"
    except OSError:
        pass
    with open(real, "rb") as reader, open(dst, "wb") as writer:
        shutil.copyfileobj(reader, writer, COPY_CHUNK)
    shutil.copymode(real, dst)
    return "copied"


UNVERIFIED_SUFFIX = ".unverified"
# The temporary folder carries our pid, so a later run can tell a folder left by a killed run
# (SIGKILL leaves no chance to clean up) from one a live run is still building.
_STAGING_INFIX = ".tfdowngrade-"


@dataclass
class StagedOutput:
    """A complete output in a temporary folder beside OUT, not yet at OUT.

    Conversion stages the output, proves parity on the staged folder, and only then publishes it:
    OUT appears complete and proven, or not at all. `actions` maps each relative path to
    "written"/"linked"/"copied"/"dropped"."""

    path: Path
    out_dir: Path
    in_dir: Path
    force: bool
    actions: dict[str, str]


def unverified_path(out_dir: Path) -> Path:
    """Where an output that failed (or could not run) parity is kept: OUT.unverified, beside OUT."""
    return out_dir.with_name(out_dir.name + UNVERIFIED_SUFFIX)


def write_saved_model(
    files: SavedModelFiles,
    out_dir: Path,
    saved_model_bytes: bytes,
    replaced: dict[str, bytes | None],
    force: bool,
    finalize: Callable[[Path], None] | None = None,
) -> dict[str, str]:
    """Write OUT atomically (stage_saved_model, then publish). See stage_saved_model."""
    staged = stage_saved_model(files, out_dir, saved_model_bytes, replaced, force, finalize)
    publish(staged)
    return staged.actions


def stage_saved_model(
    files: SavedModelFiles,
    out_dir: Path,
    saved_model_bytes: bytes,
    replaced: dict[str, bytes | None],
    force: bool,
    finalize: Callable[[Path], None] | None = None,
) -> StagedOutput:
    """Build the output in a temporary folder beside OUT; OUT itself is not touched.

    `replaced` maps a relative path to new bytes, or None to leave it out. `finalize(tmp_dir)`
    runs on the complete temporary folder (for example to write a fingerprint of the new bytes).
    The caller then calls publish(), set_aside() or discard()."""
    check_output_location(files.root, out_dir, force)
    try:
        tmp, actions = _write_staging(files, out_dir, saved_model_bytes, replaced, finalize)
    except OSError as error:
        # A full disk, a read-only or forbidden OUT: the temporary folder is gone already
        # (see _write_staging), so say what failed in one line.
        raise BadInput(f"cannot write {out_dir}: {error.strerror or error}; nothing was written") from None
    return StagedOutput(path=tmp, out_dir=out_dir, in_dir=files.root, force=force, actions=actions)


def publish(staged: StagedOutput) -> None:
    """Rename the staged folder into OUT (replacing an old OUT only with --force). On failure the
    staged folder is removed and OUT is left as it was."""
    try:
        # OUT may have appeared while parity ran (another conversion): check again.
        check_output_location(staged.in_dir, staged.out_dir, staged.force)
        _replace_dir(staged.path, staged.out_dir)
    except BaseException as error:
        discard(staged)
        if isinstance(error, OSError):
            raise BadInput(f"cannot write {staged.out_dir}: {error.strerror or error}; nothing was written") from None
        raise


def set_aside(staged: StagedOutput) -> Path:
    """Move the staged (unproven) output to OUT.unverified, replacing an older one; returns where
    it is. If that name cannot be taken (it is IN, holds IN, or is not a folder), the output stays
    in its temporary folder, whose path is returned."""
    target = unverified_path(staged.out_dir)
    real_in, real_target = _resolve(staged.in_dir), _resolve(target)
    if real_target == real_in or _inside(real_in, real_target) or _inside(real_target, real_in):
        return staged.path  # never replace IN, whatever it is called
    if (target.exists() or target.is_symlink()) and not target.is_dir():
        return staged.path
    try:
        _replace_dir(staged.path, target)
    except OSError:
        return staged.path
    return target


def discard(staged: StagedOutput) -> None:
    shutil.rmtree(staged.path, ignore_errors=True)


def _remove_stale_staging(parent: Path, out_name: str) -> None:
    """Remove temporary folders of OUT left by runs that were killed (their pid is gone)."""
    prefix = f".{out_name}{_STAGING_INFIX}"
    try:
        names = [entry.name for entry in os.scandir(parent) if entry.name.startswith(prefix)]
    except OSError:
        return
    for name in names:
        pid_text = name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        shutil.rmtree(parent / name, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def _write_staging(
    files: SavedModelFiles,
    out_dir: Path,
    saved_model_bytes: bytes,
    replaced: dict[str, bytes | None],
    finalize: Callable[[Path], None] | None,
) -> tuple[Path, dict[str, str]]:
    parent = out_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(parent, out_dir.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}{_STAGING_INFIX}{os.getpid()}-", dir=parent))
    actions: dict[str, str] = {}
    try:
        (tmp / SAVED_MODEL_PB).write_bytes(saved_model_bytes)
        actions[SAVED_MODEL_PB] = "written"
        for name in files.other_files:
            if name in replaced:
                data = replaced[name]
                if data is None:
                    actions[name] = "dropped"
                    continue
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp / name).write_bytes(data)
                actions[name] = "written"
            else:
                actions[name] = _copy_file(files.root / name, tmp / name)
        for name, data in replaced.items():
            if name not in actions and data is not None:
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp / name).write_bytes(data)
                actions[name] = "written"
        # Keep the empty folders TF expects (assets/, variables/ of a model without variables).
        for sub in ("variables", "assets"):
            if (files.root / sub).is_dir():
                (tmp / sub).mkdir(exist_ok=True)
        if finalize is not None:
            finalize(tmp)
        os.chmod(tmp, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp, actions


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    if out_dir.exists():
        # --force: move the old OUT aside first, so a failure leaves either old or new, never a mix.
        old = out_dir.with_name(f".{out_dir.name}.tfdowngrade-old-{os.getpid()}")
        os.rename(out_dir, old)
        try:
            os.rename(tmp, out_dir)
        except BaseException:
            os.rename(old, out_dir)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out_dir)


def serialize(proto: saved_model_pb2.SavedModel) -> bytes:
    """Deterministic bytes, as TensorFlow itself writes saved_model.pb."""
    data: bytes = proto.SerializeToString(deterministic=True)
    if len(data) > PROTO_LIMIT:
        raise BadInput(f"the rewritten saved_model.pb would be {len(data)} bytes, over protobuf's 2 GiB limit")
    return data
