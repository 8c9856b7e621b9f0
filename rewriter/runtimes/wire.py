"""How arrays travel between the parent and the worker: .npz files plus a JSON description.

No pickles: string tensors (numpy object arrays of bytes) are sent as one uint8 buffer of all
elements concatenated plus an int64 array of their lengths, and loaded with allow_pickle=False.
bfloat16 travels as its uint16 bit pattern, tagged "bfloat16" in the description.
This module needs only numpy and the stdlib, because the worker imports it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

STRING = "string"
BFLOAT16 = "bfloat16"
# The worker's exit code when it cannot read or write its job folder (worker.py, client.py).
SCRATCH_FAILED = 74  # EX_IOERR

# dtypes that go through as plain numpy arrays (the name is numpy's dtype name)
PLAIN_DTYPES = frozenset(
    [
        "float16", "float32", "float64",
        "int8", "int16", "int32", "int64",
        "uint8", "uint16", "uint32", "uint64",
        "bool", "complex64", "complex128",
    ]
)


def wire_dtype(array: np.ndarray) -> str:
    """The wire name of an array's dtype; ValueError for dtypes TF cannot take."""
    kind = array.dtype.kind
    if kind in ("O", "S", "U"):
        return STRING
    name = array.dtype.name
    if name == BFLOAT16:  # ml_dtypes.bfloat16
        return BFLOAT16
    if name in PLAIN_DTYPES:
        return name
    raise ValueError(f"arrays of dtype {array.dtype} cannot be fed to TensorFlow")


def _as_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, (bytearray, memoryview, np.bytes_)):
        return bytes(item)
    raise ValueError(f"string tensor element {item!r} is neither bytes nor str")


def put(store: dict[str, np.ndarray], key: str, array: np.ndarray) -> dict[str, Any]:
    """Add an array to an npz store under key; return its JSON description."""
    array = np.asarray(array)
    dtype = wire_dtype(array)
    if dtype == STRING:
        items = [_as_bytes(x) for x in array.reshape(-1).tolist()]
        store[key + ".data"] = np.frombuffer(b"".join(items), dtype=np.uint8)
        store[key + ".lens"] = np.array([len(x) for x in items], dtype=np.int64)
    elif dtype == BFLOAT16:
        store[key] = np.ascontiguousarray(array).view(np.uint16)
    else:
        store[key] = np.ascontiguousarray(array)
    return {"key": key, "dtype": dtype, "shape": list(array.shape)}


def get(npz: Any, desc: dict[str, Any], bfloat16: Any = None) -> np.ndarray:
    """Rebuild an array from an open npz and its description.

    Strings come back as an object array of bytes. bfloat16 comes back as `bfloat16` (a numpy
    dtype such as ml_dtypes.bfloat16) if given, else as its raw uint16 bit pattern.
    """
    key, dtype, shape = desc["key"], desc["dtype"], tuple(desc["shape"])
    if dtype == STRING:
        data = npz[key + ".data"].tobytes()
        out = np.empty(len(npz[key + ".lens"]), dtype=object)
        pos = 0
        for i, n in enumerate(npz[key + ".lens"].tolist()):
            out[i] = data[pos : pos + n]
            pos += n
        return out.reshape(shape)
    array = np.asarray(npz[key]).reshape(shape)
    if dtype == BFLOAT16 and bfloat16 is not None:
        return array.view(bfloat16)
    return array


def save(path: Path, store: dict[str, np.ndarray]) -> None:
    np.savez(path, **store)  # type: ignore[arg-type]


def load(path: Path) -> Any:
    return np.load(path, allow_pickle=False)
