"""fingerprint.pb is computed without TensorFlow (rewriter/savedmodel/fingerprint.py): every hash
must equal what the installed TensorFlow's own CreateFingerprintDef computes for the same folder."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES, fixture_dir
from rewriter import pipeline
from rewriter.protos import fingerprint_pb2, saved_model_pb2
from rewriter.savedmodel import cpp_bytes
from rewriter.savedmodel.fingerprint import FingerprintError, create_fingerprint
from rewriter.targets.releases import Release

ROOT = Path(__file__).resolve().parent.parent
HASHES = ["saved_model_checksum", "graph_def_program_hash", "signature_def_hash", "saved_object_graph_hash",
          "checkpoint_hash"]


def _tensorflows(directory: Path) -> fingerprint_pb2.FingerprintDef:
    from tensorflow.python.saved_model import pywrap_saved_model

    return fingerprint_pb2.FingerprintDef.FromString(
        pywrap_saved_model.fingerprinting.CreateFingerprintDef(str(directory)))


def _same(ours: fingerprint_pb2.FingerprintDef, theirs: fingerprint_pb2.FingerprintDef) -> None:
    assert [getattr(ours, f) for f in HASHES] == [getattr(theirs, f) for f in HASHES]
    assert ours.version.producer == theirs.version.producer


# Models with maps whose keys are prefixes of each other (NodeDef attrs T / Tidx, signature inputs
# ids / ids64), string Consts, (Stateful)PartitionedCalls, several signatures and functions.
MODELS = [fixture_dir(name) for name in FIXTURES] + [
    ROOT / "golden" / "examples" / "keras_cnn",
    ROOT / "golden" / "rules" / "segments_v2" / "saved_model",
    ROOT / "golden" / "rules" / "v1_defaults" / "saved_model",
    ROOT / "golden" / "rules" / "anonymous_tables" / "saved_model",
    ROOT / "golden" / "keras2" / "keras2_string_lookup" / "saved_model",
]


@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.parent.name if p.name == "saved_model" else p.name)
def test_the_hashes_are_tensorflows(model: Path) -> None:
    _same(create_fingerprint(model), _tensorflows(model))


def test_a_converted_output_gets_tensorflows_fingerprint(tmp_path: Path) -> None:
    """convert --to 2.15 writes fingerprint.pb over the new bytes: TF computes the same hashes."""
    out = tmp_path / "out"
    planned = pipeline.plan(fixture_dir("keras3_cnn"), pipeline.Options(target=Release(2, 15)))
    pipeline.write(planned, out, force=False)
    written = fingerprint_pb2.FingerprintDef.FromString((out / "fingerprint.pb").read_bytes())
    _same(written, _tensorflows(out))
    assert not written.uuid  # TF 2.15's FingerprintDef has no uuid field: left out


def test_a_function_name_without_a_numeric_suffix_fails_as_in_tensorflow(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(fixture_dir("tf_module"), model)
    proto = saved_model_pb2.SavedModel.FromString((model / "saved_model.pb").read_bytes())
    functions = proto.meta_graphs[0].object_graph_def.concrete_functions
    name = next(iter(functions))
    functions["no_number"].CopyFrom(functions[name])
    (model / "saved_model.pb").write_bytes(proto.SerializeToString())
    with pytest.raises(FingerprintError, match="does not end in an integer"):
        create_fingerprint(model)
    with pytest.raises(Exception, match="does not end in an integer"):
        _tensorflows(model)


def test_map_entries_in_cpp_order() -> None:
    """Python's protobuf writes 'ids64' before 'ids'; C++ (and so TensorFlow's hash) 'ids' first."""
    from rewriter.protos import attr_value_pb2

    names = attr_value_pb2.NameAttrList(name="f")
    for key in ["Tidx", "T", "b", "a", "ab"]:
        names.attr[key].i = len(key)
    data = cpp_bytes.serialize(names)
    keys = [b"\n\x01T", b"\n\x04Tidx", b"\n\x01a", b"\n\x02ab", b"\n\x01b"]  # each entry starts with its key
    positions = [data.index(key) for key in keys]
    assert positions == sorted(positions)
    assert attr_value_pb2.NameAttrList.FromString(data) == names
