"""Generate SavedModels with large function libraries (issue 16), at test or benchmark time.

Two shapes, both saved by the installed TensorFlow and then grown by editing the library:

  many  N small functions fn_i(x) = x + c_i (c_i = +1 / -1 alternating), called one after the
        other from the serving function through PartitionedCall: y = fn_{N-1}(...fn_0(x)).
  chain a chain D calls deep: the serving function calls fn_0, fn_i calls fn_{i+1} (each through
        PartitionedCall) and adds c_i to what it returns.

Each function is a real FunctionDef as TF writes it (named like TF's own, `__inference_...`, so
TF's fingerprinting accepts it). Every addition is IEEE float32, in a fixed order, so every
runtime computes the same bits. Big ones are not committed: tests and tools/bench_functions.py
call make() into a temporary folder.

    .venv/bin/python tools/make_function_library.py many 20000 /tmp/many-20000
    .venv/bin/python tools/make_function_library.py chain 2000 /tmp/chain-2000
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

SHAPES = ("many", "chain")
FLOAT = 1  # DT_FLOAT


def _base_model(folder: Path) -> None:
    """A tf.Module whose serving function is y = x * w (w a variable, 1.0), saved by the
    installed TF: its save/restore functions carry what old runtimes lack (DisableCopyOnRead)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    class Base(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(1.0)

        @tf.function(input_signature=[tf.TensorSpec([2, 3], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.identity(x * self.w)}

    module = Base()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})


def _function(name: str, step: float, callee: str | None) -> Any:
    from rewriter.protos import function_pb2

    fdef = function_pb2.FunctionDef()
    fdef.signature.name = name
    fdef.signature.input_arg.add(name="x", type=FLOAT)
    fdef.signature.output_arg.add(name="identity", type=FLOAT)
    value = "x"
    if callee is not None:
        call = fdef.node_def.add(name="call", op="PartitionedCall", input=["x"])
        call.attr["Tin"].list.type.append(FLOAT)
        call.attr["Tout"].list.type.append(FLOAT)
        call.attr["f"].func.name = callee
        for key in ("config", "config_proto", "executor_type"):
            call.attr[key].s = b""
        value = "call:output:0"
    const = fdef.node_def.add(name="c", op="Const")
    const.attr["dtype"].type = FLOAT
    const.attr["value"].tensor.dtype = FLOAT
    const.attr["value"].tensor.tensor_shape.SetInParent()
    const.attr["value"].tensor.float_val.append(step)
    add = fdef.node_def.add(name="add", op="AddV2", input=[value, "c:output:0"])
    add.attr["T"].type = FLOAT
    ident = fdef.node_def.add(name="Identity", op="Identity", input=["add:z:0"])
    ident.attr["T"].type = FLOAT
    fdef.ret["identity"] = "Identity:output:0"
    return fdef


def make(shape: str, count: int, out: Path) -> Path:
    """Write the SavedModel of `shape` with `count` generated functions to `out` (replaced)."""
    if shape not in SHAPES or count < 1:
        raise ValueError(f"shape must be one of {SHAPES} and count >= 1")
    from rewriter.protos import saved_model_pb2

    with tempfile.TemporaryDirectory(prefix="fnlib-base-") as tmp:
        base = Path(tmp) / "base"
        _base_model(base)
        proto = saved_model_pb2.SavedModel.FromString((base / "saved_model.pb").read_bytes())
        library = proto.meta_graphs[0].graph_def.library
        # The traced body of `serve` (not the signature wrapper that calls it): its `mul` node.
        body = next(f for f in library.function
                    if any(n.op == "Mul" for n in f.node_def) and "signature_wrapper" not in f.signature.name)
        names = [f"__inference_generated_{shape}_{i}_{count}" for i in range(count)]
        steps = [1.0 if i % 2 == 0 else -1.0 for i in range(count)]
        if shape == "many":
            library.function.extend(_function(names[i], steps[i], None) for i in range(count))
        else:
            library.function.extend(
                _function(names[i], steps[i], names[i + 1] if i + 1 < count else None) for i in range(count))
        # Route the body's product through the generated calls: mul -> calls -> Identity.
        mul = next(n for n in body.node_def if n.op == "Mul")
        value = f"{mul.name}:z:0"
        for i in range(count if shape == "many" else 1):
            call = body.node_def.add(name=f"generated_call_{i}", op="PartitionedCall", input=[value])
            call.attr["Tin"].list.type.append(FLOAT)
            call.attr["Tout"].list.type.append(FLOAT)
            call.attr["f"].func.name = names[i]
            for key in ("config", "config_proto", "executor_type"):
                call.attr[key].s = b""
            value = f"generated_call_{i}:output:0"
        for node in body.node_def:
            if node.op == "Identity" and list(node.input) == [f"{mul.name}:z:0"]:
                node.input[0] = value
                break
        else:
            raise RuntimeError("the base model's body has no Identity of its product")
        (base / "saved_model.pb").write_bytes(proto.SerializeToString(deterministic=True))
        (base / "fingerprint.pb").unlink(missing_ok=True)  # it hashed the old bytes
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(base, out)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("shape", choices=SHAPES)
    parser.add_argument("count", type=int)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    make(args.shape, args.count, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
