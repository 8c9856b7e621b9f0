"""Convert a whole model repository: a TF Serving base path, a folder of SavedModels, or a models.config.

Layouts IN may have (OUT gets the same one):
  - a serving base path: IN/<model>/<version>/saved_model.pb (versions are numeric folder names);
  - one model's base path: IN/<version>/saved_model.pb;
  - a folder of SavedModels: IN/<name>/saved_model.pb;
  - a models.config (text-format tensorflow.serving.ModelServerConfig): every model_config_list
    entry's base_path, versions chosen by its model_version_policy as TF Serving chooses them
    (no policy: the latest version only). OUT/<name>/<version>.

Every version is converted by its own `tfdowngrade convert` subprocess (at most --jobs at once),
into a staging folder under OUT/.tfdowngrade-staging/, and renamed into place only when it ends
with exit 0. So one failure (a refusal, a parity failure, even a crash of a runtime) never stops
the others and never leaves a half-written version under OUT. A version whose parity failed is
kept for inspection beside OUT, in OUT.unverified/<model>/<version>, never inside OUT.

`--shard i/n` (0 <= i < n) keeps the versions whose key (model/version) hashes to i modulo n:
deterministic on every machine, and a version keeps its shard when others are added or removed.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

from rewriter import __version__
from rewriter.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, BadInput

STAGING = ".tfdowngrade-staging"
REPORT_FORMAT = 1
STATUS = {0: "converted", 1: "refused", 2: "bad input", 3: "parity failed", 4: "no runtime", 5: "internal error"}


@dataclass
class Version:
    """One SavedModel of the repository: where it is, and where it goes under OUT."""

    model: str  # "" for the versions of one model's base path
    version: str | None  # None for a plain SavedModel folder
    source: Path

    @property
    def key(self) -> str:
        """The path under OUT (as under IN): model/version, model, or version."""
        return "/".join(part for part in (self.model, self.version) if part)


@dataclass
class Outcome:
    version: Version
    exit_code: int
    output: Path | None
    error: str | None
    report: dict[str, Any] | None
    kept_unverified: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.version.model, "version": self.version.version, "key": self.version.key,
            "input": str(self.version.source), "output": str(self.output) if self.output else None,
            "exit_code": self.exit_code, "status": STATUS.get(self.exit_code, f"exit {self.exit_code}"),
            "error": self.error,
            "unverified_output": str(self.kept_unverified) if self.kept_unverified else None,
            "report": self.report,
        }


# --- finding the versions ------------------------------------------------------------------
def _is_saved_model(path: Path) -> bool:
    return (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()


def _numeric_versions(base: Path) -> list[Path]:
    """The version folders of a serving base path, oldest first (TF Serving ignores other names)."""
    try:
        children = [p for p in base.iterdir() if p.is_dir() and p.name.isdigit() and _is_saved_model(p)]
    except OSError:
        return []
    return sorted(children, key=lambda p: int(p.name))


def is_repository(path: Path) -> bool:
    """True if IN is a repository (not one SavedModel): a config file, or a folder of models."""
    if path.is_file():  # a models.config (any name, as TF Serving's --model_config_file); else not ours
        try:
            with open(path, "rb") as fh:
                return b"model_config_list" in fh.read(1 << 20)
        except OSError:
            return False
    if not path.is_dir() or _is_saved_model(path):
        return False
    return bool(_numeric_versions(path)) or any(
        child.is_dir() and (_is_saved_model(child) or _numeric_versions(child)) for child in _children(path))


def _children(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if not p.name.startswith("."))
    except OSError:
        return []


def discover(path: Path) -> list[Version]:
    """Every SavedModel of the repository at `path`, sorted by key. BadInput if there is none."""
    if path.is_file():
        found = _from_config(path)
    elif _numeric_versions(path):  # one model's base path
        found = [Version("", v.name, v) for v in _numeric_versions(path)]  # OUT/<version>, as IN
    else:
        found = []
        for child in _children(path):
            if not child.is_dir():
                continue
            if _is_saved_model(child):
                found.append(Version(child.name, None, child))
            else:
                found += [Version(child.name, v.name, v) for v in _numeric_versions(child)]
    if not found:
        raise BadInput(f"{path}: no SavedModel found (expected <model>/<version>/saved_model.pb, "
                       "<name>/saved_model.pb or a models.config)")
    keys = [v.key for v in found]
    duplicate = next((k for k in keys if keys.count(k) > 1), None)
    if duplicate:
        raise BadInput(f"{path}: two models would be written to {duplicate}")
    return sorted(found, key=lambda v: (v.model, int(v.version) if v.version and v.version.isdigit() else -1))


def _server_config_class() -> Any:
    """The message class of tensorflow.serving.ModelServerConfig, built from a minimal descriptor.

    Only the fields this tool reads are declared (field names and numbers as in
    tensorflow_serving/config/model_server_config.proto and
    sources/storage_path/file_system_storage_path_source.proto); the text parser skips the others
    (logging_config, version_labels, ...), so a real serving config parses as it is.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="tfdowngrade/model_server_config_min.proto",
                                               package="tensorflow.serving", syntax="proto3")

    def message(name: str, fields: list[tuple[str, int, int, int, str]], oneof: str | None = None,
                parent: Any = None) -> Any:
        msg = (parent.nested_type if parent is not None else proto.message_type).add(name=name)
        if oneof:
            msg.oneof_decl.add(name=oneof)
        for fname, number, ftype, label, type_name in fields:
            fd = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                fd.type_name = type_name
            if oneof:  # in both messages that have one, every field belongs to it
                fd.oneof_index = 0
        return msg

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    source = proto.message_type.add(name="FileSystemStoragePathSourceConfig")
    policy = message("ServableVersionPolicy", [
        ("latest", 100, F.TYPE_MESSAGE, opt, ".tensorflow.serving.FileSystemStoragePathSourceConfig.ServableVersionPolicy.Latest"),
        ("all", 101, F.TYPE_MESSAGE, opt, ".tensorflow.serving.FileSystemStoragePathSourceConfig.ServableVersionPolicy.All"),
        ("specific", 102, F.TYPE_MESSAGE, opt, ".tensorflow.serving.FileSystemStoragePathSourceConfig.ServableVersionPolicy.Specific"),
    ], oneof="policy_choice", parent=source)
    message("Latest", [("num_versions", 1, F.TYPE_UINT32, opt, "")], parent=policy)
    message("All", [], parent=policy)
    message("Specific", [("versions", 1, F.TYPE_INT64, rep, "")], parent=policy)
    message("ModelConfig", [
        ("name", 1, F.TYPE_STRING, opt, ""), ("base_path", 2, F.TYPE_STRING, opt, ""),
        ("model_platform", 4, F.TYPE_STRING, opt, ""),
        ("model_version_policy", 7, F.TYPE_MESSAGE, opt,
         ".tensorflow.serving.FileSystemStoragePathSourceConfig.ServableVersionPolicy"),
    ])
    message("ModelConfigList", [("config", 1, F.TYPE_MESSAGE, rep, ".tensorflow.serving.ModelConfig")])
    message("ModelServerConfig", [("model_config_list", 1, F.TYPE_MESSAGE, opt, ".tensorflow.serving.ModelConfigList")],
            oneof="config")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.ModelServerConfig"))


def _from_config(path: Path) -> list[Version]:
    from google.protobuf import text_format

    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"{path}: cannot read it: {error}") from None
    config = _server_config_class()()
    try:
        text_format.Parse(text, config, allow_unknown_field=True)
    except text_format.ParseError as error:
        raise BadInput(f"{path}: not a text-format ModelServerConfig: {error}") from None
    if not config.HasField("model_config_list"):
        raise BadInput(f"{path}: has no model_config_list (a custom_model_config cannot be read from a file)")
    found: list[Version] = []
    for entry in config.model_config_list.config:
        if not entry.name or not entry.base_path:
            raise BadInput(f"{path}: every config needs a name and a base_path")
        if entry.model_platform not in ("", "tensorflow"):
            raise BadInput(f"{path}: model {entry.name!r} has model_platform {entry.model_platform!r}, not tensorflow")
        base = Path(entry.base_path)
        base = base if base.is_absolute() else path.parent / base
        versions = _numeric_versions(base)
        policy = entry.model_version_policy
        choice = policy.WhichOneof("policy_choice")
        if choice == "all":
            chosen = versions
        elif choice == "specific":
            wanted = {int(v) for v in policy.specific.versions}
            chosen = [v for v in versions if int(v.name) in wanted]
            missing = sorted(wanted - {int(v.name) for v in versions})
            if missing:
                raise BadInput(f"{path}: model {entry.name!r} lists version(s) {missing} that {base} does not hold")
        else:  # latest (TF Serving's default: the latest one)
            count = policy.latest.num_versions if choice == "latest" and policy.latest.num_versions else 1
            chosen = versions[-count:]
        if not chosen:
            raise BadInput(f"{path}: model {entry.name!r}: no numeric version folder with a SavedModel in {base}")
        found += [Version(entry.name, v.name, v) for v in chosen]
    return found


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise BadInput(f"--shard {text!r}: expected I/N, e.g. 0/4 (0 <= I < N)") from None
    if count < 1 or not 0 <= index < count:
        raise BadInput(f"--shard {text!r}: expected 0 <= I < N")
    return index, count


def in_shard(version: Version, index: int, count: int) -> bool:
    digest = hashlib.sha256(version.key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count == index


# --- converting ------------------------------------------------------------------------------
def _child_arguments(args: argparse.Namespace) -> list[str]:
    """The options every version's `tfdowngrade convert` gets, from the repository command's."""
    argv = ["--to", args.to, "--quiet"]
    for flag, name in (("--no-verify", "no_verify"), ("--offline", "offline"), ("--python-loader", "python_loader")):
        if getattr(args, name, False):
            argv.append(flag)
    for rule in getattr(args, "allow_lossy", []):
        argv += ["--allow-lossy", rule]
    for flag, name in (("--rules-dir", "rules_dir"), ("--tags", "tags"), ("--inputs", "inputs"),
                       ("--expected", "expected"), ("--seed", "seed"), ("--rtol", "rtol"), ("--atol", "atol"),
                       ("--runtime-dir", "runtime_dir"), ("--timeout", "timeout"),
                       ("--source-runtime", "source_runtime")):
        value = getattr(args, name, None)
        if value is not None:
            argv += [flag, str(Path(value).resolve()) if isinstance(value, Path) else str(value)]
    return argv


def _convert_one(version: Version, out_root: Path, staging_root: Path, child_args: list[str],
                 force: bool) -> Outcome:
    destination = out_root / version.key
    if destination.exists() and not force:
        return Outcome(version, EXIT_BAD_INPUT, None, f"{destination} exists (use --force to replace it)", None)
    work = Path(tempfile.mkdtemp(prefix="v-", dir=staging_root))
    try:
        staged, report_path = work / "out", work / "report.json"
        cmd = [sys.executable, "-m", "rewriter.cli", "convert", str(version.source), str(staged),
               *child_args, "--report", str(report_path)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env)
        report: dict[str, Any] | None = None
        try:
            report = json.loads(report_path.read_text("utf-8"))
        except (OSError, ValueError):
            pass
        code = proc.returncode if proc.returncode in STATUS else EXIT_INTERNAL
        error = None
        if code != EXIT_OK:
            lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("tfdowngrade:")]
            error = (report or {}).get("error") or (lines[0].removeprefix("tfdowngrade: ") if lines else
                                                    f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
        if report is not None:  # it names the staging folder, which is gone: name where it went
            report["output"] = str(destination) if code == EXIT_OK else None
        outcome = Outcome(version, code, None, error, report)
        if code == EXIT_OK and staged.is_dir():
            destination.parent.mkdir(parents=True, exist_ok=True)
            if destination.exists():  # --force: the old version goes only once the new one is whole
                shutil.rmtree(destination)
            os.replace(staged, destination)
            outcome.output = destination
        else:
            # A parity failure leaves an output to look at: keep it beside OUT, never inside.
            for candidate in (staged, staged.with_name(staged.name + ".unverified")):
                if candidate.is_dir():
                    keep = out_root.with_name(out_root.name + ".unverified") / version.key
                    if keep.exists():
                        shutil.rmtree(keep)
                    keep.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(candidate, keep)
                    outcome.kept_unverified = keep
                    break
        return outcome
    except OSError as error:
        return Outcome(version, EXIT_INTERNAL, None, f"{type(error).__name__}: {error}", None)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def convert_repository(args: argparse.Namespace, progress: Callable[[str], None] | None = None,
                       quiet: bool = False, stream: TextIO = sys.stdout) -> tuple[int, dict[str, Any]]:
    """Convert every version (of the shard); print one summary table; return (worst exit code, report)."""
    from rewriter.progress import finish, tracker

    say = progress or (lambda _: None)
    versions = discover(args.input)
    total = len(versions)
    shard = getattr(args, "shard", None)
    if shard:
        index, count = parse_shard(shard)
        versions = [v for v in versions if in_shard(v, index, count)]
    jobs = max(1, int(getattr(args, "jobs", None) or 1))
    out_root: Path = args.output
    out_resolved = out_root.resolve()
    inputs = [Path(args.input).resolve()] if Path(args.input).is_dir() else []
    for source in [*inputs, *(v.source.resolve() for v in versions)]:
        if out_resolved == source or source in out_resolved.parents or out_resolved in source.parents:
            raise BadInput(f"OUT {out_root} and IN {source} must not contain one another")
    if out_root.exists() and not out_root.is_dir():
        raise BadInput(f"OUT {out_root} exists and is not a folder")
    say(f"{len(versions)} of {total} SavedModel(s) to convert"
        + (f" (shard {shard})" if shard else "") + f", {jobs} at a time")
    _prepare_shared_runtimes(args, say)
    out_root.mkdir(parents=True, exist_ok=True)
    staging_root = out_root / STAGING
    staging_root.mkdir(exist_ok=True)
    child_args = _child_arguments(args)
    outcomes: list[Outcome] = []
    try:
        with tracker(len(versions), "converting", quiet) as advance, \
                concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_convert_one, v, out_root, staging_root, child_args, args.force): v
                       for v in versions}
            for future in concurrent.futures.as_completed(futures):
                outcome = future.result()
                outcomes.append(outcome)
                advance(f"{outcome.version.key}: {STATUS.get(outcome.exit_code, outcome.exit_code)}")
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
    outcomes.sort(key=lambda o: versions.index(o.version))
    worst = max((o.exit_code for o in outcomes), default=EXIT_OK)
    report = {
        "format": REPORT_FORMAT, "tool": f"tfdowngrade {__version__}", "command": "convert-repository",
        "input": str(args.input), "output": str(out_root), "target": args.to,
        "shard": shard, "versions_in_repository": total, "exit_code": worst,
        "counts": {status: sum(1 for o in outcomes if STATUS.get(o.exit_code) == status)
                   for status in STATUS.values() if any(STATUS.get(o.exit_code) == status for o in outcomes)},
        "versions": [o.to_json() for o in outcomes],
    }
    finish()  # the live bar ends before the table is printed
    print_table(outcomes, stream)
    return worst, report


def _prepare_shared_runtimes(args: argparse.Namespace, say: Callable[[str], None]) -> None:
    """Fetch the target runtime (and the TF 2.3 Python env) once, before the jobs need them.

    The cache is safe for concurrent use anyway (fetch.py locks it); doing it here first shows
    one download with its progress instead of N silent waits. A failure is left to each version
    to report (exit 4 in its entry).
    """
    if getattr(args, "no_verify", False):
        return
    from rewriter.errors import TfDowngradeError
    from rewriter.targets.releases import parse_release
    from rewriter.runtimes import obtain_runtime

    try:
        obtain_runtime(parse_release(args.to), cache_dir=getattr(args, "runtime_dir", None),
                       offline=getattr(args, "offline", False), progress=say)
    except TfDowngradeError as error:
        say(f"the target runtime cannot be had now: {error}")
        return
    if getattr(args, "python_loader", False):
        from rewriter.runtimes.python23 import Py23EnvError, ensure_py23_env

        try:
            say("preparing TensorFlow 2.3.4's Python environment")
            ensure_py23_env()
        except Py23EnvError as error:
            say(str(error))


def print_table(outcomes: list[Outcome], stream: TextIO = sys.stdout) -> None:
    rows = [("model", "version", "result", "rewrites", "detail")]
    for o in outcomes:
        rewrites = len((o.report or {}).get("rules_applied") or [])
        detail = str(o.output) if o.exit_code == EXIT_OK else (o.error or "")
        if o.kept_unverified:
            detail += f" (output kept in {o.kept_unverified})"
        rows.append((o.version.model or "-", o.version.version or "-", STATUS.get(o.exit_code, str(o.exit_code)),
                     str(rewrites), detail))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4], file=stream)
    ok = sum(1 for o in outcomes if o.exit_code == EXIT_OK)
    print(f"{ok} of {len(outcomes)} version(s) converted", file=stream)


def write_report(report: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(report, indent=2) + "\n", "utf-8")
    os.replace(tmp, path)
