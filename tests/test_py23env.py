"""The TF 2.3.4 Python environment (rewriter/runtimes/py23env) is real and judges for real.

No mocks: every test runs TF 2.3.4's Python API in a subprocess. The env is
built on first use (about 30 s on a fresh machine) by a session fixture.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from rewriter.runtimes.python23 import Py23Env, ensure_py23_env


@pytest.fixture(scope="session")
def py23() -> Py23Env:
    return ensure_py23_env()


def _check(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"TF 2.3 script failed (exit {p.returncode}):\n{p.stderr[-4000:]}"
    return p.stdout


def test_import_tensorflow_is_2_3_4(py23: Py23Env) -> None:
    out = _check(py23.run("import sys, tensorflow as tf\nprint(tf.__version__)\nprint(sys.version_info[:2])"))
    version, pyver = out.strip().splitlines()[-2:]
    assert version == "2.3.4"
    assert pyver == "(3, 9)"


def test_ensure_is_quick_when_built(py23: Py23Env) -> None:
    t0 = time.monotonic()
    again = ensure_py23_env()
    assert again == py23
    assert time.monotonic() - t0 < 5.0


def test_module_savedmodel_roundtrip_in_tf23(py23: Py23Env, tmp_path: Path) -> None:
    model_dir = tmp_path / "module"
    save = textwrap.dedent("""
        import sys, tensorflow as tf
        class Affine(tf.Module):
            def __init__(self):
                self.w = tf.Variable([[1.0, 2.0], [3.0, 4.0]])
                self.b = tf.Variable([0.5, -0.5])
            @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
            def __call__(self, x):
                return {"y": tf.matmul(x, self.w) + self.b}
        m = Affine()
        tf.saved_model.save(m, sys.argv[1], signatures={"serving_default": m.__call__})
    """)
    _check(py23.run(save, str(model_dir)))
    x = np.array([[1.0, 0.0], [2.0, 1.0]], dtype=np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    r = py23.load_and_call(model_dir, tmp_path / "in.npz", tmp_path / "out.npz")
    assert r.ok, r.load_error or r.signatures
    assert r.signatures["serving_default"].inputs == {"x": {"dtype": "float32", "shape": [None, 2]}}
    got = np.load(tmp_path / "out.npz")["serving_default/y"]
    want = x @ np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32) + np.array([0.5, -0.5], np.float32)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    # Outputs it cannot write (a full or missing scratch folder) are the machine's fault: an
    # OSError (parity makes it exit 4), never a load failure of the model (exit 3).
    with pytest.raises(OSError, match="could not write its outputs"):
        py23.load_and_call(model_dir, tmp_path / "in.npz", tmp_path / "gone" / "out.npz")


KERAS_ROUNDTRIP = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf
    out_dir, fmt = sys.argv[1], sys.argv[2]
    tf.random.set_seed(0)
    model = tf.keras.Sequential([
        tf.keras.layers.Dense(4, activation="relu", input_shape=(3,)),
        tf.keras.layers.Dense(1),
    ])
    model.compile(optimizer="sgd", loss="mse")
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0
    y = np.ones((4, 1), np.float32)
    w0 = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)  # one step
    assert any(not np.array_equal(a, b) for a, b in zip(w0, model.get_weights())), "fit changed nothing"
    before = model.predict(x)
    path = out_dir + ("/model.h5" if fmt == "h5" else "/model")
    model.save(path, save_format=fmt)
    loaded = tf.keras.models.load_model(path)
    assert isinstance(loaded, tf.keras.Model), type(loaded)
    after = loaded.predict(x)
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-6)
    print("KERAS_OK", type(loaded).__name__, float(np.abs(after).sum()))
""")


@pytest.mark.parametrize("fmt", ["tf", "h5"])
def test_keras_fit_save_load_in_tf23(py23: Py23Env, tmp_path: Path, fmt: str) -> None:
    out = _check(py23.run(KERAS_ROUNDTRIP, str(tmp_path), fmt))
    assert "KERAS_OK" in out


SAVE_WITH_MAIN_TF = textwrap.dedent("""
    import sys, tensorflow as tf
    class Scale(tf.Module):
        def __init__(self):
            self.v = tf.Variable(3.0)
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def __call__(self, x):
            return {"y": x * self.v}
    m = Scale()
    tf.saved_model.save(m, sys.argv[1], signatures={"serving_default": m.__call__})
    print("SAVED_WITH", tf.__version__)
""")


def test_savedmodel_from_main_tf_fails_in_tf23_loader(py23: Py23Env, tmp_path: Path) -> None:
    """The judge is real: an unconverted SavedModel from the installed TF (2.21) is rejected."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("the test interpreter has no tensorflow to write a new-TF SavedModel with")
    model_dir = tmp_path / "new_tf"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    p = subprocess.run([sys.executable, "-c", SAVE_WITH_MAIN_TF, str(model_dir)], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-4000:]
    np.savez(tmp_path / "in.npz", x=np.array([1.0, 2.0], np.float32))
    r = py23.load_and_call(model_dir, tmp_path / "in.npz", tmp_path / "out.npz")
    assert not r.loaded, f"TF 2.3 loaded a SavedModel from {p.stdout.strip()}; signatures: {r.signatures}"
    assert r.load_error is not None and "DisableCopyOnRead" in r.load_error, r.load_error
