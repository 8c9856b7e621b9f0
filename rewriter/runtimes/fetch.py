"""Obtain an old TF runtime: its wheel from PyPI, checked, unpacked and cached.

Cache layout: <root>/<minor>/ holds the wheel members listed in releases.json `capi_libs`, in
the wheel's relative layout, and runtime.json, written LAST: a directory without a valid
runtime.json is never trusted. runtime.json holds a manifest of the unpacked (and patched)
files, size and sha256 each, taken at unpack time. Before a cached runtime is used, every size
is checked, and every sha256 too unless the file's (size, mtime, inode, ctime) are still those
recorded when it was last hashed (hashing the 340 MB of TF 2.3.4 takes 1-3 s; the stat check
takes microseconds). A cache that fails this check (a truncated or altered library) is fetched again, or is
RuntimeUnavailable (exit 4) with --offline. A cache written before manifests existed is fetched
again once. The directory is built under a temporary name in <root> and
renamed into place, so two processes racing for it both end up with a complete runtime.
Root: the cache_dir argument, else $TFDOWNGRADE_RUNTIME_DIR, else ~/.cache/tfdowngrade/runtimes.

$TFDOWNGRADE_WHEELHOUSE may name a directory holding already-downloaded wheels (for machines
without network): a wheel found there under its releases.json filename is used instead of
pip, after the same sha256 check.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rewriter.errors import RuntimeUnavailable
from rewriter.targets.releases import Release, release_info
from rewriter.runtimes import unpack

MARKER = "runtime.json"
MARKER_FORMAT = 1
ENV_CACHE = "TFDOWNGRADE_RUNTIME_DIR"
ENV_WHEELHOUSE = "TFDOWNGRADE_WHEELHOUSE"
PIP_TIMEOUT = 1800.0


@dataclass(frozen=True)
class RuntimeHandle:
    """A ready runtime in the cache: lib_dir holds the unpacked libraries and runtime.json."""

    release: Release
    version: str
    wheel_sha256: str
    lib_dir: Path

    def marker(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.lib_dir / MARKER).read_text("utf-8"))
        return data

    @property
    def capi_lib_path(self) -> Path:
        return self.lib_dir / self.marker()["capi_lib"]


def cache_root(cache_dir: Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env)
    return Path.home() / ".cache" / "tfdowngrade" / "runtimes"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip_download(project: str, version: str, python_version: str, platform: str,
                 dest: Path, on_bytes: Callable[[int], None] | None = None) -> Path:
    """`pip download` one wheel into dest; returns its path. RuntimeUnavailable on failure.

    on_bytes(n) is called a few times a second with the bytes pip has written so far: pip
    downloads into its temporary folder, which TMPDIR puts under dest's parent, then copies.
    """
    cmd = [
        sys.executable, "-m", "pip", "download", f"{project}=={version}",
        "--no-deps", "--only-binary=:all:", "--implementation", "cp",
        "--python-version", python_version, "--platform", platform,
        "--disable-pip-version-check", "--no-input", "-d", str(dest),
    ]
    pip_tmp = dest.parent / "pip-tmp"
    pip_tmp.mkdir(exist_ok=True)
    try:
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err_out:
            child = subprocess.Popen(cmd, stdout=out, stderr=err_out, text=True, stdin=subprocess.DEVNULL,
                                     env={**os.environ, "TMPDIR": str(pip_tmp)})
            deadline = time.monotonic() + PIP_TIMEOUT
            while child.poll() is None:
                if time.monotonic() > deadline:
                    child.kill()
                    child.wait()
                    raise subprocess.TimeoutExpired(cmd, PIP_TIMEOUT)
                if on_bytes is not None:
                    # the download grows in pip's temporary folder, then is copied to dest
                    on_bytes(max(_bytes_under(pip_tmp), _bytes_under(dest)))
                time.sleep(0.2)
            out.seek(0)
            err_out.seek(0)
            proc = subprocess.CompletedProcess(cmd, child.returncode, out.read(), err_out.read())
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RuntimeUnavailable(f"cannot download {project}=={version}: {err}") from err
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else f"pip exited {proc.returncode}"
        raise RuntimeUnavailable(f"cannot download {project}=={version} with pip: {last}")
    return wheels[0]


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def manifest(lib_dir: Path, members: list[str]) -> dict[str, dict[str, Any]]:
    """Size, sha256 and stat key of each unpacked file, for runtime.json."""
    return {name: {"size": (lib_dir / name).stat().st_size, "sha256": sha256_of(lib_dir / name),
                   "stat": _stat_key(lib_dir / name)} for name in members}


def _bytes_under(folder: Path) -> int:
    total = 0
    for base, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(base, name))
    return total


def write_marker(lib_dir: Path, data: dict[str, Any]) -> None:
    # A temporary name of our own: two processes re-stamping a shared cache's manifest at once
    # (cache_problem) must not write into the same temporary file.
    fd, name = tempfile.mkstemp(prefix=MARKER + ".", suffix=".tmp", dir=lib_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2, sort_keys=True))
        os.chmod(name, 0o644)
        os.replace(name, lib_dir / MARKER)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def build_runtime_dir(wheel: Path, release: Release, version: str, sha256: str,
                      capi_libs: list[str], capi_lib: str, string_layout: str | None,
                      dest: Path) -> None:
    """Unpack and patch the C-API libraries of a checked wheel into dest, marker last."""
    unpack.extract(wheel, capi_libs, dest)
    patched = unpack.patch_for_this_python(dest, capi_libs)
    write_marker(dest, {
        "format": MARKER_FORMAT, "release": release.key, "version": version,
        "wheel_sha256": sha256, "wheel": wheel.name, "capi_libs": capi_libs,
        "capi_lib": capi_lib, "string_layout": string_layout, "patched": patched,
        "files": manifest(dest, capi_libs),
    })


ABSENT = "absent"


def cache_problem(final: Path, info: dict[str, Any]) -> str | None:
    """None if the cached runtime in `final` is whole and is the one releases.json names;
    ABSENT if there is none; else what is wrong with it, in words."""
    try:
        marker = json.loads((final / MARKER).read_text("utf-8"))
    except (OSError, ValueError):
        return ABSENT
    if not (isinstance(marker, dict) and marker.get("format") == MARKER_FORMAT
            and marker.get("wheel_sha256") == info["wheel"]["sha256"]
            and marker.get("version") == info["version"]):
        return "it is another build, or its runtime.json is not ours"
    files = marker.get("files")
    if not isinstance(files, dict) or set(files) != set(info["capi_libs"]):
        return "it has no manifest of its files (written by an older tfdowngrade)"
    rehashed = False
    for name, expected in sorted(files.items()):
        path = final / name
        try:
            key = _stat_key(path)
        except OSError as err:
            return f"{name}: {err.strerror or err}"
        if key[0] != expected.get("size"):
            return f"{name} has {key[0]} bytes, {expected.get('size')} when it was unpacked"
        if key == expected.get("stat"):
            continue  # hashed before, untouched since: the cheap path of every run
        if sha256_of(path) != expected.get("sha256"):
            return f"{name} does not have the sha256 it had when it was unpacked"
        expected["stat"] = key
        rehashed = True
    if rehashed:  # e.g. a copied cache: hash once, then take the cheap path again
        try:
            write_marker(final, marker)
        except OSError:
            pass  # a read-only cache is verified by hashing each time
    return None


def _cached(final: Path, info: dict[str, Any]) -> bool:
    return cache_problem(final, info) is None


def _get_wheel(info: dict[str, Any], tmp: Path, say: Callable[[str], None]) -> Path:
    wheel_info = info["wheel"]
    house = os.environ.get(ENV_WHEELHOUSE)
    if house and (Path(house) / wheel_info["filename"]).is_file():
        say(f"using {wheel_info['filename']} from {house}")
        return Path(house) / wheel_info["filename"]
    say(f"downloading {wheel_info['project']}=={info['version']} "
        f"({wheel_info['size'] / 1e6:.0f} MB) with pip")
    dl = tmp / "download"
    dl.mkdir()
    from rewriter.progress import transfer

    with transfer(f"{wheel_info['project']}=={info['version']}", wheel_info["size"]) as update:
        return pip_download(wheel_info["project"], info["version"], wheel_info["python_version"],
                            wheel_info["platform"], dl, on_bytes=update)


def _lock_release(root: Path, release: Release, say: Callable[[str], None]) -> int:
    """An exclusive flock on <root>/.lock-<release>, waited for if another process holds it."""
    fd = os.open(root / f".lock-{release.key}", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say(f"waiting for another process preparing the TensorFlow {release} runtime in {root}")
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def obtain_runtime(release: Release, cache_dir: Path | None = None, offline: bool = False,
                   progress: Callable[[str], None] | None = None) -> RuntimeHandle:
    """The cached runtime of a release, downloading and unpacking it first if needed.

    Raises RuntimeUnavailable (exit 4) if it is not cached and cannot be fetched: offline,
    pip failed, or the wheel's sha256 is not the one in releases.json.
    """
    info = release_info(release)
    say = progress or (lambda _msg: None)
    root = cache_root(cache_dir)
    final = root / release.key
    sha = info["wheel"]["sha256"]
    name = f"TensorFlow {info['version']} runtime"
    problem = cache_problem(final, info)
    if problem is None:
        return RuntimeHandle(release, info["version"], sha, final)
    if offline and problem == ABSENT:
        raise RuntimeUnavailable(
            f"the {name} is not in the cache {root} and offline mode forbids downloading it "
            f"(run once with network, or set {ENV_CACHE} to a prepared cache)")
    if offline:
        raise RuntimeUnavailable(
            f"the cached {name} in {final} cannot be trusted ({problem}) and offline mode forbids fetching it "
            f"again (run once with network, or delete {final} and set {ENV_CACHE} to a prepared cache)")
    if problem != ABSENT:
        say(f"the cached {name} in {final} cannot be trusted ({problem}): fetching it again")
    lock_fd = -1
    try:
        root.mkdir(parents=True, exist_ok=True)
        # One builder per release at a time (parallel jobs, two CI runs on one cache): the others
        # wait here, then find the runtime the first one finished. The rename below keeps the
        # cache whole even without the lock; the lock saves N downloads of the same wheel.
        lock_fd = _lock_release(root, release, say)
        if _cached(final, info):
            os.close(lock_fd)
            return RuntimeHandle(release, info["version"], sha, final)
        tmp = Path(tempfile.mkdtemp(prefix=f".build-{release.key}-", dir=root))
    except OSError as err:
        if lock_fd >= 0:
            os.close(lock_fd)
        raise RuntimeUnavailable(f"cannot create the runtime cache {root}: {err}") from err
    try:
        wheel = _get_wheel(info, tmp, say)
        actual = sha256_of(wheel)
        if actual != sha:
            raise RuntimeUnavailable(
                f"{wheel.name} has sha256 {actual}, but releases.json expects {sha}: "
                "refusing to use it")
        say(f"unpacking the C API of {wheel.name}")
        staging = tmp / "runtime"
        build_runtime_dir(wheel, release, info["version"], sha, list(info["capi_libs"]),
                          info["capi_lib"], info.get("string_layout"), staging)
        if final.exists() and not _cached(final, info):
            # a stale or half-written directory: move it aside before taking its place
            os.replace(final, tmp / "stale")
        try:
            os.replace(staging, final)
        except OSError:
            if not _cached(final, info):  # somebody else won the race only if theirs is whole
                raise
        say(f"{name} ready in {final}")
    except RuntimeUnavailable:
        raise
    except (OSError, KeyError, ValueError) as err:
        raise RuntimeUnavailable(f"cannot prepare the {name} in {root}: {err}") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(lock_fd)  # releases the lock
    if not _cached(final, info):
        raise RuntimeUnavailable(f"the {name} in {final} is incomplete after unpacking")
    return RuntimeHandle(release, info["version"], sha, final)
