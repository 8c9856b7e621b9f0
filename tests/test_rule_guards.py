"""Rewrites on inputs the golden data.npz does not hold: out-of-range and invalid values must give
what the source gives, the same values or a failure, never an answer where the source fails.
Judged by the real TF 2.3.4, next to the installed TF on the source.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from rewriter.protos import saved_model_pb2

from conftest import ROOT, converted_without_parity
from rewriter.runtimes.client import SignatureCall, TargetRuntime

TOP_K = ROOT / "golden" / "rules" / "top_k_int64" / "saved_model"
X = np.array([[0.5, 3.0, -1.0, 2.0, 7.0], [1.0, 1.0, 0.0, -4.0, 2.5]], np.float32)


@pytest.fixture(scope="module")
def top_k_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted_without_parity(TOP_K, tmp_path_factory, "top_k")


def _run_in_tf23(runtime: Any, out: Path, k: int) -> tuple[dict[str, np.ndarray] | None, str | None]:
    proto = saved_model_pb2.SavedModel.FromString((out / "saved_model.pb").read_bytes())
    signature = proto.meta_graphs[0].signature_def["serving_default"]
    fetches = {key: info.name for key, info in signature.outputs.items() if key.endswith("fed_k")}
    call = SignatureCall("call", {signature.inputs["x"].name: X, signature.inputs["k"].name: np.array(k, np.int64)},
                         list(fetches.values()))
    result = TargetRuntime(runtime, timeout=600).run_savedmodel(out, ["serve"], [call])
    assert result.load_error is None, result.load_error
    if "call" in result.errors:
        return None, result.errors["call"]
    return {key: result.outputs["call"][name] for key, name in fetches.items()}, None


# TopKV2 narrows an int64 k to int itself: 2**32 + 3 selects 3 in TF 2.21 too, and the rewrite's
# Cast must narrow the same way; 6 is past the row, 2**31 wraps negative.
@pytest.mark.parametrize("k", [0, 5, -1, 6, 2**31, 2**32 + 3, -2**32 + 2])
def test_top_k_int64_k_gives_what_the_source_gives(k: int, top_k_out: Path, runtime_2_3: Any) -> None:
    source = tf.saved_model.load(str(TOP_K)).signatures["serving_default"]
    try:
        want: dict[str, np.ndarray] | None = {key: v.numpy() for key, v in
                                               source(x=tf.constant(X), k=tf.constant(k, tf.int64)).items()
                                               if key.endswith("fed_k")}
    except (tf.errors.InvalidArgumentError, ValueError):
        want = None
    got, error = _run_in_tf23(runtime_2_3, top_k_out, k)
    if want is None:
        assert got is None, f"k={k}: the source rejects it, TF 2.3 returned {got}"
    else:
        assert got is not None, f"k={k}: the source answers, TF 2.3 failed: {error}"
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
