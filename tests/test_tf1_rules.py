"""The TF 1.15 rules (rules/tf1-*.yaml) on inputs their fixtures' data.npz does not hold.

The catalog (test_rules_catalog.py) proves each rule bit-identical on its fixture in the real TF
1.15.5. Here the narrowing and failure claims are judged: DenseBincount and SparseSegment* on
negative, out-of-range and unsorted values, ParseExample on missing, wrong-typed and malformed
examples and an empty batch, must give what TF 2.21 gives on the source, the same values or a
failure, never an answer where the source fails. Each fixture is converted once
(no parity) and all its calls run in one TF 1.15.5 worker.

Slow tier: the Keras-2 preprocessing models that made DenseBincount matter (StringLookup,
Hashing, a multi-input model with CategoryEncoding) convert to 1.15 and match in TF 1.15.5.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, load_tool, run_cli
from rewriter.protos import saved_model_pb2
from rewriter.runtimes.client import SignatureCall, TargetRuntime

RULES = ROOT / "golden" / "rules"


@pytest.fixture(scope="session")
def runtime_1_15() -> Any:
    """The real TF 1.15.5 runtime, fetched once into the user cache."""
    from rewriter.targets.releases import Release
    from rewriter.runtimes import obtain_runtime

    return obtain_runtime(Release(1, 15))


def _converted_to_1_15(fixture: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp(fixture) / "out"
    result = run_cli(RULES / fixture / "saved_model", out, "--to", "1.15", "--no-verify", "-q")
    assert result.code == 0, result.stderr
    return out


@functools.cache
def _loaded(fixture: str) -> Any:
    return tf.saved_model.load(str(RULES / fixture / "saved_model"))


def _source(fixture: str, feeds: dict[str, np.ndarray], signature: str = "serving_default") -> dict[str, np.ndarray] | None:
    """TF 2.21 on the source; None where it fails."""
    function = _loaded(fixture).signatures[signature]
    try:
        return {k: v.numpy() for k, v in function(**{k: tf.constant(v) for k, v in feeds.items()}).items()}
    except (tf.errors.InvalidArgumentError, tf.errors.ResourceExhaustedError, ValueError):
        return None  # ResourceExhausted: an output of 2^40 elements (the narrowing's inputs)


def _judge(fixture: str, out: Path, runtime: Any, cases: dict[str, dict[str, np.ndarray]],
           says: dict[str, str | tuple[str, ...]] | None = None, signature_key: str = "serving_default") -> None:
    """Every case: the same outputs, bit for bit, or a failure in both (TF 1.15.5's error then
    contains says[case], or one of them where several nodes fail: the executor reports whichever
    fails first)."""
    proto = saved_model_pb2.SavedModel.FromString((out / "saved_model.pb").read_bytes())
    signature = proto.meta_graphs[0].signature_def[signature_key]
    fetches = {key: info.name for key, info in signature.outputs.items()}
    calls = [SignatureCall(case, {signature.inputs[k].name: v for k, v in feeds.items()}, list(fetches.values()))
             for case, feeds in cases.items()]
    result = TargetRuntime(runtime, timeout=600).run_savedmodel(out, ["serve"], calls)
    assert result.load_error is None, result.load_error
    for case, feeds in cases.items():
        want = _source(fixture, feeds, signature_key)
        if want is None:
            assert case in result.errors, f"{case}: the source fails, TF 1.15.5 answered"
            expected = (says or {}).get(case, "")
            alternatives = (expected,) if isinstance(expected, str) else expected
            assert any(text in result.errors[case] for text in alternatives), (case, result.errors[case])
            continue
        assert case not in result.errors, f"{case}: the source answers, TF 1.15.5 failed: {result.errors[case]}"
        for key, name in fetches.items():
            got, wanted = np.asarray(result.outputs[case][name]), np.asarray(want[key])
            assert got.shape == wanted.shape, (case, key)
            if wanted.dtype.kind not in "SOU":  # strings: by value (the runtimes' containers differ)
                assert got.dtype == wanted.dtype, (case, key)
            np.testing.assert_array_equal(got, wanted, err_msg=f"{case}/{key}")


def test_dense_bincount_out_of_range_and_negative_values(tmp_path_factory: pytest.TempPathFactory,
                                                        runtime_1_15: Any) -> None:
    out = _converted_to_1_15("tf1_bincount", tmp_path_factory)
    ids = np.array([[0, 1, 5, 5], [2, 2, 3, 4]], np.int64)
    flat = np.array([0, 3, 3, 1], np.int32)

    def case(ids: np.ndarray = ids, flat: np.ndarray = flat, size: int = 6) -> dict[str, np.ndarray]:
        return {"ids": ids, "flat": flat, "size": np.array(size, np.int32)}

    _judge("tf1_bincount", out, runtime_1_15, {
        "plain": case(),
        # int64 values past int32: dropped by the sized bincounts; flat_all's size (max + 1) is then
        # 2^40 + 1, which the source cannot allocate and the rewrite refuses (the narrowing)
        "huge_values": case(ids=np.array([[2**40, 1, 2**40, 0]], np.int64)),
        "negative_in_rows": case(ids=np.array([[0, -1, 2, 3]], np.int64)),           # both fail
        "huge_negative": case(ids=np.array([[0, -2**40, 2, 3]], np.int64)),          # would wrap to 0
        "negative_in_flat": case(flat=np.array([1, -3], np.int32)),
        "negative_in_second_row": case(ids=np.array([[0, 1, 2, 3], [1, 1, -1, 0]], np.int64)),
        "size_zero": case(size=0),
        "size_negative": case(size=-4),
        "wide_rows": case(ids=np.arange(40, dtype=np.int64).reshape(2, 20) % 7, size=7),
    }, says={
        # two nodes fail here, in the source too: the sized bincounts' clamped size wraps, and
        # CategoryEncoding's own int32 cast wraps 2^40 to a negative value before its bincount
        "huge_values": ("size (-2147483648) must be non-negative", "Input arr must be non-negative"),
        "negative_in_rows": "Input arr must be non-negative", "huge_negative": "Input arr must be non-negative",
        "negative_in_flat": "Input arr must be non-negative",
        "negative_in_second_row": "Input arr must be non-negative", "size_negative": "must be non-negative"})


def test_sparse_segment_ids_out_of_range_negative_and_unsorted(tmp_path_factory: pytest.TempPathFactory,
                                                              runtime_1_15: Any) -> None:
    out = _converted_to_1_15("tf1_segments", tmp_path_factory)
    data = np.arange(36, dtype=np.float32).reshape(12, 3)
    # segments of 1 or 4 rows of whole numbers: means and square-root means are exact in both
    # releases (over 2 or 3 rows TF 1.15's kernels round differently, with int32 ids too)
    sparse_indices = np.array([[0, 0], [2, 0], [3, 0]], np.int64)

    def case(ids: list[int], indices: list[int] | None = None, sparse_ids: list[int] | None = None) -> dict[str, np.ndarray]:
        return {"data": data, "whole": data, "ids": np.array(ids, np.int64),
                "indices": np.array(indices if indices is not None else list(range(len(ids))), np.int32),
                "sparse_indices": sparse_indices,
                "sparse_ids": np.array(sparse_ids if sparse_ids is not None else [1, 4, 11], np.int64)}

    _judge("tf1_segments", out, runtime_1_15, {
        "plain": case([0, 0, 0, 0, 1, 4]),
        "negative_id": case([-1, 0, 1, 1]),
        "beyond_num_segments": case([0, 1, 7, 7]),        # num_segments is 7 for the *_n outputs
        "beyond_int32": case([0, 1, 2**32 + 1, 2**32 + 1]),  # would wrap to 1 as a plain Cast
        "unsorted": case([0, 3, 1, 4]),
        "embedding_id_out_of_range": case([0, 1], sparse_ids=[1, 12, 3]),
        "embedding_id_beyond_int32": case([0, 1], sparse_ids=[1, 2**32 + 2, 3]),  # would wrap to 2
        "embedding_id_negative": case([0, 1], sparse_ids=[1, -5, 3]),
    })


@pytest.mark.slow
@pytest.mark.parametrize("model", ["keras2_string_lookup", "keras2_hashing", "keras2_multi_input"])
def test_keras2_preprocessing_models_convert_to_1_15_and_match(model: str, tmp_path: Path) -> None:
    from rewriter import api

    report = api.convert(ROOT / "golden" / "keras2" / model / "saved_model", tmp_path / "out", to="1.15")
    assert report.parity is not None and report.parity.ok, report.to_json().get("parity")
    assert report.parity.target_version.startswith("1.15.")
    assert report.plan is not None and any(a.rule.startswith("dense-bincount-") for a in report.plan.applications)


def test_parse_example_missing_wrong_typed_and_empty_batches(tmp_path_factory: pytest.TempPathFactory,
                                                           runtime_1_15: Any) -> None:
    tool = load_tool("make_rule_fixtures")
    out = _converted_to_1_15("tf1_parse_example", tmp_path_factory)
    _judge("tf1_parse_example", out, runtime_1_15, {
        "plain": {"examples": tool._examples([{"age": [3], "tags": [b"t"], "history": [2.0, 4.0]}, {"age": [1]}])},
        "missing_required_age": {"examples": tool._examples([{"age": [3]}, {"city": [b"x"]}])},
        "wrong_type": {"examples": tool._examples([{"age": [3.5]}])},
        "price_too_short": {"examples": tool._examples([{"age": [3], "price": [1.0]}])},
        "not_a_proto": {"examples": np.array([b"\x07garbage"])},
        "no_examples": {"examples": np.zeros(0, dtype="S1")},
    })
    single = {"plain": {"example": tool._examples([{"age": [3], "clicks": [5, 6]}])[0]},
              "missing_required_age": {"example": tool._examples([{"city": [b"x"]}])[0]},
              "wrong_type": {"example": tool._examples([{"age": [3.5]}])[0]},
              "not_a_proto": {"example": np.array(b"\x07garbage")}}
    _judge("tf1_parse_example", out, runtime_1_15, single, signature_key="single")
