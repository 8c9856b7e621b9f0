#!/usr/bin/env python3
"""Regenerate the rule fixtures (golden/rules/<fixture>/) and the rules' golden files.

A rule fixture is the smallest real model that makes the ops a rule handles, saved by the
installed TensorFlow through the public API users use (tf.random.stateless_*, tf.switch_case,
tf.math.top_k, tf.linalg.matmul, ...; tf.raw_ops or the generated op wrappers only where no
public API makes the op). Layout:

    golden/rules/<fixture>/saved_model/   the SavedModel, as TF writes it
    golden/rules/<fixture>/data.npz       <sig>/inputs/<name>, <sig>/outputs/<name>
    golden/rules/<fixture>/meta.json      JAX back-compat style: name, created, versions, description
    golden/rules/<rule-id>/golden.pbtxt   the functions the rule rewrote, after conversion to 2.3
                                          (to 1.15 for a rule about what 2.0-2.3 added)

A rule names its fixture with `fixture: <name>` (golden/rules/<name>, else golden/fixtures/<name>).

Usage:
    .venv/bin/python tools/make_rule_fixtures.py                 # every fixture, then every golden
    .venv/bin/python tools/make_rule_fixtures.py --only stateless_rng
    .venv/bin/python tools/make_rule_fixtures.py --goldens       # goldens only (after a rule changed)

Set SOURCE_DATE_EPOCH to pin meta.json's "created" date.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RULE_GOLDEN = REPO / "golden" / "rules"
GENERATOR = "tools/make_rule_fixtures.py"
GOLDEN_TARGET = "2.3"
TF1_TARGET = "1.15"  # rules about ops 2.0-2.3 added are proven here (catalog_target)

Inputs = dict[str, dict[str, np.ndarray]]  # signature -> input name -> array


@dataclass
class Built:
    module: Any  # a tf.Module
    signatures: dict[str, Any]  # signature key -> tf.function (with input_signature)
    inputs: Inputs
    description: str
    # For a model whose ops have no kernel here (GPU-only ops): outputs computed independently
    # (e.g. with numpy) from the inputs, recorded instead of running the model, and given to
    # parity as its expected outputs (tests/test_rules_catalog.py).
    reference: Callable[[Inputs], Inputs] | None = None
    reference_note: str = ""


# --------------------------------------------------------------------------------------- #
# Builders. Each returns the module to save, its signatures and the inputs to record.
# --------------------------------------------------------------------------------------- #
def _spec(shape: list[int | None], dtype: Any, name: str) -> Any:
    import tensorflow as tf

    return tf.TensorSpec(shape, dtype, name=name)


def build_variables() -> Built:
    import tensorflow as tf

    class Affine(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable([0.5, -2.0, 0.25, 4.0], name="w")
            self.b = tf.Variable([1.0, 0.0, -1.0, 8.0], name="b")
            self.state = tf.Variable(tf.zeros([4]), name="state")

        # x * w + b: one rounding per element in both releases, so the result is bit-exact.
        @tf.function(input_signature=[_spec([None, 4], tf.float32, "x")])
        def affine(self, x: Any) -> Any:
            return {"y": x * self.w + self.b}

        # Variable.assign writes AssignVariableOp with validate_shape=true (TF 2.8+).
        @tf.function(input_signature=[_spec([4], tf.float32, "x")])
        def assign(self, x: Any) -> Any:
            self.state.assign(x)
            return {"state": self.state.read_value()}

    module = Affine()
    rng = np.random.default_rng(0)
    return Built(
        module,
        {"serving_default": module.affine, "assign": module.assign},
        {
            "serving_default": {"x": rng.standard_normal((2, 4)).astype(np.float32)},
            "assign": {"x": rng.standard_normal(4).astype(np.float32)},
        },
        "tf.Module with three tf.Variables: serving_default returns x*w+b (exact in float32), "
        "assign stores x with Variable.assign and returns it; saved with tf.saved_model.save.",
    )


def build_stateless_rng() -> Built:
    import tensorflow as tf

    class Rng(tf.Module):
        # The default alg ("auto_select") makes StatelessRandomGetKeyCounter + the V2 ops.
        @tf.function(input_signature=[_spec([2], tf.int64, "seed")])
        def sample(self, seed: Any) -> Any:
            return {
                "uniform": tf.random.stateless_uniform([2, 3], seed),
                "uniform_f64": tf.random.stateless_uniform([3], seed, dtype=tf.float64),
                "normal": tf.random.stateless_normal([2, 3], seed, mean=1.0, stddev=2.0),
                "truncated": tf.random.stateless_truncated_normal([5], seed),
                "int32": tf.random.stateless_uniform([4], seed, minval=-5, maxval=50, dtype=tf.int32),
                "int64": tf.random.stateless_uniform([4], seed, minval=0, maxval=10**12, dtype=tf.int64),
            }

        # An int32 seed, and a shape computed at run time (a non-constant Tshape input).
        @tf.function(input_signature=[_spec([2], tf.int32, "seed"), _spec([None], tf.float32, "x")])
        def noise(self, seed: Any, x: Any) -> Any:
            return {"noisy": x + tf.random.stateless_normal(tf.shape(x), seed, stddev=0.1)}

    module = Rng()
    return Built(
        module,
        {"serving_default": module.sample, "noise": module.noise},
        {
            "serving_default": {"seed": np.array([7, 42], np.int64)},
            "noise": {"seed": np.array([-3, 11], np.int32), "x": np.arange(5, dtype=np.float32)},
        },
        "tf.random.stateless_uniform (float32, float64, int32 and int64 ranges), stateless_normal and "
        "stateless_truncated_normal with the default algorithm, in tf.functions with int64 and int32 seeds "
        "(full-range draws: rng_full_int, which TF 1.15 cannot take).",
    )


def build_rng_full_int() -> Built:
    """Full-range integer draws, apart from stateless_rng and rng_raw_alg: TF 1.15 lacks
    StatelessRandomUniformFullInt, so a fixture holding one is refused whole there, and the rule
    tier could not prove the other RNG rules in TF 1.15.5."""
    import tensorflow as tf

    raw = tf.raw_ops

    class Rng(tf.Module):
        @tf.function(input_signature=[_spec([2], tf.int64, "seed"), _spec([2], tf.int32, "seed32")])
        def sample(self, seed: Any, seed32: Any) -> Any:
            key, counter, alg = raw.StatelessRandomGetKeyCounterAlg(seed=seed)
            return {
                "full_int64": tf.random.stateless_uniform([4], seed, minval=None, maxval=None, dtype=tf.int64),
                "full_uint32": tf.random.stateless_uniform([5], seed32, minval=None, maxval=None, dtype=tf.uint32),
                "full_uint64": raw.StatelessRandomUniformFullIntV2(
                    shape=[2], key=key, counter=counter, alg=alg, dtype=tf.uint64),
            }

    module = Rng()
    return Built(
        module, {"serving_default": module.sample},
        {"serving_default": {"seed": np.array([7, 42], np.int64), "seed32": np.array([-3, 11], np.int32)}},
        "tf.random.stateless_uniform full-range int64 and uint32 draws with the default algorithm (int64 and "
        "int32 seeds), and a uint64 one fed by StatelessRandomGetKeyCounterAlg (tf.raw_ops).",
    )


def build_stateless_gamma() -> Built:
    """tf.random.stateless_gamma as TF 2.21 writes it (StatelessRandomGammaV3 fed by
    StatelessRandomGetKeyCounter), in float16/32/64 with alpha 1 (the exponential branch), < 1
    and > 1, and int32 and int64 seeds."""
    import tensorflow as tf

    class Gamma(tf.Module):
        @tf.function(input_signature=[_spec([2], tf.int32, "seed"), _spec([2], tf.int64, "seed64"),
                                      _spec([4], tf.float32, "alpha")])
        def call(self, seed: Any, seed64: Any, alpha: Any) -> Any:
            return {
                "float32": tf.random.stateless_gamma([3, 4], seed=seed, alpha=alpha),
                "float64": tf.random.stateless_gamma([2, 4], seed=seed64, alpha=tf.cast(alpha, tf.float64),
                                                     beta=2.0, dtype=tf.float64),
                "float16": tf.random.stateless_gamma([5], seed=seed, alpha=0.5, dtype=tf.float16),
            }

    module = Gamma()
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"seed": np.array([7, -3], np.int32),
                                      "seed64": np.array([2**40 + 5, -(2**33)], np.int64),
                                      "alpha": np.array([1.0, 0.3, 2.5, 7.0], np.float32)}},
                 "tf.random.stateless_gamma with int32 and int64 seeds, float16/32/64, alpha 1, < 1 and > 1.")


def build_rng_raw_alg() -> Built:
    import tensorflow as tf

    raw = tf.raw_ops

    class Rng(tf.Module):
        # No public API writes these two anymore (TF 2.4-2.6 did): tf.raw_ops makes them.
        @tf.function(input_signature=[_spec([2], tf.int64, "seed")])
        def sample(self, seed: Any) -> Any:
            key, counter, alg = raw.StatelessRandomGetKeyCounterAlg(seed=seed)
            kc_key, kc_counter = raw.StatelessRandomGetKeyCounter(seed=seed)
            device_alg = raw.StatelessRandomGetAlg()
            return {
                "uniform": raw.StatelessRandomUniformV2(shape=[3], key=key, counter=counter, alg=alg),
                "normal": raw.StatelessRandomNormalV2(shape=[3], key=kc_key, counter=kc_counter, alg=device_alg),
            }

    module = Rng()
    return Built(
        module, {"serving_default": module.sample}, {"serving_default": {"seed": np.array([1, 2], np.int64)}},
        "StatelessRandomGetKeyCounterAlg and StatelessRandomGetAlg feeding V2 RNG ops (tf.raw_ops: no "
        "public API writes them since TF 2.7).",
    )


def build_rng_threefry() -> Built:
    import tensorflow as tf

    class Rng(tf.Module):
        @tf.function(input_signature=[_spec([2], tf.int64, "seed")])
        def sample(self, seed: Any) -> Any:
            return {"uniform": tf.random.stateless_uniform([3], seed, alg="threefry")}

    module = Rng()
    return Built(module, {"serving_default": module.sample}, {"serving_default": {"seed": np.array([1, 2], np.int64)}},
                 "tf.random.stateless_uniform with alg='threefry' pinned.")


def build_rng_philox(full_int: bool = False) -> Built:
    """The pinned-Philox draws, one signature per op; `full_int`: only the full-range integer one
    (fixture rng_philox_full_int: TF 1.15 lacks its V1 op, so it is apart from the others)."""
    import tensorflow as tf

    # alg="philox" pinned: the Python wrapper scrambles the seed into key and counter in the graph.
    # One signature per V2 op, so each rule's golden file holds only the function it rewrote.
    kinds: dict[str, Callable[[Any], dict[str, Any]]] = {
        "uniform": lambda seed: {
            "f32": tf.random.stateless_uniform([2, 3], seed, alg="philox"),
            "f64": tf.random.stateless_uniform([5], seed, dtype=tf.float64, alg="philox")},
        "normal": lambda seed: {
            "f32": tf.random.stateless_normal([7], seed, mean=1.0, stddev=2.0, alg="philox"),
            "f16": tf.random.stateless_normal([3], seed, dtype=tf.float16, alg="philox")},
        "truncated_normal": lambda seed: {"f32": tf.random.stateless_truncated_normal([3, 1, 3], seed, alg="philox")},
        "uniform_int": lambda seed: {
            "int32": tf.random.stateless_uniform([5], seed, minval=-5, maxval=50, dtype=tf.int32, alg="philox"),
            "int64": tf.random.stateless_uniform([2, 2], seed, minval=0, maxval=10**12, dtype=tf.int64, alg="philox")},
        "uniform_full_int": lambda seed: {
            "int64": tf.random.stateless_uniform([3], seed, minval=None, maxval=None, dtype=tf.int64, alg="philox"),
            "uint32": tf.random.stateless_uniform([6], seed, minval=None, maxval=None, dtype=tf.uint32, alg="philox")},
    }
    # Rows of seeds: the scrambling must treat negative and >= 2**31 halves as GenerateKey does;
    # int32 seeds are sign-extended to 64 bits by the graph's Cast and by GenerateKey alike.
    specs = [_spec([4, 2], tf.int64, "seeds64"), _spec([3, 2], tf.int32, "seeds32"), _spec([None], tf.float32, "x")]
    module = tf.Module()
    signatures: dict[str, Any] = {}
    def signature_for(kind: str, draws: Callable[[Any], dict[str, Any]]) -> Any:
        def call(seeds64: Any, seeds32: Any, x: Any) -> Any:
            outputs: dict[str, Any] = {}
            for tag, seeds, rows in (("s64", seeds64, 4), ("s32", seeds32, 3)):
                for row in range(rows):
                    outputs.update({f"{name}_{tag}_{row}": value for name, value in draws(seeds[row]).items()})
            if kind == "uniform":  # an empty draw
                outputs["empty"] = tf.random.stateless_uniform([0, 3], seeds32[1], alg="philox")
            if kind == "normal":  # a shape computed at run time
                outputs["noisy"] = x + tf.random.stateless_normal(tf.shape(x), seeds32[0], stddev=0.1, alg="philox")
            return outputs

        return tf.function(call, input_signature=specs)

    kinds = {kind: draws for kind, draws in kinds.items() if (kind == "uniform_full_int") == full_int}
    for kind, draws in kinds.items():
        function = signature_for(kind, draws)
        setattr(module, kind, function)
        signatures[kind] = function
    seeds64 = np.array([[7, 42], [-3, 2**31], [2**40 + 5, -(2**35) - 1], [-(2**63), 2**63 - 1]], np.int64)
    seeds32 = np.array([[-3, 11], [2**31 - 1, -(2**31)], [0, -1]], np.int32)
    feeds = {"seeds64": seeds64, "seeds32": seeds32, "x": np.arange(5, dtype=np.float32)}
    return Built(
        module, signatures, {kind: dict(feeds) for kind in kinds},
        ("tf.random.stateless_uniform full-range int64 and uint32 draws" if full_int else
         "tf.random.stateless_uniform (float32, float64, int32 and int64 ranges), stateless_normal (float32, "
         "float16) and stateless_truncated_normal")
        + " with alg='philox' pinned (key and counter scrambled from the seed in the graph), one signature per "
        "op, on int64 and int32 seeds with negative and >= 2**31 halves"
        + ("." if full_int else ", several shapes, an empty one and one computed at run time (full-range "
           "draws: rng_philox_full_int, which TF 1.15 cannot take)."),
    )


def build_rng_computed_key() -> Built:
    import tensorflow as tf

    class Rng(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.generator = tf.random.Generator.from_seed(1, alg="philox")

        # A tf.random.Generator feeds the V2 op a key and counter read from its state.
        @tf.function(input_signature=[])
        def sample(self) -> Any:
            return {"normal": self.generator.normal([3])}

    module = Rng()
    return Built(module, {"serving_default": module.sample}, {"serving_default": {}},
                 "tf.random.Generator.normal: a V2 stateless RNG op whose key and counter come from the "
                 "generator's state, not from a seed.")


def build_xla_call_module() -> Built:
    import tensorflow as tf
    from tensorflow.compiler.tf2xla.ops import gen_xla_ops

    class Jax(tf.Module):
        # What jax2tf.convert(native_serialization=True) writes; the module bytes are a stand-in
        # (the refusal never runs them), since jax is not a dependency.
        @tf.function(input_signature=[_spec([2], tf.float32, "x")])
        def call(self, x: Any) -> Any:
            (y,) = gen_xla_ops.xla_call_module(
                args=[x], version=9, module=b"ML\xefR", Sout=[[2]], Tout=[tf.float32],
                dim_args_spec=[], platforms=["CPU"], function_list=[], has_token_input_output=False,
                disabled_checks=[])
            return {"y": y}

    module = Jax()
    return Built(module, {"serving_default": module.call}, {"serving_default": {"x": np.ones(2, np.float32)}},
                 "A hand-made XlaCallModule node (as jax2tf native serialization writes), built with the "
                 "generated op wrapper; its StableHLO bytes are a stand-in.")


def build_batch_matmul_v3() -> Built:
    import tensorflow as tf

    class Mm(tf.Module):
        # tf.linalg.matmul(int8, int8, output_type=int32) is what writes BatchMatMulV3.
        @tf.function(input_signature=[_spec([2, 3, 4], tf.int8, "a"), _spec([2, 4, 2], tf.int8, "b")])
        def int8(self, a: Any, b: Any) -> Any:
            return {"product": tf.linalg.matmul(a, b, output_type=tf.int32),
                    "product_t": tf.linalg.matmul(a, b, output_type=tf.int32, transpose_a=False, adjoint_b=False)}

        # int32 accumulation that wraps: 140000 products of (-128)*(-128) exceed 2**31. Fill keeps
        # the fixture tiny; the wrap must be the same in both runtimes.
        @tf.function(input_signature=[_spec([2], tf.int8, "v")])
        def wrap(self, v: Any) -> Any:
            a = tf.fill([1, 2, 140000], v[0])
            b = tf.fill([1, 140000, 2], v[1])
            return {"product": tf.linalg.matmul(a, b, output_type=tf.int32)}

        # Mixed int8 x uint8 and same-type float: no public API writes these; raw ops do.
        @tf.function(input_signature=[_spec([3, 4], tf.int8, "a"), _spec([4, 2], tf.uint8, "b"),
                                      _spec([2, 3], tf.float32, "x"), _spec([3, 2], tf.float32, "y")])
        def raw(self, a: Any, b: Any, x: Any, y: Any) -> Any:
            return {"mixed": tf.raw_ops.BatchMatMulV3(x=a, y=b, Tout=tf.int32),
                    "float": tf.raw_ops.BatchMatMulV3(x=x, y=y, Tout=tf.float32, adj_y=False)}

    module = Mm()
    rng = np.random.default_rng(0)
    return Built(
        module, {"serving_default": module.int8, "wrap": module.wrap, "raw": module.raw},
        {
            "serving_default": {"a": rng.integers(-128, 128, (2, 3, 4)).astype(np.int8),
                                "b": rng.integers(-128, 128, (2, 4, 2)).astype(np.int8)},
            "wrap": {"v": np.array([-128, -128], np.int8)},
            "raw": {"a": rng.integers(-128, 128, (3, 4)).astype(np.int8),
                    "b": rng.integers(0, 256, (4, 2)).astype(np.uint8),
                    "x": np.array([[1.5, -2.0, 0.25], [3.0, 0.5, -1.0]], np.float32),
                    "y": np.array([[2.0, 1.0], [-0.5, 4.0], [8.0, 0.125]], np.float32)},
        },
        "tf.linalg.matmul(int8, int8, output_type=tf.int32) (BatchMatMulV3), including an int32 "
        "accumulation that wraps; raw BatchMatMulV3 int8 x uint8 -> int32 and float32 -> float32 "
        "(small exactly representable values, so float sums are exact).",
    )


def build_switch_case() -> Built:
    import tensorflow as tf

    class Switch(tf.Module):
        @tf.function(input_signature=[_spec([], tf.int32, "branch"), _spec([3], tf.float32, "x")])
        def call(self, branch: Any, x: Any) -> Any:
            y = tf.switch_case(branch, [lambda: x * 2.0, lambda: x + 1.0, lambda: -x])
            return {"y": y}

    module = Switch()
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"branch": np.array(1, np.int32), "x": np.array([1.0, -2.5, 3.0], np.float32)}},
                 "tf.switch_case with three branches (StatelessCase).")


def build_top_k_int64() -> Built:
    import tensorflow as tf

    class TopK(tf.Module):
        @tf.function(input_signature=[_spec([2, 5], tf.float32, "x"), _spec([], tf.int64, "k")])
        def call(self, x: Any, k: Any) -> Any:
            values, indices = tf.math.top_k(x, tf.constant(3, tf.int64), index_type=tf.int64)
            values32k, indices64 = tf.math.top_k(x, 2, index_type=tf.int64)
            values_fed_k, indices_fed_k = tf.math.top_k(x, k, index_type=tf.int64)
            return {"values": values, "indices": indices, "values_k32": values32k, "indices_k32": indices64,
                    "values_fed_k": values_fed_k, "indices_fed_k": indices_fed_k}

    module = TopK()
    x = np.array([[0.5, 3.0, -1.0, 2.0, 7.0], [1.0, 1.0, 0.0, -4.0, 2.5]], np.float32)
    return Built(module, {"serving_default": module.call}, {"serving_default": {"x": x, "k": np.array(4, np.int64)}},
                 "tf.math.top_k with a constant int64 k, with an int64 k fed as an input, both with "
                 "index_type=tf.int64, and with an int32 k and int64 indices (TopKV2 Tk / index_type, "
                 "TF 2.13); ties included.")


def build_gradient_flags() -> Built:
    import tensorflow as tf

    class Saliency(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(np.array([[0.5, -1.0], [2.0, 0.25], [1.0, 4.0]], np.float32), name="w")
            self.w3 = tf.Variable(np.array([[[1.0, 2.0], [0.5, -0.5]]], np.float32), name="w3")

        # Gradients in a serving signature (saliency): the gradient MatMuls carry grad_a/grad_b
        # and the batch ones grad_x/grad_y (TF 2.16).
        @tf.function(input_signature=[_spec([2, 3], tf.float32, "x"), _spec([1, 2, 2], tf.float32, "z")])
        def saliency(self, x: Any, z: Any) -> Any:
            with tf.GradientTape(persistent=True) as tape:
                tape.watch([x, z])
                score = tf.reduce_sum(tf.matmul(x, self.w))
                score3 = tf.reduce_sum(tf.linalg.matmul(z, self.w3))
            return {"dx": tape.gradient(score, x), "dw": tape.gradient(score, self.w),
                    "dz": tape.gradient(score3, z), "dw3": tape.gradient(score3, self.w3)}

    module = Saliency()
    x = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]], np.float32)
    z = np.array([[[1.0, -2.0], [4.0, 0.5]]], np.float32)
    return Built(module, {"serving_default": module.saliency}, {"serving_default": {"x": x, "z": z}},
                 "Input gradients in a serving signature (tf.GradientTape): MatMul grad_a/grad_b and "
                 "BatchMatMulV2 grad_x/grad_y; small exactly representable values.")


def build_bad_indices_policy() -> Built:
    import tensorflow as tf

    class Gather(tf.Module):
        @tf.function(input_signature=[_spec([3, 2], tf.float32, "params"), _spec([2, 1], tf.int32, "indices")])
        def call(self, params: Any, indices: Any) -> Any:
            return {
                "gathered": tf.gather_nd(params, indices, bad_indices_policy="DEFAULT"),
                # "ERROR" is the CPU default: same values for in-range indices (a lossy rule).
                "gathered_error": tf.gather_nd(params, indices, bad_indices_policy="ERROR"),
                "scattered": tf.raw_ops.TensorScatterUpdate(
                    tensor=params, indices=indices, updates=tf.ones([2, 2]), bad_indices_policy="DEFAULT"),
            }

    module = Gather()
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"params": np.arange(6, dtype=np.float32).reshape(3, 2),
                                      "indices": np.array([[2], [0]], np.int32)}},
                 "tf.gather_nd(..., bad_indices_policy='DEFAULT') and TensorScatterUpdate with the same "
                 "policy spelled out.")


def build_growable_tensor_array() -> Built:
    import tensorflow as tf

    class Loop(tf.Module):
        # A TensorArray with dynamic_size=True grows in a while_loop: TensorListSetItem with
        # resize_if_index_out_of_bounds=true (TF 2.13).
        @tf.function(input_signature=[_spec([], tf.int32, "n"), _spec([], tf.float32, "x")])
        def call(self, n: Any, x: Any) -> Any:
            ta = tf.TensorArray(tf.float32, size=0, dynamic_size=True)
            for i in tf.range(n):
                ta = ta.write(i, x * tf.cast(i, tf.float32))
            # An int64 element_shape (TensorListGetItem.Tshape, TF 2.21): only the raw op writes it.
            first = tf.raw_ops.TensorListGetItem(
                input_handle=ta.flow,  # in a tf.function the flow is the TensorList itself
                index=0, element_shape=tf.constant(-1, tf.int64), element_dtype=tf.float32)
            return {"stacked": ta.stack(), "size": ta.size(), "first": first}

    module = Loop()
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"n": np.array(4, np.int32), "x": np.array(1.5, np.float32)}},
                 "A growable tf.TensorArray (dynamic_size=True) written in a tf.range loop.")


def write_v1_defaults(export: Path) -> tuple[Inputs, str]:
    """TF1-style graphs saved with SavedModelBuilder(strip_default_attrs=False) keep every attr at
    its default: that is how attrs added after 2.3 appear with their default value spelled out."""
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    vocab = export.parent / "vocab.txt"  # copied into saved_model/assets by the builder
    vocab.write_text("zero\none\ntwo\n", "utf-8")
    with graph.as_default():
        x = v1.placeholder(tf.float32, [2, 3], name="x")
        word = tf.constant(["two", "nine"])  # a constant key: data.npz holds no string arrays
        w = v1.get_variable("w", initializer=np.array([[1.0, 2.0], [0.5, -1.0], [4.0, 0.25]], np.float32))
        product = tf.matmul(x, w)
        values, indices = tf.math.top_k(x, 2)
        gathered = tf.gather_nd(x, [[1], [0]])
        offsets = tf.raw_ops.ConcatOffset(concat_dim=1, shape=[tf.shape(x), tf.shape(product)])
        handle = tf.raw_ops.TensorListReserve(element_shape=[3], num_elements=2, element_dtype=tf.float32)
        handle = tf.raw_ops.TensorListSetItem(input_handle=handle, index=1, item=x[0],
                                              resize_if_index_out_of_bounds=False)
        item = tf.raw_ops.TensorListGetItem(input_handle=handle, index=1, element_shape=[3],
                                            element_dtype=tf.float32)
        table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(str(vocab), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                          tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER), -1)
        ids = table.lookup(word)
        with v1.Session(graph=graph) as session:
            session.run([v1.global_variables_initializer(), v1.tables_initializer()])
            builder = v1.saved_model.Builder(str(export))
            signature = v1.saved_model.predict_signature_def(
                {"x": x},
                {"product": product, "values": values, "indices": indices, "gathered": gathered,
                 "offsets": offsets[1], "item": item, "ids": ids})
            builder.add_meta_graph_and_variables(
                session, ["serve"], signature_def_map={"serving_default": signature},
                main_op=v1.tables_initializer(), strip_default_attrs=False, saver=v1.train.Saver(sharded=True),
                assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS))
            builder.save()
    vocab.unlink()
    inputs = {"serving_default": {"x": np.array([[1.0, -2.0, 0.5], [3.0, 0.25, 2.0]], np.float32)}}
    return inputs, ("TF1-style graph (tf.compat.v1) saved with SavedModelBuilder(strip_default_attrs="
                    "False): MatMul, TopKV2, GatherNd, ConcatOffset, TensorListSetItem/GetItem, a text-file "
                    "lookup table and the Saver's MergeV2Checkpoints, every attr spelled out at its default.")


def write_tf1_v1_defaults(export: Path) -> tuple[Inputs, str]:
    """A TF1-style graph saved with SavedModelBuilder(strip_default_attrs=False): the ops the TF 1.15
    rules handle with every attr spelled out at its default (Tsegmentids = int32, align, binary_output,
    use_default_device is not in a graph like this)."""
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        data = v1.placeholder(tf.float32, [None, 2], name="data")
        ids = v1.placeholder(tf.int32, [None], name="ids")
        tokens = v1.placeholder(tf.int64, [None, 3], name="tokens")
        rows = tf.range(tf.shape(ids)[0])
        outputs = {
            "sum": tf.sparse.segment_sum(data, rows, ids),
            "mean_n": tf.sparse.segment_mean(data, rows, ids, num_segments=4),
            "diag": tf.linalg.diag(data),
            "counts": tf.math.bincount(tokens, minlength=5, maxlength=5, axis=-1),
        }
        with v1.Session(graph=graph) as session:
            builder = v1.saved_model.Builder(str(export))
            signature = v1.saved_model.predict_signature_def({"data": data, "ids": ids, "tokens": tokens}, outputs)
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={"serving_default": signature},
                                                 strip_default_attrs=False)
            builder.save()
    inputs = {"serving_default": {"data": np.array([[1.0, -2.0], [0.5, 4.0], [3.0, 0.25]], np.float32),
                                  "ids": np.array([0, 0, 2], np.int32),
                                  "tokens": np.array([[0, 4, 4], [7, 1, 0]], np.int64)}}
    return inputs, ("TF1-style graph (tf.compat.v1) saved with SavedModelBuilder(strip_default_attrs=False): "
                    "SparseSegmentSum / SparseSegmentMeanWithNumSegments with int32 ids (Tsegmentids spelled "
                    "out), tf.linalg.diag (align spelled out) and tf.math.bincount(axis=-1) (binary_output).")


def build_int64_concat_offset_and_table_offset() -> Built:
    import tensorflow as tf

    class Misc(tf.Module):
        def __init__(self, vocab: str) -> None:
            super().__init__()
            # value_index_offset is written as InitializeTableFromTextFileV2.offset (TF 2.5).
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.TextFileInitializer(vocab, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
                                              tf.lookup.TextFileIndex.LINE_NUMBER, value_index_offset=10), -1)

        @tf.function(input_signature=[_spec([2, 3], tf.float32, "x"), _spec([2], tf.string, "word")])
        def call(self, x: Any, word: Any) -> Any:
            shape = tf.shape(x, out_type=tf.int64)
            offsets = tf.raw_ops.ConcatOffset(concat_dim=1, shape=[shape, shape])  # shape_type=int64
            return {"offset": offsets[1], "ids": self.table.lookup(word)}

    import tempfile

    vocab = Path(tempfile.mkdtemp()) / "vocab.txt"
    vocab.write_text("zero\none\ntwo\n", "utf-8")
    module = Misc(str(vocab))
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"x": np.zeros((2, 3), np.float32)}},
                 "Two refusals: ConcatOffset with int64 shapes (tf.raw_ops), and a text-file lookup table with "
                 "value_index_offset=10 (InitializeTableFromTextFileV2.offset).")


def build_new_ops() -> Built:
    import keras
    import tensorflow as tf

    class NewOps(tf.Module):
        @tf.function(input_signature=[_spec([1, 4, 4, 1], tf.float32, "image"), _spec([6], tf.float32, "x"),
                                      _spec([5, 2], tf.float32, "data")])
        def call(self, image: Any, x: Any, data: Any) -> Any:
            # Keras 3's TF backend writes ImageProjectiveTransformV3 with a constant fill_value.
            # A half-pixel shift with bilinear interpolation: values that are exact in float32.
            shift = tf.constant([[1.0, 0.0, 0.5, 0.0, 1.0, -1.0, 0.0, 0.0]])
            return {
                "shifted": keras.ops.image.affine_transform(image, shift, interpolation="bilinear",
                                                            fill_mode="constant", fill_value=0),
                "nearest": keras.ops.image.affine_transform(image, shift, interpolation="nearest",
                                                            fill_mode="constant", fill_value=0),
                # tf.quantization.quantize_and_dequantize_v2 writes QuantizeAndDequantizeV4.
                "qdq": tf.quantization.quantize_and_dequantize_v2(x, -1.0, 1.0, range_given=True, num_bits=4),
                "qdq_range": tf.quantization.quantize_and_dequantize_v2(x, 0.0, 0.0, range_given=False),
                "segment_sum": tf.sparse.segment_sum(data, [0, 2, 3], [0, 0, 1], sparse_gradient=True),
                "segment_mean": tf.sparse.segment_mean(data, [4, 1], [0, 2], num_segments=3, sparse_gradient=True),
            }

    module = NewOps()
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    x = np.array([-1.5, -0.7, -0.1, 0.2, 0.55, 1.25], np.float32)
    data = np.array([[1.0, 2.0], [0.5, -1.0], [4.0, 0.25], [-2.0, 8.0], [3.0, 1.5]], np.float32)
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"image": image, "x": x, "data": data}},
                 "keras.ops.image.affine_transform with fill_value=0 (ImageProjectiveTransformV3, bilinear and "
                 "nearest), tf.quantization.quantize_and_dequantize_v2 (QuantizeAndDequantizeV4, given and "
                 "computed range), tf.sparse.segment_sum / segment_mean with sparse_gradient=True.")


def build_image_transform_fill() -> Built:
    """keras.ops.image.affine_transform in constant mode with nearest interpolation and a non-zero
    fill_value (Keras 3 writes ImageProjectiveTransformV3 with a Const fill) over quarter-pixel
    shifts across the borders, a rotation and a projective map; float16; a computed fill_value."""
    import keras
    import tensorflow as tf

    transforms = tf.constant([[1.0, 0.0, 0.25, 0.0, 1.0, -0.75, 0.0, 0.0],
                              [1.0, 0.0, -1.5, 0.0, 1.0, 2.25, 0.0, 0.0],
                              [0.9553365, -0.29552022, 0.8, 0.29552022, 0.9553365, -0.6, 0.0, 0.0],
                              [0.9, 0.2, 0.3, -0.1, 1.1, 0.2, 0.01, -0.02]])

    class Fill(tf.Module):
        @tf.function(input_signature=[_spec([4, 5, 4, 2], tf.float32, "image"), _spec([], tf.float32, "level")])
        def call(self, image: Any, level: Any) -> Any:
            return {
                "nearest": keras.ops.image.affine_transform(image, transforms, interpolation="nearest",
                                                            fill_mode="constant", fill_value=-2.5),
                "half": keras.ops.image.affine_transform(tf.cast(image, tf.float16), transforms,
                                                         interpolation="nearest", fill_mode="constant",
                                                         fill_value=0.1),
                "computed": tf.raw_ops.ImageProjectiveTransformV3(
                    images=image, transforms=transforms, output_shape=[5, 4], fill_value=level * 2.0,
                    interpolation="NEAREST", fill_mode="CONSTANT"),
            }

    module = Fill()
    image = (np.arange(4 * 5 * 4 * 2, dtype=np.float32).reshape(4, 5, 4, 2) / 4 - 10).astype(np.float32)
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"image": image, "level": np.float32(1.25)}},
                 "keras.ops.image.affine_transform, constant mode, nearest, fill_value -2.5, 0.1 on float16, "
                 "and a computed fill_value; quarter-pixel shifts across the borders, a rotation and a "
                 "projective map.")


def build_new_ops_refused() -> Built:
    import keras
    import tensorflow as tf

    class Refused(tf.Module):
        @tf.function(input_signature=[_spec([1, 4, 4, 1], tf.float32, "image"),
                                      _spec([3, 3], tf.float32, "diags"), _spec([3], tf.float32, "rhs")])
        def call(self, image: Any, diags: Any, rhs: Any) -> Any:
            shift = tf.constant([[1.0, 0.0, 0.5, 0.0, 1.0, -1.0, 0.0, 0.0]])
            return {
                "filled": keras.ops.image.affine_transform(image, shift, fill_mode="constant", fill_value=1.0),
                "solved": tf.linalg.tridiagonal_solve(diags, rhs, perturb_singular=True),
            }

    module = Refused()
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"image": np.ones((1, 4, 4, 1), np.float32),
                                      "diags": np.ones((3, 3), np.float32), "rhs": np.ones(3, np.float32)}},
                 "Conditional refusals: affine_transform with fill_value=1 (ImageProjectiveTransformV3), "
                 "tridiagonal_solve(perturb_singular=True).")


def build_image_transform_v2_modes() -> Built:
    import tensorflow as tf

    class Modes(tf.Module):
        # ImageProjectiveTransformV2 exists in TF 2.3, but its kernel maps points outside the image
        # by older formulas for every fill_mode but CONSTANT (tools/measure_image_transform_modes.py).
        @tf.function(input_signature=[_spec([1, 5, 4, 1], tf.float32, "image")])
        def call(self, image: Any) -> Any:
            shift = tf.constant([[1.0, 0.0, -0.25, 0.0, 1.0, 0.75, 0.0, 0.0]])
            return {mode.lower(): tf.raw_ops.ImageProjectiveTransformV2(
                images=image, transforms=shift, output_shape=[5, 4], interpolation="BILINEAR", fill_mode=mode)
                for mode in ("REFLECT", "WRAP", "NEAREST")}

    module = Modes()
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"image": (np.arange(20, dtype=np.float32) + 1).reshape(1, 5, 4, 1)}},
                 "tf.raw_ops.ImageProjectiveTransformV2 with fill_mode REFLECT, WRAP and NEAREST (BILINEAR, a "
                 "quarter-pixel shift across the border).")


def build_ctc() -> Built:
    import keras
    import tensorflow as tf

    inf = np.inf

    class Ctc(tf.Module):
        # Keras OCR models decode with keras.ops.ctc_decode, whose default mask_index=0 writes
        # CTCGreedyDecoder with blank_index=0; tf.nn.ctc_greedy_decoder takes any blank_index.
        @tf.function(input_signature=[_spec([4, 6, 5], tf.float32, "logits"), _spec([4], tf.int32, "lengths")])
        def decode(self, logits: Any, lengths: Any) -> Any:
            labels, scores = keras.ops.ctc_decode(logits, lengths, strategy="greedy")
            time_major = tf.transpose(logits, [1, 0, 2])
            outputs = {"keras_labels": labels, "keras_scores": scores}
            for name, blank, merge in [("middle", 2, True), ("negative", -2, True), ("unmerged", 2, False)]:
                decoded, log_probability = tf.nn.ctc_greedy_decoder(time_major, lengths, merge_repeated=merge,
                                                                    blank_index=blank)
                outputs.update({f"{name}_indices": decoded[0].indices, f"{name}_values": decoded[0].values,
                                f"{name}_shape": decoded[0].dense_shape, f"{name}_log_probability": log_probability})
            return outputs

        # Every step picks the blank: nothing is decoded, dense_shape [batch, 0].
        @tf.function(input_signature=[_spec([3, 2, 4], tf.float64, "logits")])
        def nothing(self, logits: Any) -> Any:
            decoded, log_probability = tf.nn.ctc_greedy_decoder(logits, [3, 2], blank_index=0)
            return {"indices": decoded[0].indices, "values": decoded[0].values,
                    "shape": decoded[0].dense_shape, "log_probability": log_probability}

    module = Ctc()
    # [batch, time, class]; small integers and -inf, so every sum is exact.
    logits = np.array([
        # repeated labels separated by blanks of each blank_index (0, 2, 3), and ties: the first
        # maximum wins whether it is the blank or not
        [[0, 0, 0, 0, 0], [-1, 3, 0, 0, 0], [2, 1, 2, 2, 0], [-1, 3, 0, 0, 0], [0, 0, 1, 1, 1], [-1, 3, 3, 0, 0]],
        # all -inf steps (they pick class 0) among others
        [[-inf] * 5, [0, 1, 2, 3, 4], [-inf] * 5, [0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [-inf, -inf, -inf, 0, -inf]],
        # only blanks for blank_index 0: this row decodes nothing in keras_labels
        [[5, 1, 1, 1, 1], [3, 3, 3, 3, 3], [1, 0, 0, 0, 0], [2, 2, -1, 2, 2], [0, -1, -1, -1, -1], [1, 1, 1, 1, 1]],
        # length 3 < 6: the last steps are ignored
        [[0, 0, 1, 0, 0], [0, 0, 0, 4, 0], [1, 0, 0, 0, 0], [0, 9, 0, 0, 0], [0, 9, 0, 0, 0], [0, 9, 0, 0, 0]],
    ], np.float32)
    lengths = np.array([6, 6, 6, 3], np.int32)
    nothing = np.full((3, 2, 4), -2.0)
    nothing[:, :, 0] = 1.0
    nothing[1, 0] = -inf  # an all -inf step picks class 0, the blank here
    return Built(module, {"serving_default": module.decode, "nothing": module.nothing},
                 {"serving_default": {"logits": logits, "lengths": lengths}, "nothing": {"logits": nothing}},
                 "keras.ops.ctc_decode(strategy='greedy') with its default mask_index=0, and "
                 "tf.nn.ctc_greedy_decoder with blank_index 2 and -2 (merge_repeated on and off), returning the "
                 "SparseTensor's parts; ties between the blank and later classes, repeated labels separated "
                 "by blanks, all -inf steps, a row that decodes nothing, a sequence_length < T; and a float64 "
                 "model where nothing is decoded at all (dense_shape [batch, 0]).")


# --- tf.signal.fftnd and friends (rules/fft.yaml) ----------------------------------------------
# FFTND, IFFTND, RFFTND and IRFFTND have only GPU kernels in TF 2.21, so the fixtures cannot run
# here: their expected outputs come from numpy's FFT instead. Small integers and lengths of 1, 2
# and 4 keep every twiddle factor at +-1 or +-i, so numpy, TF 2.21's ducc and TF 2.3's Eigen all
# compute the transforms exactly and the comparison can be bit for bit.
# (signature, output, input, tf.signal op, fft_length, axes). One signature per op and rank, so
# each rule's golden file holds only the small function it rewrote.
_FFT_CASES = [
    ("fft_1d", "fft1", "x", "fftnd", [4], [-1]),
    ("fft_1d", "fft1_padded", "y", "fftnd", [4], [-1]),          # the wrapper zero-pads
    ("fft_2d", "fft2", "x", "fftnd", [4, 4], [-2, -1]),
    ("fft_2d", "fft2_cropped", "u", "fftnd", [2, 4], [-2, -1]),  # FFTND crops
    ("fft_3d", "fft3", "x", "fftnd", [2, 4, 4], [-3, -2, -1]),
    ("ifft_1d", "ifft1", "x", "ifftnd", [4], [-1]),
    ("ifft_2d", "ifft2", "x", "ifftnd", [4, 4], [-2, -1]),
    ("ifft_3d", "ifft3", "x", "ifftnd", [2, 4, 4], [-3, -2, -1]),
    ("rfft_1d", "rfft1", "r", "rfftnd", [4], [-1]),
    ("rfft_2d", "rfft2", "r", "rfftnd", [4, 4], [-2, -1]),
    ("rfft_2d", "rfft2_cropped", "r", "rfftnd", [2, 2], [-2, -1]),
    ("rfft_3d", "rfft3", "r", "rfftnd", [2, 4, 4], [-3, -2, -1]),
    ("irfft_1d", "irfft1", "h", "irfftnd", [4], [-1]),
    ("irfft_2d", "irfft2", "h", "irfftnd", [4, 4], [-2, -1]),
    ("irfft_2d", "irfft2_cropped", "h", "irfftnd", [2, 2], [-2, -1]),
    ("irfft_3d", "irfft3", "h", "irfftnd", [2, 4, 4], [-3, -2, -1]),
]


def _fft_reference(inputs: Inputs) -> Inputs:
    """numpy.fft zero-pads like the wrapper and crops like the kernel; irfftn reads the first
    fft_length/2+1 bins of the last axis and fft_length of the others, as IRFFTND does."""
    outputs: Inputs = {}
    for signature, output, name, op, fft_length, axes in _FFT_CASES:
        feed = inputs[signature][name]
        transform = {"fftnd": np.fft.fftn, "ifftnd": np.fft.ifftn, "rfftnd": np.fft.rfftn, "irfftnd": np.fft.irfftn}[op]
        wide = feed.astype(np.float64 if op == "rfftnd" else np.complex128)
        result = transform(wide, s=fft_length, axes=axes)
        outputs.setdefault(signature, {})[output] = result.astype(np.float32 if op == "irfftnd" else np.complex64)
    return outputs


def build_fft_nd() -> Built:
    import tensorflow as tf

    unknown = [None, None, None, None]
    # x and y have static shapes (TF records FFTND's output shape right only when fft_length is
    # the input's size); u, r and h have unknown sizes (the ND ops' recorded shapes are then
    # unknown, not wrong), which lets the crops and the real transforms convert.
    specs = {"x": ([2, 2, 4, 4], tf.complex64), "y": ([3, 2], tf.complex64), "u": (unknown, tf.complex64),
             "r": (unknown, tf.float32), "h": (unknown, tf.complex64)}
    rng = np.random.default_rng(11)

    def small_complex(shape: tuple[int, ...]) -> np.ndarray:
        return (rng.integers(-4, 5, shape) + 1j * rng.integers(-4, 5, shape)).astype(np.complex64)

    values = {"x": small_complex((2, 2, 4, 4)), "y": small_complex((3, 2)), "u": small_complex((2, 2, 4, 4)),
              "r": rng.integers(-4, 5, (2, 2, 4, 4)).astype(np.float32), "h": small_complex((2, 2, 4, 3))}
    module = tf.Module()
    signatures: dict[str, Any] = {}
    inputs: Inputs = {}
    for signature in dict.fromkeys(case[0] for case in _FFT_CASES):
        cases = [case for case in _FFT_CASES if case[0] == signature]
        names = sorted({case[2] for case in cases})

        def call(*feeds: Any, cases: list[Any] = cases, names: list[str] = names) -> Any:
            by_name = dict(zip(names, feeds))
            return {output: getattr(tf.signal, op)(by_name[name], fft_length=fft_length, axes=axes)
                    for _, output, name, op, fft_length, axes in cases}

        function = tf.function(call, input_signature=[_spec(specs[n][0], specs[n][1], n) for n in names])
        setattr(module, signature, function)
        signatures[signature] = function
        inputs[signature] = {n: values[n] for n in names}
    return Built(module, signatures, inputs,
                 "tf.signal.fftnd / ifftnd / rfftnd / irfftnd over the 1, 2 and 3 innermost axes (negative "
                 "axes) with a constant fft_length: equal to the static input sizes, larger (the wrapper "
                 "zero-pads), and on inputs of unknown sizes, smaller (the kernel crops); one signature per "
                 "op and rank. Integer inputs and lengths 1, 2, 4 keep every transform exact.",
                 reference=_fft_reference,
                 reference_note="numpy.fft (the ND ops have only GPU kernels in the TensorFlow that saved this)")


def build_fft_nd_refused() -> Built:
    import tensorflow as tf

    class FftNdRefused(tf.Module):
        @tf.function(input_signature=[_spec([2, 2, 2, 2], tf.complex64, "x"), _spec([2, 4], tf.float32, "r")])
        def call(self, x: Any, r: Any) -> Any:
            return {
                "fft4": tf.signal.fftnd(x, fft_length=[2, 2, 2, 2], axes=[-4, -3, -2, -1]),  # four axes
                "rfft_default": tf.signal.rfftnd(r),  # default axes [0, 1]: innermost only if the rank is 2
                # static sizes TF records wrong (the input's): a cropping fft_length, a real transform
                "fft_cropped": tf.signal.fftnd(x, fft_length=[1, 2], axes=[-2, -1]),
                "rfft": tf.signal.rfftnd(r, fft_length=[4], axes=[-1]),
            }

    module = FftNdRefused()
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"x": np.ones((2, 2, 2, 2), np.complex64), "r": np.ones((2, 4), np.float32)}},
                 "tf.signal.fftnd over four axes, tf.signal.rfftnd with its default (positive) axes, and "
                 "fftnd with a cropping fft_length and rfftnd on static shapes (whose output shapes TF "
                 "records wrong).")


def build_conv_pool() -> Built:
    import tensorflow as tf

    raw = tf.raw_ops

    class ConvPool(tf.Module):
        # No public API writes the generic Conv op (TF 2.14): tf.nn.convolution, tf.nn.conv2d/conv3d
        # and Keras 3's TF backend write Conv2D / Conv3D, so the Conv nodes come from tf.raw_ops.
        @tf.function(input_signature=[_spec([2, 7, 6, 3], tf.float32, "image"), _spec([3, 3, 3, 4], tf.float32, "kernel"),
                                      _spec([2, 5, 4, 6, 2], tf.float32, "volume"), _spec([2, 3, 2, 2, 3], tf.float32, "kernel3d"),
                                      _spec([2, 7, 6, 3], tf.int32, "image_int")])
        def conv(self, image: Any, kernel: Any, volume: Any, kernel3d: Any, image_int: Any) -> Any:
            return {
                "same": raw.Conv(input=image, filter=kernel, strides=[1, 1, 1, 1], padding="SAME"),
                "valid_strided": raw.Conv(input=image, filter=kernel, strides=[1, 2, 2, 1], padding="VALID"),
                "explicit_dilated": raw.Conv(input=image, filter=kernel, strides=[1, 1, 1, 1], padding="EXPLICIT",
                                             explicit_paddings=[0, 0, 1, 2, 2, 0, 0, 0], dilations=[1, 2, 1, 1]),
                "half": raw.Conv(input=tf.cast(image, tf.float16), filter=tf.cast(kernel, tf.float16),
                                 strides=[1, 1, 1, 1], padding="SAME"),
                "int": raw.Conv(input=image_int, filter=tf.cast(kernel * 4.0, tf.int32), strides=[1, 1, 1, 1],
                                padding="VALID", dilations=[1, 1, 2, 1]),
                "volume_same": raw.Conv(input=volume, filter=kernel3d, strides=[1, 1, 2, 1, 1], padding="SAME"),
                "volume_valid": raw.Conv(input=tf.cast(volume, tf.float64), filter=tf.cast(kernel3d, tf.float64),
                                         strides=[1, 1, 1, 1, 1], padding="VALID", dilations=[1, 1, 1, 1, 1]),
            }

        # tf.nn.max_pool2d with a padding list writes MaxPool padding="EXPLICIT" (TF 2.4).
        @tf.function(input_signature=[_spec([2, 5, 6, 8], tf.float32, "x"), _spec([2, 5, 6, 1], tf.int8, "small"),
                                      _spec([1, 4, 4, 2], tf.float64, "wide")])
        def pool(self, x: Any, small: Any, wide: Any) -> Any:
            return {
                "k2s1": tf.nn.max_pool2d(x, 2, 1, padding=[[0, 0], [1, 1], [1, 1], [0, 0]]),
                "k3s2": tf.nn.max_pool2d(x, 3, 2, padding=[[0, 0], [1, 2], [0, 2], [0, 0]]),
                "k2s3": tf.nn.max_pool2d(x, [2, 3], [3, 1], padding=[[0, 0], [1, 0], [2, 1], [0, 0]]),
                "half": tf.nn.max_pool2d(tf.cast(x, tf.float16), 2, 2, padding=[[0, 0], [1, 0], [0, 1], [0, 0]]),
                "bfloat16": tf.cast(tf.nn.max_pool2d(tf.cast(x, tf.bfloat16), 3, 1, padding=[[0, 0], [2, 2], [2, 2], [0, 0]]),
                                    tf.float32),
                "int8": tf.nn.max_pool2d(small, 2, 1, padding=[[0, 0], [1, 1], [0, 1], [0, 0]]),
                "uint8": tf.nn.max_pool2d(tf.cast(small, tf.uint8), 2, 1, padding=[[0, 0], [0, 1], [1, 1], [0, 0]]),
                "int32": tf.nn.max_pool2d(tf.cast(small, tf.int32), 2, 1, padding=[[0, 0], [1, 1], [1, 1], [0, 0]]),
                "double": tf.nn.max_pool2d(wide, 3, 1, padding=[[0, 0], [1, 1], [2, 2], [0, 0]]),
            }

    module = ConvPool()
    rng = np.random.default_rng(4)
    # Pooling data with the values a wrong pad constant would show: -inf (a window of only -inf
    # inputs gives the dtype's lowest value, not -inf), NaN (ignored by the kernel), the lowest
    # float and all-negative rows next to the padded edges.
    x = (rng.standard_normal((2, 5, 6, 8)) * 3 - 2).astype(np.float32)
    x[0, 0, 0, :] = -np.inf
    x[0, :, 5, 1] = -np.inf
    x[1, 4, :, 2] = np.nan
    x[1, 0, 0, 3] = np.nan
    x[0, 4, 5, :] = np.finfo(np.float32).min
    x[1, 1:3, 2:4, 4] = -np.inf
    small = rng.integers(-128, 128, (2, 5, 6, 1)).astype(np.int8)
    small[0, 0, :, 0] = -128
    small[1, :, 5, 0] = -128
    wide = np.full((1, 4, 4, 2), -np.inf)
    wide[0, 1, 1, 1] = -5.0
    return Built(module, {"conv": module.conv, "pool": module.pool},
                 {"conv": {"image": rng.standard_normal((2, 7, 6, 3)).astype(np.float32),
                           "kernel": rng.standard_normal((3, 3, 3, 4)).astype(np.float32),
                           "volume": rng.standard_normal((2, 5, 4, 6, 2)).astype(np.float32),
                           "kernel3d": rng.standard_normal((2, 3, 2, 2, 3)).astype(np.float32),
                           "image_int": rng.integers(-9, 10, (2, 7, 6, 3)).astype(np.int32)},
                  "pool": {"x": x, "small": small, "wide": wide}},
                 "tf.raw_ops.Conv (no public API writes it) in 2-D (float32 SAME / strided VALID / EXPLICIT "
                 "dilated, float16, int32 dilated) and 3-D (float32 SAME strided, float64 VALID); "
                 "tf.nn.max_pool2d with explicit paddings (MaxPool EXPLICIT) on float32 data holding -inf, NaN "
                 "and the lowest float, and on float16, bfloat16, float64, int8, uint8 and int32.")


def build_conv_pool_refused() -> Built:
    import tensorflow as tf

    raw = tf.raw_ops

    class Refused(tf.Module):
        @tf.function(input_signature=[_spec([1, 4, 4, 3], tf.float32, "image"), _spec([3, 3, 1, 3], tf.float32, "depthwise"),
                                      _spec([1, 3, 4, 4], tf.float32, "planar"), _spec([3, 3, 3, 2], tf.float32, "kernel")])
        def call(self, image: Any, depthwise: Any, planar: Any, kernel: Any) -> Any:
            return {
                "grouped": raw.Conv(input=image, filter=depthwise, strides=[1, 1, 1, 1], padding="SAME", groups=3),
                "channels_first": raw.Conv(input=planar, filter=kernel, strides=[1, 1, 1, 1], padding="SAME",
                                           data_format="CHANNELS_FIRST"),
                "batch_dims_2": raw.Conv(input=tf.reshape(image, [1, 1, 4, 4, 3]), filter=kernel, strides=[1, 1, 1, 1],
                                         padding="VALID", batch_dims=2),
                "pooled_nchw": tf.nn.max_pool2d(planar, 2, 1, padding=[[0, 0], [0, 0], [1, 1], [1, 1]], data_format="NCHW"),
                # TF rejects a pad as large as the window at run time; Pad + VALID would not.
                "pooled_pad_2_window_2": tf.nn.max_pool2d(image, 2, 1, padding=[[0, 0], [2, 0], [0, 0], [0, 0]]),
            }

    module = Refused()
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"image": np.ones((1, 4, 4, 3), np.float32), "depthwise": np.ones((3, 3, 1, 3), np.float32),
                                      "planar": np.ones((1, 3, 4, 4), np.float32), "kernel": np.ones((3, 3, 3, 2), np.float32)}},
                 "Conditional refusals (TF 2.21's CPU kernels run none of them): tf.raw_ops.Conv with groups=3, "
                 "CHANNELS_FIRST and batch_dims=2; tf.nn.max_pool2d with explicit paddings in "
                 "NCHW and with a pad as large as the window.")


def _anonymous_tables(kinds: tuple[str, ...]) -> Built:
    """Tables built with experimental_is_anonymous=True, read by two signatures in separate runs;
    mutable entries come from the checkpoint."""
    import tensorflow as tf

    class Tables(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            keys = tf.constant([1, 2, 3], tf.int64)
            self.tables: dict[str, Any] = {}
            if "static" in kinds:
                self.static = tf.lookup.StaticHashTable(
                    tf.lookup.KeyValueTensorInitializer(keys, tf.constant([10.0, 20.0, 30.0])), -1.0,
                    experimental_is_anonymous=True)
            if "mutable" in kinds:
                self.mutable = tf.lookup.experimental.MutableHashTable(tf.int64, tf.float32, -1.0,
                                                                       experimental_is_anonymous=True)
                # Entries inserted before saving reach the model through the checkpoint (restore).
                self.mutable.insert(tf.constant([1, 5], tf.int64), tf.constant([0.5, 5.0]))
            if "vectors" in kinds:
                self.vectors = tf.lookup.experimental.MutableHashTable(tf.int64, tf.float32, [-1.0, -1.0],
                                                                       experimental_is_anonymous=True)
                self.vectors.insert(tf.constant([2], tf.int64), tf.constant([[2.0, 2.5]]))
            if "dense" in kinds:
                self.dense = tf.lookup.experimental.DenseHashTable(tf.int64, tf.float32, -1.0, empty_key=-100,
                                                                   deleted_key=-101, experimental_is_anonymous=True)
                self.dense.insert(tf.constant([3, 7], tf.int64), tf.constant([3.5, 7.0]))

        def _read(self, keys: Any) -> Any:
            found = {kind: getattr(self, kind).lookup(keys) for kind in kinds}
            if "mutable" in kinds:
                found["mutable_size"] = self.mutable.size()
            return found

        @tf.function(input_signature=[_spec([None], tf.int64, "keys")])
        def lookup(self, keys: Any) -> Any:
            return self._read(keys)

        @tf.function(input_signature=[_spec([None], tf.int64, "keys")])
        def lookup_again(self, keys: Any) -> Any:
            return self._read(keys)

    module = Tables()
    keys = np.array([1, 2, 3, 5, 7, 9], np.int64)
    apis = {"static": "tf.lookup.StaticHashTable (AnonymousHashTable)",
            "mutable": "MutableHashTable (AnonymousMutableHashTable)",
            "vectors": "MutableHashTable with vector values (AnonymousMutableHashTableOfTensors)",
            "dense": "DenseHashTable (AnonymousMutableDenseHashTable)"}
    return Built(module, {"lookup": module.lookup, "lookup_again": module.lookup_again},
                 {"lookup": {"keys": keys}, "lookup_again": {"keys": keys[::-1].copy()}},
                 ", ".join(apis[kind] for kind in kinds) + " built with experimental_is_anonymous=True; mutable "
                 "entries come from the checkpoint; two signatures read the same tables in separate runs.")


# One mutable table per fixture: TF 2.3's Python loader restores at most one (python_loader_caveats.py),
# and anonymous_tables_all shows that limit.
def build_anonymous_tables() -> Built:
    return _anonymous_tables(("static", "mutable"))


def build_anonymous_vector_table() -> Built:
    return _anonymous_tables(("vectors",))


def build_anonymous_dense_table() -> Built:
    return _anonymous_tables(("dense",))


def build_anonymous_tables_all() -> Built:
    return _anonymous_tables(("static", "mutable", "vectors", "dense"))


def build_approx_top_k() -> Built:
    import tensorflow as tf

    class ApproxTopK(tf.Module):
        # approx_max_k / approx_min_k only run under XLA (ApproxTopK has no plain CPU kernel in 2.3).
        @tf.function(input_signature=[_spec([3, 6], tf.float32, "x"), _spec([2, 5], tf.float16, "h")],
                     jit_compile=True)
        def call(self, x: Any, h: Any) -> Any:
            max_values, max_indices = tf.math.approx_max_k(x, 3)
            min_values, min_indices = tf.math.approx_min_k(x, 2, recall_target=0.5)
            top1_values, top1_indices = tf.math.approx_max_k(x, 1)
            half_values, half_indices = tf.math.approx_max_k(h, 2)
            return {"max_values": max_values, "max_indices": max_indices, "min_values": min_values,
                    "min_indices": min_indices, "top1_values": top1_values, "top1_indices": top1_indices,
                    "half_values": half_values, "half_indices": half_indices}

    module = ApproxTopK()
    # Distinct values per row (ties and signed zeros are where XLA and TopKV2 differ: see the rules),
    # with +-inf and a -0.0 that has no +0.0 to tie with.
    x = np.array([[0.5, 3.0, -1.0, 2.0, 7.0, -0.0],
                  [np.inf, -2.5, 4.0, -np.inf, 1.25, 8.0],
                  [-3.0, -1.5, -6.0, -0.25, -8.0, -7.0]], np.float32)
    h = np.array([[1.5, -2.0, 0.25, 3.0, -0.5], [6.0, 5.0, 4.0, 3.0, 2.0]], np.float16)
    return Built(module, {"serving_default": module.call}, {"serving_default": {"x": x, "h": h}},
                 "tf.math.approx_max_k (k 3 and 1, float32 and float16) and approx_min_k inside "
                 "tf.function(jit_compile=True) (ApproxTopK, TF 2.10), on rows of distinct values.")


def build_approx_top_k_refused() -> Built:
    import tensorflow as tf

    class ApproxTopKRefused(tf.Module):
        @tf.function(input_signature=[_spec([4, 3], tf.float32, "x")], jit_compile=True)
        def call(self, x: Any) -> Any:
            values, indices = tf.math.approx_max_k(x, 2, reduction_dimension=0)
            return {"values": values, "indices": indices}

    module = ApproxTopKRefused()
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    return Built(module, {"serving_default": module.call}, {"serving_default": {"x": x}},
                 "tf.math.approx_max_k over axis 0 (ApproxTopK with reduction_dimension=0), refused.")


# --- the issue's mixed models (tests/test_mixed_models.py): several rules in one model ----------
def write_mixed_rng_keras(export: Path) -> tuple[Inputs, str]:
    """Keras 3's own export route (keras.export.ExportArchive, what model.export() uses) with an
    endpoint that adds stateless random noise before the model. (A tf.Module holding a Keras 3
    model, saved with tf.saved_model.save, saves only some of its variables for the C++ loader.)"""
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)])
    # Dyadic weights keep the products exact; the noise makes the sums round, so "y" is compared
    # with a tolerance while "noise" must be bit-identical.
    model.set_weights([np.array([[0.5, -1.0, 0.25], [1.0, 0.5, -0.5], [0.0, 2.0, 1.0], [-0.25, 0.75, 0.5]], np.float32),
                       np.array([0.5, 0.0, -0.25], np.float32),
                       np.array([[1.0, -0.5], [0.5, 0.25], [-1.0, 2.0]], np.float32), np.array([0.0, 1.0], np.float32)])

    def noisy(x: Any, seed: Any) -> Any:
        noise = tf.random.stateless_normal(tf.shape(x), seed, stddev=0.1)
        keep = tf.random.stateless_uniform([], seed + 1) < 2.0  # always true: a uniform draw in the graph
        return {"y": model(x + noise), "noise": noise, "keep": keep}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", noisy, input_signature=[_spec([None, 4], tf.float32, "x"),
                                                                     _spec([2], tf.int32, "seed")])
    archive.write_out(str(export), verbose=False)
    inputs = {"serving_default": {"x": np.array([[1.0, 2.0, -1.0, 0.5], [0.0, -3.0, 4.0, 1.0]], np.float32),
                                  "seed": np.array([5, 9], np.int32)}}
    return inputs, ("A Keras 3 Sequential model exported with keras.export.ExportArchive, its endpoint adding "
                    "tf.random.stateless_normal noise (stateless RNG V2 ops + Keras layers + variables).")


def write_grouped_conv(export: Path) -> tuple[Inputs, str]:
    """Keras 3 Conv2D(groups=...) layers exported with model.export(): Keras runs a grouped
    convolution in a jit_compile function (TensorFlow's CPU Conv2D kernel has no grouped form)."""
    import keras
    import tensorflow as tf

    inputs = keras.Input((6, 6, 4), name="image")
    depthwise_x2 = keras.layers.Conv2D(8, 3, padding="same", groups=4, name="depthwise_x2")(inputs)  # filter [3,3,1,8]
    depthwise = keras.layers.Conv2D(8, 3, strides=2, padding="valid", groups=8, name="depthwise")(depthwise_x2)
    dense = keras.layers.Conv2D(2, 1, name="pointwise")(depthwise)  # groups=1: stays a Conv2D
    model = keras.Model(inputs, {"grouped": depthwise_x2, "out": dense})
    rng = np.random.default_rng(11)
    # Small dyadic weights and inputs: every product and sum is exact in float32, so the outputs
    # cannot depend on the order a kernel adds them in, and any difference is the rule's.
    model.set_weights([(rng.integers(-4, 5, w.shape) / 4).astype(np.float32) for w in model.get_weights()])
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda image: model(image),
                         input_signature=[_spec([None, 6, 6, 4], tf.float32, "image")])
    archive.write_out(str(export), verbose=False)
    image = (rng.integers(-8, 9, (2, 6, 6, 4)) / 8).astype(np.float32)
    return {"serving_default": {"image": image}}, (
        "Keras 3 Conv2D layers with groups equal to the input channels (channel multipliers 2 and 1, "
        "in a function Keras marks jit_compile), then an ordinary 1x1 Conv2D; exported with "
        "keras.export.ExportArchive.")


def write_grouped_conv_split(export: Path) -> tuple[Inputs, str]:
    """Keras 3 Conv2D layers with 1 < groups < channels, exported with model.export(): one
    Conv2D per group after the rewrite (rules/grouped-conv-split.yaml)."""
    import keras
    import tensorflow as tf

    inputs = keras.Input((7, 7, 4), name="image")
    two_groups = keras.layers.Conv2D(6, 3, padding="same", groups=2, name="two_groups")(inputs)  # filter [3,3,2,6]
    strided = keras.layers.Conv2D(4, 3, strides=2, padding="valid", groups=2, name="strided")(two_groups)  # [3,3,3,4]
    dilated = keras.layers.Conv2D(4, 2, dilation_rate=2, padding="same", groups=2, name="dilated")(strided)  # [2,2,2,4]
    model = keras.Model(inputs, {"two_groups": two_groups, "out": dilated})
    rng = np.random.default_rng(12)
    # Small dyadic weights and inputs: every product and sum is exact in float32, so the outputs
    # cannot depend on the order a kernel adds them in, and any difference is the rule's.
    model.set_weights([(rng.integers(-4, 5, w.shape) / 4).astype(np.float32) for w in model.get_weights()])
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda image: model(image),
                         input_signature=[_spec([None, 7, 7, 4], tf.float32, "image")])
    archive.write_out(str(export), verbose=False)
    image = (rng.integers(-8, 9, (2, 7, 7, 4)) / 8).astype(np.float32)
    return {"serving_default": {"image": image}}, (
        "Keras 3 Conv2D layers with 2 groups of 2 and 3 input channels (same padding; stride 2, "
        "valid; dilation 2), in a function Keras marks jit_compile; exported with "
        "keras.export.ExportArchive.")


def build_mixed_switch_tensor_array() -> Built:
    import tensorflow as tf

    class Loop(tf.Module):
        @tf.function(input_signature=[_spec([], tf.int32, "branch"), _spec([], tf.int32, "n"), _spec([3], tf.float32, "x")])
        def call(self, branch: Any, n: Any, x: Any) -> Any:
            ta = tf.TensorArray(tf.float32, size=0, dynamic_size=True)

            def body(i: Any, ta: Any) -> Any:
                step = tf.cast(i, tf.float32)
                value = tf.switch_case(branch, [lambda: x * step, lambda: x + step, lambda: -x])
                return i + 1, ta.write(i, value)

            _, ta = tf.while_loop(lambda i, ta: i < n, body, [tf.constant(0), ta])
            return {"stacked": ta.stack(), "size": ta.size()}

    module = Loop()
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"branch": np.array(1, np.int32), "n": np.array(5, np.int32),
                                      "x": np.array([1.0, -2.5, 3.0], np.float32)}},
                 "tf.switch_case inside a tf.while_loop that writes a growable TensorArray (StatelessCase + "
                 "TensorListSetItem resize_if_index_out_of_bounds).")


def build_mixed_topk_fft_matmul() -> Built:
    import tensorflow as tf

    class Mixed(tf.Module):
        @tf.function(input_signature=[_spec([2, 8], tf.float32, "x"), _spec([2, 3, 4], tf.int8, "a"),
                                      _spec([2, 4, 2], tf.int8, "b")])
        def call(self, x: Any, a: Any, b: Any) -> Any:
            values, indices = tf.math.top_k(x, tf.constant(3, tf.int64), index_type=tf.int64)
            spectrum = tf.signal.fft(tf.cast(x, tf.complex64))
            return {"values": values, "indices": indices, "spectrum": spectrum,
                    "product": tf.linalg.matmul(a, b, output_type=tf.int32)}

    module = Mixed()
    rng = np.random.default_rng(3)
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"x": rng.standard_normal((2, 8)).astype(np.float32),
                                      "a": rng.integers(-128, 128, (2, 3, 4)).astype(np.int8),
                                      "b": rng.integers(-128, 128, (2, 4, 2)).astype(np.int8)}},
                 "tf.math.top_k with an int64 k and int64 indices, tf.signal.fft, and "
                 "tf.linalg.matmul(int8, int8, output_type=tf.int32) in one tf.function.")


MIXED: dict[str, Callable[[], Built]] = {
    "mixed_switch_tensor_array": build_mixed_switch_tensor_array,
    "mixed_topk_fft_matmul": build_mixed_topk_fft_matmul,
}


def build_segments_v2() -> Built:
    import tensorflow as tf

    raw = tf.raw_ops  # no public API writes Segment*V2 (keras.ops.segment_* write the V1 / Unsorted* ops)

    class Segments(tf.Module):
        # The V2 ops have XLA kernels only, so a model that has them runs them with jit_compile.
        @tf.function(jit_compile=True, input_signature=[
            _spec([None, 3], tf.float32, "data"), _spec([None], tf.int32, "ids"),
            _spec([], tf.int32, "num_segments"), _spec([None, 2], tf.int32, "ints"),
            _spec([None], tf.int64, "ids64"), _spec([0, 3], tf.float32, "empty")])
        def call(self, data: Any, ids: Any, num_segments: Any, ints: Any, ids64: Any, empty: Any) -> Any:
            n64 = tf.cast(num_segments, tf.int64)
            none = tf.zeros([0], tf.int32)
            return {
                "sum": raw.SegmentSumV2(data=data, segment_ids=ids, num_segments=num_segments),
                "prod": raw.SegmentProdV2(data=data, segment_ids=ids, num_segments=num_segments),
                "max": raw.SegmentMaxV2(data=data, segment_ids=ids, num_segments=num_segments),
                "min": raw.SegmentMinV2(data=data, segment_ids=ids, num_segments=num_segments),
                # int64 ids and num_segments; fewer segments than ids: ids >= num_segments dropped
                "sum_int64_ids": raw.SegmentSumV2(data=data, segment_ids=ids64, num_segments=n64 - 2),
                "max_ints": raw.SegmentMaxV2(data=ints, segment_ids=tf.range(8, dtype=tf.int64) // 3, num_segments=n64),
                "prod_ints": raw.SegmentProdV2(data=ints, segment_ids=tf.range(8) // 3, num_segments=num_segments),
                "min_empty": raw.SegmentMinV2(data=empty, segment_ids=none, num_segments=num_segments),
                "sum_empty": raw.SegmentSumV2(data=empty, segment_ids=none, num_segments=num_segments),
                # unsorted ids (the V2 ops say "should be sorted"; XLA only takes it as a hint)
                "sum_unsorted": raw.SegmentSumV2(data=data, segment_ids=tf.reverse(ids, [0]),
                                                 num_segments=num_segments),
            }

    module = Segments()
    rng = np.random.default_rng(3)
    # 40 rows in 6 segments of a 9-segment output (1, 4, 7 and 8 empty): float32 values of mixed
    # magnitude, so a different summation order would show in the low bits.
    ids = np.sort(rng.choice([0, 2, 3, 5, 6], 41))[:40].astype(np.int32)
    ids[-3:] = 9  # past num_segments: XLA's scatter drops these rows
    ids[:2] = -1  # negative: dropped too
    data = (rng.standard_normal((40, 3)) * 10.0 ** rng.integers(-3, 6, (40, 3))).astype(np.float32)
    data[5, 1] = -np.inf
    ids64 = np.sort(rng.integers(0, 9, 40)).astype(np.int64)
    ints = rng.integers(-9, 9, (8, 2)).astype(np.int32)
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"data": data, "ids": ids, "num_segments": np.array(9, np.int32),
                                      "ints": ints, "ids64": ids64, "empty": np.zeros((0, 3), np.float32)}},
                 "tf.raw_ops.SegmentSumV2 / SegmentProdV2 / SegmentMaxV2 / SegmentMinV2 in a jit_compile "
                 "tf.function (their only kernels are XLA's): float32 rows of mixed magnitude, empty and "
                 "trailing empty segments, negative ids and ids past num_segments, unsorted ids, int32 data, "
                 "int64 ids and num_segments, an empty data tensor.")


def _gif(width: int, height: int, palette: list[list[int]], frames: list[tuple[int, int, int, int, Any]]) -> bytes:
    """A GIF89a of 4-colour frames (left, top, w, h, palette indices). Its LZW data holds literal
    codes only, with a clear code every two pixels so the code width stays 3 bits."""
    import struct

    def lzw(indices: Any) -> bytes:
        codes: list[int] = []
        for i, index in enumerate(indices):
            if i % 2 == 0:
                codes.append(4)  # clear
            codes.append(int(index))
        codes.append(5)  # end of information
        bits = nbits = 0
        packed = bytearray()
        for code in codes:
            bits |= code << nbits
            nbits += 3
            while nbits >= 8:
                packed.append(bits & 0xFF)
                bits >>= 8
                nbits -= 8
        if nbits:
            packed.append(bits & 0xFF)
        blocks = bytearray([2])  # minimum code size
        for i in range(0, len(packed), 255):
            blocks += bytes([len(packed[i:i + 255])]) + packed[i:i + 255]
        return bytes(blocks + b"\x00")

    data = bytearray(b"GIF89a" + struct.pack("<HH", width, height) + bytes([0xF1, 0, 0]))
    data += bytes(np.asarray(palette, np.uint8).ravel())
    if len(frames) > 1:
        data += b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for left, top, w, h, indices in frames:
        data += b"\x21\xF9\x04\x00\x0A\x00\x00\x00"  # graphic control: no disposal, 0.1 s
        data += b"\x2C" + struct.pack("<HHHH", left, top, w, h) + b"\x00"
        data += lzw(np.asarray(indices).ravel())
    return bytes(data + b"\x3B")


def _bmp(pixels: Any, top_down: bool = False) -> bytes:
    """A BITMAPINFOHEADER BMP of BGR or BGRA pixels [h, w, 3 or 4], rows padded to 4 bytes."""
    import struct

    height, width, channels = pixels.shape
    row = (width * channels + 3) // 4 * 4
    rows = pixels if top_down else pixels[::-1]
    body = b"".join(bytes(r.ravel()) + b"\x00" * (row - width * channels) for r in rows)
    info = struct.pack("<IiiHHIIiiII", 40, width, -height if top_down else height, 1, 8 * channels, 0, len(body),
                       2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + len(body), 0, 0, 54) + info + body


def _encoded_images() -> dict[str, bytes]:
    """Tiny images of each format DecodeImage sniffs. None ends in a NUL byte (numpy's bytes
    arrays, which data.npz holds, drop trailing NULs)."""
    import tensorflow as tf

    rng = np.random.default_rng(5)
    rows, cols = np.meshgrid(np.arange(16) * 15, np.arange(16) * 9, indexing="ij")
    smooth = np.stack([rows, cols, np.full((16, 16), 77)], -1)
    rgb = (smooth + rng.integers(0, 40, (16, 16, 3))).clip(0, 255).astype(np.uint8)
    palette = [[255, 0, 0], [0, 200, 0], [0, 0, 255], [250, 250, 10]]
    images = {
        "jpeg": tf.io.encode_jpeg(rgb, quality=90).numpy(),                    # colour, 4:2:0 chroma
        "jpeg_grey": tf.io.encode_jpeg(rgb[:, :, :1], quality=75).numpy(),
        "png": tf.io.encode_png(rgb[:5, :7]).numpy(),
        "png_rgba": tf.io.encode_png(rng.integers(0, 256, (4, 3, 4)).astype(np.uint8)).numpy(),
        "png_grey": tf.io.encode_png(rng.integers(0, 256, (3, 5, 1)).astype(np.uint8)).numpy(),
        "png16": tf.io.encode_png(rng.integers(0, 65536, (3, 4, 3)).astype(np.uint16)).numpy(),
        "gif": _gif(4, 3, palette, [(0, 0, 4, 3, rng.integers(0, 4, 12))]),
        "gif_frames": _gif(4, 3, palette, [(0, 0, 4, 3, rng.integers(0, 4, 12)), (0, 0, 4, 3, rng.integers(0, 4, 12)),
                                           (1, 1, 2, 2, rng.integers(0, 4, 4))]),
        "bmp": _bmp(rng.integers(1, 256, (3, 4, 3)).astype(np.uint8)),
        "bmp_rgba": _bmp(rng.integers(1, 256, (2, 5, 4)).astype(np.uint8), top_down=True),
        "bmp_grey": _bmp(rng.integers(1, 256, (3, 4, 1)).astype(np.uint8)),  # 8 bits per pixel, no palette
        "bmp_rgba_up": _bmp(rng.integers(1, 256, (2, 3, 4)).astype(np.uint8)),
    }
    assert all(not data.endswith(b"\x00") for data in images.values())
    return images


def build_decode_image() -> Built:
    import tensorflow as tf

    images = _encoded_images()
    jpeg_png = [n for n in sorted(images) if n.startswith(("jpeg", "png"))]  # what one channel decodes
    png_bmp = [n for n in sorted(images) if n.startswith(("png", "bmp"))]  # what four channels decode
    batch = tf.TensorSpec([None], tf.string)

    def each(contents: Any, dtype: Any = tf.uint8, **decode: Any) -> Any:
        """tf.io.decode_image in a loop over a batch (one DecodeImage node, many images): every
        image's pixels, flattened and concatenated, and its [rank, dims..., 0s]."""
        pixels = tf.TensorArray(dtype, size=tf.size(contents), infer_shape=False, element_shape=[None])
        shapes = tf.TensorArray(tf.int32, size=tf.size(contents), element_shape=[5])
        for i in tf.range(tf.size(contents)):
            image = tf.io.decode_image(contents[i], dtype=dtype, **decode)
            pixels = pixels.write(i, tf.reshape(image, [-1]))
            shapes = shapes.write(i, tf.concat([[tf.rank(image)], tf.shape(image), tf.zeros([4], tf.int32)], 0)[:5])
        return {"pixels": pixels.concat(), "shapes": shapes.stack()}

    class Decode(tf.Module):
        @tf.function(input_signature=[batch])
        def still(self, images: Any) -> Any:
            return each(images, expand_animations=False)

        @tf.function(input_signature=[batch])
        def still_rgb(self, images: Any) -> Any:
            return each(images, channels=3, expand_animations=False)

        @tf.function(input_signature=[batch])
        def animated(self, images: Any) -> Any:
            return each(images)

        @tf.function(input_signature=[batch])
        def animated_rgb(self, images: Any) -> Any:
            return each(images, channels=3)

        @tf.function(input_signature=[batch])
        def grey(self, images: Any) -> Any:
            return each(images, channels=1)

        @tf.function(input_signature=[batch])
        def rgba(self, images: Any) -> Any:
            return each(images, channels=4)

        # dtype uint16 and float32: the same, scaled (and PNG decoded in 16 bits)
        @tf.function(input_signature=[batch])
        def still_16(self, images: Any) -> Any:
            return each(images, tf.uint16, expand_animations=False)

        @tf.function(input_signature=[batch])
        def still_rgb_16(self, images: Any) -> Any:
            return each(images, tf.uint16, channels=3, expand_animations=False)

        @tf.function(input_signature=[batch])
        def animated_16(self, images: Any) -> Any:
            return each(images, tf.uint16)

        @tf.function(input_signature=[batch])
        def animated_rgb_16(self, images: Any) -> Any:
            return each(images, tf.uint16, channels=3)

        @tf.function(input_signature=[batch])
        def grey_16(self, images: Any) -> Any:
            return each(images, tf.uint16, channels=1)

        @tf.function(input_signature=[batch])
        def rgba_16(self, images: Any) -> Any:
            return each(images, tf.uint16, channels=4)

        @tf.function(input_signature=[batch])
        def still_float(self, images: Any) -> Any:
            return each(images, tf.float32, expand_animations=False)

        @tf.function(input_signature=[batch])
        def still_rgb_float(self, images: Any) -> Any:
            return each(images, tf.float32, channels=3, expand_animations=False)

        @tf.function(input_signature=[batch])
        def animated_float(self, images: Any) -> Any:
            return each(images, tf.float32)

        @tf.function(input_signature=[batch])
        def animated_rgb_float(self, images: Any) -> Any:
            return each(images, tf.float32, channels=3)

        @tf.function(input_signature=[batch])
        def grey_float(self, images: Any) -> Any:
            return each(images, tf.float32, channels=1)

        @tf.function(input_signature=[batch])
        def rgba_float(self, images: Any) -> Any:
            return each(images, tf.float32, channels=4)

    module = Decode()
    every = np.array([images[n] for n in sorted(images)])
    grey, rgba = np.array([images[n] for n in jpeg_png]), np.array([images[n] for n in png_bmp])
    feeds = {"serving_default": every, "still_rgb": every, "animated": every, "animated_rgb": every,
             "grey": grey, "rgba": rgba}
    # TF 2.21's DecodeImage aborts the process (std::bad_alloc) on a top-down BMP (negative height)
    # with dtype uint16 or float32: it sizes its buffer by the signed height. Left out there.
    for suffix in ("16", "float"):
        feeds.update({f"{'still' if key == 'serving_default' else key}_{suffix}": value[value != images["bmp_rgba"]]
                      for key, value in list(feeds.items()) if not key.endswith(("_16", "_float"))})
    functions = {key: getattr(module, "still" if key == "serving_default" else key) for key in feeds}
    return Built(module, functions, {key: {"images": value} for key, value in feeds.items()},
                 "tf.io.decode_image in tf.map_fn over a batch of images: expand_animations False and True, "
                 "channels 0, 1, 3 and 4, dtype uint8, uint16 and float32, on JPEG (colour 4:2:0, grey), PNG "
                 "(RGB, RGBA, grey, 16-bit), GIF (one and three frames, the third partial) and BMP (24-bit bottom-up, 32-bit top-down, 8-bit) "
                 "bytes made by TF's encoders and by hand; each image's pixels and shape are compared.")


def build_batch_norm_nchw() -> Built:
    """Fused batch norm in NCHW, as Keras 2 writes it (LayerNormalization: FusedBatchNormV3 NCHW,
    is_training true; BatchNormalization(axis=1): is_training false), through the public
    tf.compat.v1.nn.fused_batch_norm, plus FusedBatchNorm and FusedBatchNormV2 (tf.raw_ops: no
    public API writes them any more) and float16 data with float32 statistics."""
    import tensorflow as tf

    raw = tf.raw_ops
    fused = tf.compat.v1.nn.fused_batch_norm
    x_spec, c_spec = _spec([2, 3, 4, 4], tf.float32, "x"), _spec([3], tf.float32, "scale")

    class BatchNormNchw(tf.Module):
        @tf.function(input_signature=[x_spec, c_spec, _spec([3], tf.float32, "offset"),
                                      _spec([3], tf.float32, "mean"), _spec([3], tf.float32, "variance")])
        def inference(self, x: Any, scale: Any, offset: Any, mean: Any, variance: Any) -> Any:
            y, _, _ = fused(x, scale, offset, mean, variance, epsilon=0.001, data_format="NCHW", is_training=False)
            v1 = raw.FusedBatchNorm(x=x, scale=scale, offset=offset, mean=mean, variance=variance, epsilon=0.5,
                                    data_format="NCHW", is_training=False)
            v2 = raw.FusedBatchNormV2(x=x, scale=scale, offset=offset, mean=mean, variance=variance,
                                      data_format="NCHW", is_training=False)
            half, _, _ = fused(tf.cast(x, tf.float16), scale, offset, mean, variance, data_format="NCHW",
                               is_training=False)
            return {"v3": y, "v1": v1.y, "v2": v2.y, "half": half}

        @tf.function(input_signature=[x_spec, c_spec, _spec([3], tf.float32, "offset")])
        def training(self, x: Any, scale: Any, offset: Any) -> Any:
            y, mean, variance = fused(x, scale, offset, epsilon=0.001, data_format="NCHW", is_training=True)
            v1 = raw.FusedBatchNorm(x=x, scale=scale, offset=offset, mean=[], variance=[], data_format="NCHW")
            v2 = raw.FusedBatchNormV2(x=x, scale=scale, offset=offset, mean=[], variance=[], epsilon=0.25,
                                      data_format="NCHW")
            half, _, _ = fused(tf.cast(x, tf.float16), scale, offset, data_format="NCHW", is_training=True)
            return {"v3": y, "v3_mean": mean, "v3_variance": variance, "v1": v1.y, "v1_variance": v1.batch_variance,
                    "v2": v2.y, "v2_mean": v2.batch_mean, "half": half}

    module = BatchNormNchw()
    rng = np.random.default_rng(11)
    # Quarters, and 2*4*4 = 32 values per channel: sums, means (sum * 1/32) and variances are exact
    # whether a kernel multiplies by 1/n (Eigen) or divides by n, so a difference is the rewrite's fault.
    x = (rng.integers(-16, 17, (2, 3, 4, 4)) / 4).astype(np.float32)
    x[1, 2] += 100.0  # one channel far from zero: a layout mix-up would show as a large error
    stats = {"scale": np.array([1.0, 0.5, -2.0], np.float32), "offset": np.array([0.25, -1.0, 3.0], np.float32)}
    return Built(module, {"inference": module.inference, "training": module.training},
                 {"inference": {"x": x, **stats, "mean": np.array([0.5, -1.0, 100.0], np.float32),
                                "variance": np.array([4.0, 0.25, 1.0], np.float32)},
                  "training": {"x": x, **stats}},
                 "FusedBatchNormV3 (tf.compat.v1.nn.fused_batch_norm), FusedBatchNorm and FusedBatchNormV2 "
                 "(tf.raw_ops) with data_format NCHW, is_training false (given mean and variance) and true "
                 "(batch statistics, as Keras 2's LayerNormalization), float32 and float16 data.")


def build_pool_nchw() -> Built:
    """tf.nn.max_pool2d / avg_pool2d with data_format="NCHW" (Keras 2's channels_first pooling
    layers write the same ops), VALID and SAME, square and oblong windows and strides, on
    standard-normal float32 data: values no kernel computes exactly, so the fixture shows what a
    different order of work gives."""
    import tensorflow as tf

    class PoolNchw(tf.Module):
        @tf.function(input_signature=[_spec([2, 3, 7, 6], tf.float32, "x")])
        def pool(self, x: Any) -> Any:
            nchw = {"data_format": "NCHW"}
            return {
                "max_2x2_valid": tf.nn.max_pool2d(x, 2, 2, "VALID", **nchw),
                "max_3x3_same": tf.nn.max_pool2d(x, 3, 2, "SAME", **nchw),
                "max_3x2_same": tf.nn.max_pool2d(x, [3, 2], [1, 2], "SAME", **nchw),
                "avg_2x2_valid": tf.nn.avg_pool2d(x, 2, 2, "VALID", **nchw),
                "avg_3x3_same": tf.nn.avg_pool2d(x, 3, 1, "SAME", **nchw),
                "avg_3x2_same": tf.nn.avg_pool2d(x, [3, 2], [2, 1], "SAME", **nchw),
            }

    module = PoolNchw()
    x = np.random.default_rng(12).standard_normal((2, 3, 7, 6)).astype(np.float32)
    x[1, 2] += 50.0  # one channel far from the others: a layout mix-up shows as a large error
    x[0, 1, 0, 0] = np.nan  # a NaN at a window's first element, and -inf inside one
    x[1, 0, 3, 3] = -np.inf
    return Built(module, {"pool": module.pool}, {"pool": {"x": x}},
                 "tf.nn.max_pool2d and tf.nn.avg_pool2d with data_format NCHW (VALID and SAME; 2x2, 3x3 and "
                 "3x2 windows; equal and unequal strides) on standard-normal float32 data.")


def build_conv_nchw() -> Built:
    """tf.nn.conv2d, depthwise_conv2d and conv3d in channels-first layouts (Keras 2's
    channels_first Conv layers write the same ops), strided and dilated, on dyadic data (sums exact
    in any order), and max_pool3d / avg_pool3d in NCDHW on standard-normal data."""
    import tensorflow as tf

    class ConvNchw(tf.Module):
        @tf.function(input_signature=[_spec([2, 3, 7, 6], tf.float32, "image"), _spec([3, 3, 3, 4], tf.float32, "kernel"),
                                      _spec([3, 2, 3, 2], tf.float32, "depthwise"),
                                      _spec([2, 2, 4, 5, 5], tf.float32, "volume"), _spec([2, 3, 2, 2, 3], tf.float32, "kernel3d")])
        def conv(self, image: Any, kernel: Any, depthwise: Any, volume: Any, kernel3d: Any) -> Any:
            return {
                "conv2d_same": tf.nn.conv2d(image, kernel, 1, "SAME", data_format="NCHW"),
                "conv2d_strided_dilated": tf.nn.conv2d(image, kernel, [1, 1, 2, 1], "VALID", data_format="NCHW",
                                                       dilations=[1, 1, 1, 2]),
                "depthwise_same": tf.nn.depthwise_conv2d(image, depthwise, [1, 1, 2, 2], "SAME", data_format="NCHW"),
                # EXPLICIT pads, uneven per side: a pair moved with the wrong dimension shows in the shape
                "conv2d_explicit": tf.nn.conv2d(image, kernel, [1, 1, 1, 2], [[0, 0], [0, 0], [2, 0], [1, 3]],
                                                data_format="NCHW"),
                "depthwise_explicit": tf.nn.depthwise_conv2d(image, depthwise, [1, 1, 1, 1], [[0, 0], [0, 0], [0, 1], [2, 1]],
                                                             data_format="NCHW"),
                "conv3d_same": tf.nn.conv3d(volume, kernel3d, [1, 1, 1, 2, 1], "SAME", data_format="NCDHW"),
            }

        @tf.function(input_signature=[_spec([2, 3, 4, 5, 6], tf.float32, "volume")])
        def pool(self, volume: Any) -> Any:
            return {
                "max3d_valid": tf.nn.max_pool3d(volume, 2, 2, "VALID", data_format="NCDHW"),
                "max3d_same": tf.nn.max_pool3d(volume, [2, 3, 2], [1, 2, 2], "SAME", data_format="NCDHW"),
                "avg3d_valid": tf.nn.avg_pool3d(volume, 2, 2, "VALID", data_format="NCDHW"),
                "avg3d_same": tf.nn.avg_pool3d(volume, 3, [2, 1, 2], "SAME", data_format="NCDHW"),
            }

    module = ConvNchw()
    rng = np.random.default_rng(13)

    def dyadic(shape: tuple[int, ...], denominator: int) -> Any:
        return (rng.integers(-8, 9, shape) / denominator).astype(np.float32)

    pool_volume = rng.standard_normal((2, 3, 4, 5, 6)).astype(np.float32)
    pool_volume[1, 2] += 50.0  # one channel far from the others: a layout mix-up shows
    return Built(module, {"conv": module.conv, "pool": module.pool},
                 {"conv": {"image": dyadic((2, 3, 7, 6), 4), "kernel": dyadic((3, 3, 3, 4), 8),
                           "depthwise": dyadic((3, 2, 3, 2), 8), "volume": dyadic((2, 2, 4, 5, 5), 4),
                           "kernel3d": dyadic((2, 3, 2, 2, 3), 8)},
                  "pool": {"volume": pool_volume}},
                 "tf.nn.conv2d (SAME; VALID strided and dilated; EXPLICIT), tf.nn.depthwise_conv2d (SAME; EXPLICIT) and tf.nn.conv3d in "
                 "NCHW / NCDHW on dyadic data (sums exact in any order); tf.nn.max_pool3d and avg_pool3d in NCDHW "
                 "on standard-normal float32 data.")


def build_type_widening() -> Built:
    """Index and output types that an op's type attr accepts only since 2.9-2.13 (rules/type-widening.yaml's
    widen-* rules): each op written by its public API with an int8 / int16 / uint16 index or output, one
    signature per op, so each rule's golden file holds only the function it rewrote."""
    import tensorflow as tf

    module = tf.Module()
    rng = np.random.default_rng(12)
    data_value = rng.integers(-50, 50, (6, 3)).astype(np.float32)
    scores_value = rng.permutation(28).reshape(4, 7).astype(np.float32)  # no ties
    data = _spec([6, 3], tf.float32, "data")
    cases: dict[str, tuple[list[Any], Callable[..., Any], dict[str, np.ndarray]]] = {
        # Tindices int16; -1 is dropped
        "segment_sum": ([data, _spec([6], tf.int16, "ids")],
                        lambda d, ids: {"sum": tf.math.unsorted_segment_sum(d, ids, 4)},
                        {"ids": np.array([0, 3, 1, -1, 3, 2], np.int16)}),
        "gather": ([data, _spec([4], tf.int16, "picks")],  # GatherV2, Tindices int16
                   lambda d, picks: {"rows": tf.gather(d, picks)}, {"picks": np.array([5, 0, 2, 2], np.int16)}),
        "gather_nd": ([data, _spec([2, 1], tf.int16, "nd")],  # GatherNd, Tindices int16
                      lambda d, nd: {"rows": tf.gather_nd(d, nd)}, {"nd": np.array([[4], [1]], np.int16)}),
        "one_hot": ([_spec([5], tf.int8, "labels")],  # TI int8; -1 is all zeros
                    lambda labels: {"one_hot": tf.one_hot(labels, 4)}, {"labels": np.array([0, 3, -1, 2, 1], np.int8)}),
        "split": ([data, _spec([3], tf.int8, "sizes")],  # SplitV, Tlen int8; -1: the rest
                  lambda d, sizes: dict(zip(("first", "second", "third"), tf.split(d, sizes))),
                  {"sizes": np.array([1, -1, 2], np.int8)}),
        "argmax": ([_spec([4, 7], tf.float32, "scores")],  # output_type int16 / uint16
                   lambda scores: {"int16": tf.argmax(scores, axis=1, output_type=tf.int16),
                                   "uint16": tf.argmax(scores, axis=0, output_type=tf.uint16)}, {}),
    }
    signatures: dict[str, Any] = {}
    inputs: Inputs = {}
    for name, (specs, body, values) in cases.items():
        function = tf.function(body, input_signature=specs)
        setattr(module, name, function)
        signatures[name] = function
        feeds = {"data": data_value, "scores": scores_value, **values}
        inputs[name] = {spec.name: feeds[spec.name] for spec in specs}
    return Built(module, signatures, inputs,
                 "int8 / int16 / uint16 index and output types (UnsortedSegmentSum, GatherV2, GatherNd, OneHot, SplitV, "
                 "ArgMax) that TF 2.3's kernels do not take, one signature per op")


def build_narrow_arithmetic() -> Built:
    """Integer arithmetic on types an op's T accepts only since 2.4-2.8 (rules/type-widening.yaml's
    widen-*-t-to-* rules): tf.math.maximum, minimum, floormod, add (AddV2), sign and square on int8 /
    int16 / uint8 / uint16 / uint32, one signature per op and type, on the edges: 0, 1, -1, the type's
    min and max, sums that wrap (65535 + 1, 4294967295 + 1), squares that wrap, negative dividends and
    divisors. No zero divisor: FloorMod fails on it (Integer division by zero) in both forms. Then the
    types TF 1.15 rejects (the widen-*-tf1 rows): maximum, minimum, subtract, equal, not_equal, square
    and negative, with differences and negations that wrap (0 - 1 in uint32, -(-128) in int8)."""
    import tensorflow as tf

    module = tf.Module()
    ints = {  # the dividends / left operands and divisors / right operands of each type
        "int8": ([0, 1, -1, -128, 127, -128, 127, -128, 5, -5, 5, -5, 100, -100],
                 [1, -1, 1, -1, -1, 127, -128, 1, 3, 3, -3, -3, -7, 7]),
        "int16": ([0, 1, -1, -32768, 32767, -32768, 32767, -32768, 5, -5, 5, -5, 30000, -30000],
                  [1, -1, 1, -1, -1, 32767, -32768, 1, 3, 3, -3, -3, -7, 7]),
        "uint8": ([0, 1, 255, 255, 254, 7, 200, 128], [1, 255, 1, 255, 255, 3, 7, 128]),
        "uint16": ([0, 1, 65535, 65535, 65534, 7, 40000, 32768], [1, 65535, 1, 65535, 65535, 3, 30000, 32768]),
        "uint32": ([0, 1, 4294967295, 4294967295, 4294967294, 7, 3000000000, 2147483648],
                   [1, 4294967295, 1, 4294967295, 4294967295, 3, 2999999999, 2147483648]),
    }
    unary = {"int8": [0, 1, -1, -128, 127, -127, 5], "int16": [0, 1, -1, -32768, 32767, -32767, 5],
             "uint8": [0, 1, 15, 16, 128, 255, 200], "uint16": [0, 1, 255, 256, 32768, 65535, 40000]}
    binary_ops = {"maximum": (tf.math.maximum, ["int8", "uint16", "uint32"]),
                  "minimum": (tf.math.minimum, ["int8", "uint16", "uint32"]),
                  "floormod": (tf.math.floormod, ["int8", "int16", "uint8", "uint16", "uint32"]),
                  "add": (tf.math.add, ["uint16", "uint32"])}  # AddV2
    unary_ops = {"sign": (tf.math.sign, ["int8", "int16"]), "square": (tf.math.square, ["uint8", "uint16"])}
    # The types TF 1.15's OpDef rejects and 2.3's accepts (the widen-*-tf1 rows), traced after the
    # ones above so their functions keep their names.
    tf1_binary_ops = {"maximum": (tf.math.maximum, ["int16", "uint8"]),
                      "minimum": (tf.math.minimum, ["int16", "uint8"]),
                      "subtract": (tf.math.subtract, ["uint32"]),
                      "equal": (tf.math.equal, ["uint16", "uint32"]),
                      "not_equal": (tf.math.not_equal, ["uint16", "uint32"])}
    # (Round on int8 / int16, which 2.3's OpDef takes too, has no CPU kernel in TF 2.21: nothing to rewrite)
    tf1_unary_ops = {"square": (tf.math.square, ["int8", "int16"]), "negative": (tf.math.negative, ["int8", "int16"])}
    signatures: dict[str, Any] = {}
    inputs: Inputs = {}

    def add(key: str, specs: list[Any], body: Callable[..., Any], values: dict[str, np.ndarray]) -> None:
        function = tf.function(body, input_signature=specs)
        setattr(module, key, function)
        signatures[key] = function
        inputs[key] = values

    def binary(op: Callable[..., Any]) -> Callable[..., Any]:
        return lambda a, b: {"z": op(a, b)}

    def unary_body(op: Callable[..., Any]) -> Callable[..., Any]:
        return lambda a: {"z": op(a)}

    for binaries, unaries in ((binary_ops, unary_ops), (tf1_binary_ops, tf1_unary_ops)):
        for op_name, (op, types) in binaries.items():
            for type_name in types:
                dtype = tf.as_dtype(type_name)
                x, y = (np.array(v, type_name) for v in ints[type_name])
                add(f"{op_name}_{type_name}", [_spec([len(x)], dtype, "x"), _spec([len(y)], dtype, "y")],
                    binary(op), {"x": x, "y": y})
        for op_name, (op, types) in unaries.items():
            for type_name in types:
                x = np.array(unary[type_name], type_name)
                add(f"{op_name}_{type_name}", [_spec([len(x)], tf.as_dtype(type_name), "x")],
                    unary_body(op), {"x": x})
    return Built(module, signatures, inputs,
                 "Maximum, Minimum, FloorMod, AddV2, Sign and Square on int8 / int16 / uint8 / uint16 / uint32 "
                 "(types TF 2.3 has no kernel for), and Maximum, Minimum, Sub, Equal, NotEqual, Square and Neg "
                 "on the narrow types TF 1.15 rejects, one signature per op and type, on edge values: the "
                 "type's min and max, 0, 1, -1, wrapping sums, differences, squares and negations, negative "
                 "dividends and divisors")


# --- TF 1.15 rules (rules/tf1-*.yaml): ops added in 2.0-2.3 -------------------------------- #
def build_tf1_bincount() -> Built:
    """DenseBincount as tf.math.bincount and Keras 3's CategoryEncoding write it: 1-D and 2-D,
    counts and binary_output, int32 and int64 values, float32 / float64 / int32 / int64 bins, a size
    given at run time (minlength = maxlength) that drops the larger values, and no rows at all."""
    import keras
    import tensorflow as tf

    count = keras.layers.CategoryEncoding(num_tokens=5, output_mode="count")
    multi_hot = keras.layers.CategoryEncoding(num_tokens=5, output_mode="multi_hot")

    class Bincounts(tf.Module):
        @tf.function(input_signature=[_spec([None, 4], tf.int64, "ids"), _spec([None], tf.int32, "flat"),
                                      _spec([], tf.int32, "size")])
        def call(self, ids: Any, flat: Any, size: Any) -> Any:
            size64 = tf.cast(size, tf.int64)
            return {
                "rows": tf.math.bincount(ids, minlength=size64, maxlength=size64, axis=-1),
                "rows_binary": tf.math.bincount(ids, minlength=size64, maxlength=size64, axis=-1,
                                                binary_output=True, dtype=tf.float64),
                "rows_int32": tf.math.bincount(tf.cast(ids, tf.int32), minlength=size, maxlength=size,
                                               axis=-1, dtype=tf.int32),
                "flat": tf.math.bincount(flat, minlength=size, maxlength=size),
                "flat_binary": tf.math.bincount(flat, minlength=size, maxlength=size, binary_output=True,
                                                dtype=tf.int64),
                "flat_all": tf.math.bincount(ids),  # no axis: the flattened values, size max + 1
                "count": count(ids),
                "multi_hot": multi_hot(ids),
            }

    module = Bincounts()
    rng = np.random.default_rng(11)
    ids = rng.integers(0, 9, (5, 4)).astype(np.int64)  # values 6..8 are >= size: dropped
    ids[1] = [2, 2, 2, 2]  # one value four times
    return Built(
        module, {"serving_default": module.call, "no_rows": module.call},
        {"serving_default": {"ids": ids, "flat": rng.integers(0, 9, 23).astype(np.int32),
                             "size": np.array(6, np.int32)},
         "no_rows": {"ids": np.zeros((0, 4), np.int64), "flat": np.zeros(0, np.int32),
                     "size": np.array(3, np.int32)}},
        "tf.math.bincount with axis=-1 (counts and binary_output, float32 / float64 / int32 bins, "
        "int64 and int32 values), 1-D tf.math.bincount (int32 and int64 bins, with and without "
        "binary_output, and with no axis on a 2-D input), and Keras 3 CategoryEncoding in count and "
        "multi_hot mode: all DenseBincount. A run-time size of 6 drops the values 6 to 8; a second "
        "signature feeds no rows at all. (Keras 3's CategoryEncoding(num_tokens=5) drops values >= 5.)",
    )


def build_tf1_bincount_refused() -> Built:
    """DenseBincount with float weights (tf.math.bincount(weights=...)): refused for TF 1.15."""
    import tensorflow as tf

    class Weighted(tf.Module):
        @tf.function(input_signature=[_spec([None, 3], tf.int64, "ids"), _spec([None, 3], tf.float32, "weights")])
        def call(self, ids: Any, weights: Any) -> Any:
            return {"weighted": tf.math.bincount(ids, weights=weights, axis=-1)}

    module = Weighted()
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"ids": np.array([[0, 1, 1]], np.int64),
                                      "weights": np.array([[0.5, 0.25, 2.0]], np.float32)}},
                 "tf.math.bincount with float32 weights and axis=-1: DenseBincount with weights.")


def build_tf1_segments() -> Built:
    """SparseSegment* with int64 segment ids and indices, as tf.sparse.segment_* and
    embedding_lookup_sparse (a SparseTensor's int64 ids) write them: empty segments in between,
    float32 sums of mixed magnitudes, int64 and int32 num_segments. Means and square-root means
    average whole numbers over 1, 4 or 16 rows, so they are exact: TF 1.15's mean kernel divides
    otherwise-identical sums in another way than 2.21's (last-bit differences with int32 ids too)."""
    import tensorflow as tf

    class Segments(tf.Module):
        @tf.function(input_signature=[_spec([None, 3], tf.float32, "data"), _spec([None, 3], tf.float32, "whole"),
                                      _spec([None], tf.int32, "indices"), _spec([None], tf.int64, "ids"),
                                      _spec([None, 2], tf.int64, "sparse_indices"),
                                      _spec([None], tf.int64, "sparse_ids")])
        def call(self, data: Any, whole: Any, indices: Any, ids: Any, sparse_indices: Any, sparse_ids: Any) -> Any:
            sparse = tf.SparseTensor(sparse_indices, sparse_ids, [4, 4])
            return {
                "sum": tf.sparse.segment_sum(data, indices, ids),
                "mean": tf.sparse.segment_mean(whole, indices, ids),
                "sqrt_n": tf.sparse.segment_sqrt_n(whole, indices, ids),
                "sum_n": tf.sparse.segment_sum(data, indices, ids, num_segments=tf.constant(7, tf.int64)),
                "mean_n": tf.sparse.segment_mean(whole, indices, ids, num_segments=7),
                "sqrt_n_n": tf.sparse.segment_sqrt_n(whole, indices, ids, num_segments=7),
                "embedding_mean": tf.nn.embedding_lookup_sparse(whole, sparse, None, combiner="mean"),
                "embedding_sqrtn": tf.nn.embedding_lookup_sparse(whole, sparse, None, combiner="sqrtn"),
                "embedding_sum": tf.nn.embedding_lookup_sparse(data, sparse, None, combiner="sum"),
            }

    module = Segments()
    rng = np.random.default_rng(5)
    data = (rng.standard_normal((12, 3)) * 10.0 ** rng.integers(-3, 5, (12, 3))).astype(np.float32)
    whole = rng.integers(-50, 50, (12, 3)).astype(np.float32)
    ids = np.array([0] * 4 + [1] + [3] * 16 + [5], np.int64)  # 2 and 4 empty; 16 rows in segment 3
    indices = rng.integers(0, 12, ids.size).astype(np.int32)
    sparse_indices = np.array([[0, 0], [0, 1], [0, 2], [0, 3], [2, 0], [3, 1]], np.int64)  # row 1 empty
    return Built(
        module, {"serving_default": module.call},
        {"serving_default": {"data": data, "whole": whole, "indices": indices, "ids": ids,
                             "sparse_indices": sparse_indices, "sparse_ids": rng.integers(0, 12, 6).astype(np.int64)}},
        "tf.sparse.segment_sum / segment_mean / segment_sqrt_n with int64 segment ids (empty segments "
        "between, 16 rows in one segment), with and without num_segments (int64 and int32), and "
        "tf.nn.embedding_lookup_sparse with the mean, sqrtn and sum combiners (int64 indices): "
        "SparseSegment* ops with Tsegmentids and Tidx int64. Sums of mixed magnitudes; means over "
        "1, 4 or 16 whole numbers.",
    )


def build_tf1_matrix_diag() -> Built:
    """tf.linalg.diag / diag_part / set_diag (MatrixDiagV3, MatrixDiagPartV3, MatrixSetDiagV3):
    one diagonal as k = 0, 1 and (1, 1), and bands of several diagonals with align LEFT_LEFT,
    with num_rows / num_cols and a padding value."""
    import tensorflow as tf

    class Diagonals(tf.Module):
        @tf.function(input_signature=[_spec([2, 4, 5], tf.float32, "m"), _spec([2, 4], tf.float32, "v"),
                                      _spec([2, 3, 4], tf.float32, "band")])
        def call(self, m: Any, v: Any, band: Any) -> Any:
            return {
                "diag": tf.linalg.diag(v),
                "diag_k1": tf.linalg.diag(v, k=1, num_rows=4, num_cols=7, padding_value=-1.0),
                "diag_k11": tf.linalg.diag(v, k=(1, 1)),
                "part": tf.linalg.diag_part(m),
                "part_k1": tf.linalg.diag_part(m, k=1, padding_value=9.0),
                "set": tf.linalg.set_diag(m, v),
                "set_k_1": tf.linalg.set_diag(m, v[:, :3], k=-1),
                "diag_band": tf.linalg.diag(band, k=(-1, 1), num_rows=4, num_cols=5, align="LEFT_LEFT"),
                "part_band": tf.linalg.diag_part(m, k=(-2, 1), padding_value=7.0, align="LEFT_LEFT"),
                "set_band": tf.linalg.set_diag(m, band, k=(-1, 1), align="LEFT_LEFT"),
            }

    module = Diagonals()
    rng = np.random.default_rng(13)
    return Built(
        module, {"serving_default": module.call},
        {"serving_default": {"m": rng.standard_normal((2, 4, 5)).astype(np.float32),
                             "v": rng.standard_normal((2, 4)).astype(np.float32),
                             "band": rng.standard_normal((2, 3, 4)).astype(np.float32)}},
        "tf.linalg.diag, diag_part and set_diag with one diagonal (k = 0, 1, -1 and (1, 1); "
        "num_rows / num_cols and padding values) and with bands k = (-1, 1) / (-2, 1) packed "
        "align='LEFT_LEFT': MatrixDiagV3, MatrixDiagPartV3, MatrixSetDiagV3.",
    )


def build_tf1_matrix_diag_refused() -> Built:
    """A band of diagonals with the default align RIGHT_LEFT: refused for TF 1.15."""
    import tensorflow as tf

    class Band(tf.Module):
        @tf.function(input_signature=[_spec([3, 4], tf.float32, "m")])
        def call(self, m: Any) -> Any:
            return {"band": tf.linalg.diag_part(m, k=(-1, 1))}

    module = Band()
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"m": np.arange(12, dtype=np.float32).reshape(3, 4)}},
                 "tf.linalg.diag_part with k = (-1, 1) and the default align RIGHT_LEFT.")


def build_tf1_scan_dataset() -> Built:
    """A Python `for` loop over a tf.data.Dataset in a tf.function: AutoGraph writes ScanDataset
    with use_default_device = false (a running sum, a running product, an early break)."""
    import tensorflow as tf

    class Loop(tf.Module):
        @tf.function(input_signature=[_spec([None], tf.float32, "x")])
        def call(self, x: Any) -> Any:
            total = tf.constant(0.0)
            product = tf.constant(1.0)
            for value in tf.data.Dataset.from_tensor_slices(x):
                total += value
                product *= value
            steps = tf.constant(0, tf.int64)
            for step in tf.data.Dataset.range(100):
                if step * step > 30:
                    break
                steps = step
            return {"total": total, "product": product, "steps": steps}

    module = Loop()
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"x": np.array([1.5, -2.0, 0.25, 4.0, 3.0], np.float32)}},
                 "Python for loops over tf.data.Dataset.from_tensor_slices and Dataset.range in a "
                 "tf.function (a sum, a product, an early break): AutoGraph's ScanDataset with "
                 "use_default_device = false.")


def _examples(rows: list[dict[str, Any]]) -> np.ndarray:
    """Serialized tf.train.Examples: a float list, an int64 list or a bytes list per feature."""
    import tensorflow as tf

    def feature(values: Any) -> Any:
        if all(isinstance(v, bytes) for v in values):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        if all(isinstance(v, int) for v in values):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    serialized = [tf.train.Example(features=tf.train.Features(feature={k: feature(v) for k, v in row.items()}))
                  .SerializeToString() for row in rows]
    # numpy's fixed-width bytes (what data.npz and parity's --inputs hold) drop trailing NULs
    assert not any(s.endswith(b"\0") for s in serialized), "an example ends in a NUL byte"
    return np.array(serialized)


def build_tf1_parse_example() -> Built:
    """tf.io.parse_example on a batch (ParseExampleV2): fixed-length features with and without
    defaults, var-length (sparse) int64 and string features, a FixedLenSequenceFeature, and a
    second parse with dense features only."""
    import tensorflow as tf

    spec = {
        "price": tf.io.FixedLenFeature([2], tf.float32, default_value=[0.5, -1.0]),
        "city": tf.io.FixedLenFeature([], tf.string, default_value=b"none"),
        "age": tf.io.FixedLenFeature([], tf.int64),
        "tags": tf.io.VarLenFeature(tf.string),
        "clicks": tf.io.VarLenFeature(tf.int64),
        "history": tf.io.FixedLenSequenceFeature([], tf.float32, allow_missing=True),
    }

    class Parse(tf.Module):
        @tf.function(input_signature=[_spec([None], tf.string, "examples")])
        def call(self, examples: Any) -> Any:
            parsed = tf.io.parse_example(examples, spec)
            dense_only = tf.io.parse_example(examples, {"age": spec["age"]})
            return {
                "price": parsed["price"], "city": parsed["city"], "age": parsed["age"],
                "tags_indices": parsed["tags"].indices, "tags_values": parsed["tags"].values,
                "tags_shape": parsed["tags"].dense_shape, "clicks": tf.sparse.to_dense(parsed["clicks"]),
                "history": parsed["history"], "age_only": dense_only["age"],
            }

        @tf.function(input_signature=[_spec([], tf.string, "example")])
        def single(self, example: Any) -> Any:
            parsed = tf.io.parse_single_example(example, spec)
            return {"price": parsed["price"], "city": parsed["city"], "age": parsed["age"],
                    "tags_indices": parsed["tags"].indices, "tags_values": parsed["tags"].values,
                    "tags_shape": parsed["tags"].dense_shape, "clicks_shape": parsed["clicks"].dense_shape,
                    "history": parsed["history"]}

    module = Parse()
    examples = _examples([
        {"price": [1.25, 3.5], "city": [b"Oslo"], "age": [31], "tags": [b"a", b"bb"], "clicks": [3, 1, 4],
         "history": [0.5, 0.25, 2.0]},
        {"age": [7], "clicks": [9]},  # defaults for price and city, no tags, empty history
        {"price": [-2.0, 1e-30], "city": [b""], "age": [-5], "tags": [b"c"], "history": [1.0]},
    ])
    return Built(module, {"serving_default": module.call, "single": module.single},
                 {"serving_default": {"examples": examples}, "single": {"example": examples[0]}},
                 "tf.io.parse_example of a batch of tf.train.Examples: FixedLenFeature with and "
                 "without defaults (float32 [2], string, int64), VarLenFeature (string and int64), "
                 "FixedLenSequenceFeature(allow_missing=True), and a dense-only parse; signature "
                 "`single`: tf.io.parse_single_example of one. ParseExampleV2 without ragged features.")


def build_tf1_parse_example_refused() -> Built:
    """ParseExampleV2 with a RaggedFeature: refused for TF 1.15."""
    import tensorflow as tf

    class Ragged(tf.Module):
        @tf.function(input_signature=[_spec([None], tf.string, "examples")])
        def call(self, examples: Any) -> Any:
            parsed = tf.io.parse_example(examples, {"words": tf.io.RaggedFeature(tf.string)})
            return {"words": parsed["words"].flat_values}

    module = Ragged()
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"examples": _examples([{"words": [b"x", b"y"]}])}},
                 "tf.io.parse_example with a tf.io.RaggedFeature: ParseExampleV2 with ragged keys.")


def build_tf1_string_ngrams_pad() -> Built:
    """tf.strings.ngrams with pad_values on a batch with an empty row: StringNGrams with padding,
    whose TF 1.15 kernel reads past an empty row (CVE-2021-29542, fixed in 2.3.3): refused for 1.15.
    The outputs are numbers (each n-gram's length, the row lengths), so data.npz holds no strings."""
    import tensorflow as tf

    class NGrams(tf.Module):
        @tf.function(input_signature=[_spec([None], tf.string, "text")])
        def call(self, text: Any) -> Any:
            ngrams = tf.strings.ngrams(tf.strings.split(text), 2, separator="_", pad_values=("<s>", "</s>"))
            return {"lengths": tf.strings.length(ngrams.flat_values), "row_lengths": ngrams.row_lengths()}

    module = NGrams()
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"text": np.array([b"aa bb", b""])}},
                 "tf.strings.ngrams(width 2, pad_values=('<s>', '</s>')) of tf.strings.split on a batch with "
                 "an empty row: StringNGrams with pad_width -1 (width - 1).")


def build_tf1_ragged_bincount() -> Built:
    """RaggedBincount as tf.math.bincount(axis=-1) of a RaggedTensor writes it (and Keras
    TextVectorization / StringLookup in "count" and "multi_hot" mode): counts and binary_output,
    int64 and int32 values, float32 / int64 bins, a size given at run time (minlength = maxlength)
    that drops the larger values, empty rows, and no rows at all."""
    import tensorflow as tf

    class RaggedBincounts(tf.Module):
        @tf.function(input_signature=[_spec([None], tf.int64, "values"), _spec([None], tf.int64, "splits"),
                                      _spec([], tf.int32, "size")])
        def call(self, values: Any, splits: Any, size: Any) -> Any:
            ragged = tf.RaggedTensor.from_row_splits(values, splits)
            size64 = tf.cast(size, tf.int64)
            return {
                "counts": tf.math.bincount(ragged, minlength=size64, maxlength=size64, axis=-1),
                "binary": tf.math.bincount(ragged, minlength=size64, maxlength=size64, axis=-1, binary_output=True,
                                           dtype=tf.int64),
                "counts_int32": tf.math.bincount(tf.cast(ragged, tf.int32), minlength=size, maxlength=size, axis=-1),
            }

    module = RaggedBincounts()
    values = np.array([3, 0, 1, 7, 5, 0, 4, 4, 4, 9, 2], np.int64)  # 7 and 9 are >= size: dropped
    return Built(
        module, {"serving_default": module.call, "no_rows": module.call},
        {"serving_default": {"values": values, "splits": np.array([0, 0, 4, 4, 11], np.int64),  # empty rows 0 and 2
                             "size": np.array(6, np.int32)},
         "no_rows": {"values": np.zeros(0, np.int64), "splits": np.array([0], np.int64), "size": np.array(3, np.int32)}},
        "tf.math.bincount(axis=-1) of a RaggedTensor.from_row_splits (counts, binary_output, int32 and int64 "
        "values, float32 and int64 bins), with empty rows, values >= size, and no rows: RaggedBincount.")


def build_tf1_cumulative_logsumexp() -> Built:
    """tf.math.cumulative_logsumexp, exclusive and inclusive over -inf masked logits: TF 1.15's
    kernel starts the scan at the lowest float instead of -inf (refused for 1.15; bit-identical in
    2.3.4). The inputs hold -inf prefixes, so the inclusive output differs in 1.15 too."""
    import tensorflow as tf

    class Scans(tf.Module):
        @tf.function(input_signature=[_spec([None, 5], tf.float32, "x")])
        def call(self, x: Any) -> Any:
            masked = tf.where(x > 0.0, x, tf.fill(tf.shape(x), float("-inf")))
            return {"exclusive": tf.math.cumulative_logsumexp(x, axis=1, exclusive=True),
                    "inclusive_masked": tf.math.cumulative_logsumexp(masked, axis=1, reverse=True)}

    module = Scans()
    return Built(module, {"serving_default": module.call},
                 {"serving_default": {"x": np.array([[-1.0, 2.0, -3.0, 4.0, 0.5], [0.5, -1.0, -2.0, 3.0, -1.0]],
                                                    np.float32)}},
                 "tf.math.cumulative_logsumexp, exclusive, and reverse inclusive over logits masked to -inf "
                 "where x <= 0: CumulativeLogsumexp, which TF 1.15 starts at the lowest float, not -inf.")


FIXTURES: dict[str, Callable[[], Built]] = {
    "variables": build_variables,
    "stateless_rng": build_stateless_rng,
    "rng_raw_alg": build_rng_raw_alg,
    "stateless_gamma": build_stateless_gamma,
    "rng_threefry": build_rng_threefry,
    "rng_philox": build_rng_philox,
    "rng_full_int": build_rng_full_int,
    "rng_philox_full_int": lambda: build_rng_philox(full_int=True),
    "rng_computed_key": build_rng_computed_key,
    "xla_call_module": build_xla_call_module,
    "batch_matmul_v3": build_batch_matmul_v3,
    "switch_case": build_switch_case,
    "top_k_int64": build_top_k_int64,
    "gradient_flags": build_gradient_flags,
    "bad_indices_policy": build_bad_indices_policy,
    "growable_tensor_array": build_growable_tensor_array,
    "refusals_misc": build_int64_concat_offset_and_table_offset,
    "new_ops": build_new_ops,
    "image_transform_fill": build_image_transform_fill,
    "new_ops_refused": build_new_ops_refused,
    "image_transform_v2_modes": build_image_transform_v2_modes,
    "fft_nd": build_fft_nd,
    "fft_nd_refused": build_fft_nd_refused,
    "conv_pool": build_conv_pool,
    "conv_pool_refused": build_conv_pool_refused,
    "anonymous_tables": build_anonymous_tables,
    "anonymous_vector_table": build_anonymous_vector_table,
    "anonymous_dense_table": build_anonymous_dense_table,
    "anonymous_tables_all": build_anonymous_tables_all,
    "approx_top_k": build_approx_top_k,
    "approx_top_k_refused": build_approx_top_k_refused,
    "segments_v2": build_segments_v2,
    "decode_image": build_decode_image,
    "ctc": build_ctc,
    "type_widening": build_type_widening,
    "narrow_arithmetic": build_narrow_arithmetic,
    "batch_norm_nchw": build_batch_norm_nchw,
    "pool_nchw": build_pool_nchw,
    "conv_nchw": build_conv_nchw,
    "tf1_bincount": build_tf1_bincount,
    "tf1_bincount_refused": build_tf1_bincount_refused,
    "tf1_segments": build_tf1_segments,
    "tf1_matrix_diag": build_tf1_matrix_diag,
    "tf1_matrix_diag_refused": build_tf1_matrix_diag_refused,
    "tf1_scan_dataset": build_tf1_scan_dataset,
    "tf1_parse_example": build_tf1_parse_example,
    "tf1_parse_example_refused": build_tf1_parse_example_refused,
    "tf1_string_ngrams_pad": build_tf1_string_ngrams_pad,
    "tf1_cumulative_logsumexp": build_tf1_cumulative_logsumexp,
    "tf1_ragged_bincount": build_tf1_ragged_bincount,
    **MIXED,
}
# Fixtures written by the TF1 SavedModelBuilder (no tf.Module): name -> writer(export_dir).
V1_FIXTURES: dict[str, Callable[[Path], tuple[Inputs, str]]] = {"v1_defaults": write_v1_defaults,
                                                                "mixed_rng_keras": write_mixed_rng_keras,
                                                                "grouped_conv": write_grouped_conv,
                                                                "grouped_conv_split": write_grouped_conv_split,
                                                                "tf1_v1_defaults": write_tf1_v1_defaults}
# Fixtures whose signatures cannot run in the source either (stand-in bytes): no outputs recorded.
NOT_RUNNABLE = {"xla_call_module", "rng_threefry", "refusals_misc", "new_ops_refused", "fft_nd_refused",
                "conv_pool_refused"}  # ThreeFry: the CPU kernel rejects its 1-element counter


# --------------------------------------------------------------------------------------- #
# Writing a fixture
# --------------------------------------------------------------------------------------- #
def _created() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc) if epoch else _dt.datetime.now(_dt.timezone.utc)
    return moment.date().isoformat()


def _shape(shape: Any) -> list[int | None] | None:
    return None if shape.rank is None else [d for d in shape.as_list()]


def write_fixture(name: str, root: Path = RULE_GOLDEN) -> Path:
    import keras
    import tensorflow as tf

    folder = root / name
    if folder.exists():
        shutil.rmtree(folder / "saved_model", ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    export = folder / "saved_model"
    reference: Inputs | None = None
    reference_note = ""
    if name in V1_FIXTURES:
        all_inputs, description = V1_FIXTURES[name](export)
    else:
        built = FIXTURES[name]()
        tf.saved_model.save(built.module, str(export), signatures=built.signatures)
        all_inputs, description = built.inputs, built.description
        if built.reference is not None:
            reference, reference_note = built.reference(built.inputs), built.reference_note
    loaded = tf.saved_model.load(str(export))
    arrays: dict[str, np.ndarray] = {}
    signatures: dict[str, Any] = {}
    for key in sorted(all_inputs):
        function = loaded.signatures[key]
        feeds = all_inputs[key]
        for input_name, value in feeds.items():
            arrays[f"{key}/inputs/{input_name}"] = value
        spec_in = function.structured_input_signature[1]
        spec_out = function.structured_outputs
        signatures[key] = {
            "inputs": {k: {"dtype": v.dtype.name, "shape": _shape(v.shape)} for k, v in sorted(spec_in.items())},
            "outputs": {k: {"dtype": v.dtype.name, "shape": _shape(v.shape)} for k, v in sorted(spec_out.items())},
        }
        if name in NOT_RUNNABLE:
            continue
        if reference is not None:
            outputs = reference[key]
        else:
            outputs = function(**{k: tf.constant(v) for k, v in feeds.items()})
        for output_name, tensor in outputs.items():
            arrays[f"{key}/outputs/{output_name}"] = np.asarray(tensor)
    np.savez(folder / "data.npz", **arrays)
    meta = {
        "name": name,
        "created": _created(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "generator": GENERATOR,
        "description": description,
        "runnable": name not in NOT_RUNNABLE,
        "signatures": signatures,
    }
    if reference is not None:
        meta["expected_outputs"] = reference_note  # parity compares with data.npz's outputs
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", "utf-8")
    return folder


# --------------------------------------------------------------------------------------- #
# Goldens: shared with tests/test_rules_catalog.py
# --------------------------------------------------------------------------------------- #
def fixture_dir(name: str) -> Path:
    """The folder of a fixture a rule names: golden/rules/<name>, else golden/fixtures/<name>."""
    for base in (RULE_GOLDEN, REPO / "golden" / "fixtures"):
        if (base / name / "saved_model").is_dir():
            return base / name
    raise FileNotFoundError(f"no fixture {name!r} under golden/rules or golden/fixtures")


def inputs_file(folder: Path, into: Path) -> Path | None:
    """data.npz's inputs as a parity --inputs file (keys <signature>/<input>); None if it has none."""
    data = folder / "data.npz"
    if not data.exists():
        return None
    with np.load(data, allow_pickle=False) as npz:
        feeds = {k.replace("/inputs/", "/"): npz[k] for k in npz.files if "/inputs/" in k}
    if not feeds:
        return None
    np.savez(into, **feeds)
    return into


def expected_file(folder: Path, into: Path) -> Path | None:
    """data.npz's outputs as a parity --expected file, for a fixture whose outputs were computed
    independently because the installed TensorFlow cannot run it (meta.json "expected_outputs")."""
    meta = folder / "meta.json"
    if not meta.exists() or "expected_outputs" not in json.loads(meta.read_text("utf-8")):
        return None
    with np.load(folder / "data.npz", allow_pickle=False) as npz:
        outputs = {k.replace("/outputs/", "/"): npz[k] for k in npz.files if "/outputs/" in k}
    np.savez(into, **outputs)
    return into


def golden_text(proto: Any, where: list[str]) -> str:
    """The rewritten scopes (`function NAME` / `graph TAGS`) of an output SavedModel, as text."""
    from google.protobuf import text_format

    from rewriter.savedmodel.model import meta_graph_label

    parts = []
    for index, meta_graph in enumerate(proto.meta_graphs):
        label = meta_graph_label(meta_graph, index)
        functions = {f.signature.name: f for f in meta_graph.graph_def.library.function}
        for scope in sorted(set(where)):
            kind, _, name = scope.partition(" ")
            if kind == "function" and name in functions:
                parts.append(f"# {scope}\n{text_format.MessageToString(functions[name])}")
            elif kind == "graph" and name == label:
                nodes = "".join(f"node {{\n{text_format.MessageToString(n, indent=2)}}}\n" for n in meta_graph.graph_def.node)
                parts.append(f"# {scope}\n{nodes}")
    return "\n".join(parts)


def catalog_target(rule: Any) -> str:
    """The release a rule's fixture is converted to for its golden file and its parity proof:
    GOLDEN_TARGET, or TF 1.15 for a rule about what 2.0-2.3 added (2.3 has that already, so the
    rule applies to 1.15 only; rules/tf1-*.yaml), or else the oldest release the rule holds for
    (its targets_from: a rule for 2.5 and 2.6 only)."""
    from rewriter.targets.releases import parse_release

    for candidate in (GOLDEN_TARGET, TF1_TARGET):
        if rule.applies_to(parse_release(candidate)):
            return candidate
    assert rule.targets_from is not None, f"{rule.id} applies to no release"
    return str(rule.targets_from)


def write_goldens(rule_ids: set[str] | None = None) -> list[Path]:
    """Convert each rule's fixture to its catalog_target (no parity run) and write its golden.pbtxt."""
    from rewriter.api import check
    from rewriter.rules.loader import load_rules

    written = []
    plans: dict[tuple[str, str], Any] = {}
    for rule in load_rules():
        if rule.fixture is None or rule.refuse is not None or (rule_ids and rule.id not in rule_ids):
            continue
        key = (rule.fixture, catalog_target(rule))
        if key not in plans:
            lossy = [r.id for r in load_rules() if not r.exact]  # as tests/test_rules_catalog.py converts
            plans[key] = check(fixture_dir(rule.fixture) / "saved_model", key[1], allow_lossy=lossy)
        plan = plans[key]
        where = [app.where for app in plan.applications if app.rule == rule.id]
        if not where:
            raise SystemExit(f"rule {rule.id} does not apply to its fixture {rule.fixture}")
        path = RULE_GOLDEN / rule.id / "golden.pbtxt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(golden_text(plan.output_proto, where), "utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=sorted([*FIXTURES, *V1_FIXTURES]), help="fixtures to rebuild")
    parser.add_argument("--goldens", action="store_true", help="only rewrite the golden files")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    if not args.goldens:
        for name in args.only or sorted([*FIXTURES, *V1_FIXTURES]):
            print(f"fixture {name}: {write_fixture(name)}")
    for path in write_goldens():
        print(f"golden {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
