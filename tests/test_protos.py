"""The shipped protobuf modules (rewriter/protos) and the TensorFlow-free conversion path."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT, fixture_dir, load_tool

# Runs `tfdowngrade ARGS` in this interpreter and prints, last, whether anything imported tensorflow.
_PROBE = """
import sys
from rewriter.cli import main
try:
    code = main(sys.argv[1:])
finally:
    print("tensorflow modules:", sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow"))
sys.exit(code)
"""


def _tensorflow_modules_after(*args: object) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    last = proc.stdout.strip().splitlines()[-1]
    return proc.returncode, last


def test_check_inspect_rules_and_convert_never_import_tensorflow(tmp_path) -> None:
    example = ROOT / "golden" / "examples" / "keras_cnn"
    for args in (["check", example, "--to", "2.3"], ["inspect", example, "--to", "2.3"], ["rules", "list"],
                 [fixture_dir("tf_module"), tmp_path / "out", "--to", "2.3", "--no-verify", "-q"],
                 # 2.12 and newer read fingerprint.pb: it is computed without TensorFlow too.
                 [fixture_dir("tf_module"), tmp_path / "out15", "--to", "2.15", "--no-verify", "-q"]):
        code, modules = _tensorflow_modules_after(*args)
        assert code == 0, (args, modules)
        assert modules == "tensorflow modules: []", args


def test_vendored_descriptors_are_the_installed_tensorflows() -> None:
    """What tools/gen_protos.py would write from the installed TF is what is shipped (when it is the
    release the modules were generated from), and both parse and write the same bytes."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2 as tf_saved_model_pb2

    from rewriter.protos import saved_model_pb2

    header = (ROOT / "rewriter" / "protos" / "saved_model_pb2.py").read_text().splitlines()[0]
    if f"TensorFlow {tf.__version__}'s" in header:
        gen = load_tool("gen_protos")
        for file in gen.closure(gen.ROOTS):
            if file.name.startswith("google/protobuf/"):
                continue
            shipped = sys.modules.get(f"rewriter.protos.{gen.module_name(file.name)}")
            if shipped is None:
                shipped = __import__(f"rewriter.protos.{gen.module_name(file.name)}", fromlist=["DESCRIPTOR"])
            assert shipped.DESCRIPTOR.serialized_pb == file.serialized_pb, file.name
    data = (fixture_dir("keras3_cnn") / "saved_model.pb").read_bytes()
    ours, theirs = saved_model_pb2.SavedModel.FromString(data), tf_saved_model_pb2.SavedModel.FromString(data)
    assert type(ours) is not type(theirs)  # two pools, two classes: they coexist in one process
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)


def test_any_keeps_tensorflows_type_urls() -> None:
    from google.protobuf import any_pb2

    from rewriter.protos import saved_object_graph_pb2

    packed = any_pb2.Any()
    packed.Pack(saved_object_graph_pb2.SavedUserObject(identifier="x"))
    assert packed.type_url == "type.googleapis.com/tensorflow.SavedUserObject"
    back = saved_object_graph_pb2.SavedUserObject()
    assert packed.Unpack(back) and back.identifier == "x"


def test_packed_is_worked_out_alike_without_is_packed() -> None:
    """protobuf before 5.28 (what TF 2.12-2.17 environments hold) has no FieldDescriptor.is_packed:
    messages.is_packed works it out from the field's options and its file's syntax, and agrees with
    is_packed on every repeated number field of every shipped message (the source schema it serves)."""
    from google.protobuf.descriptor import FieldDescriptor

    from rewriter.protos import saved_model_pb2
    from rewriter.savedmodel.messages import is_packed, is_repeated

    class WithoutIsPacked:  # a field descriptor as protobuf 4.x has it
        def __init__(self, field: object) -> None:
            self._field = field

        def __getattr__(self, name: str) -> object:
            if name == "is_packed":
                raise AttributeError(name)
            return getattr(self._field, name)

    def fields(message: object, seen: set[str]) -> list[object]:
        if message.full_name in seen:  # type: ignore[attr-defined]
            return []
        seen.add(message.full_name)  # type: ignore[attr-defined]
        found = []
        for field in message.fields:  # type: ignore[attr-defined]
            found.append(field)
            if field.message_type is not None:
                found += fields(field.message_type, seen)
        return found

    seen: set[str] = set()
    every = fields(saved_model_pb2.SavedModel.DESCRIPTOR, seen)
    unpackable = {FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP}
    repeated = [f for f in every if is_repeated(f) and f.type not in unpackable]  # type: ignore[attr-defined]  # (packable ones)
    assert len(repeated) > 10  # (tensor_shape dims, TensorProto's *_val, int lists of attrs, ...)
    for field in repeated:
        assert is_packed(WithoutIsPacked(field)) == field.is_packed, field.full_name  # type: ignore[attr-defined]
