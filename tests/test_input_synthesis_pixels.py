"""Float inputs a model first rescales (Keras' Rescaling: x / 255, x / 127.5 - 1, in float32 or cast
to float16) are generated as 8-bit pixel values, not standard-normal ones.

Standard-normal values there are nearly one grey image: a MobileNetV3's logits reached 1650 (7 on
0-255 images), its float16 noise bound reached 0.37 of the range, and a ViT's weight change was
seen by a margin of 3.45 against 268 on images (a helper's sweep of keras.applications). No runtime.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import saved_by_script
from rewriter.savedmodel.files import read_saved_model
from rewriter.verify.input_synthesis import candidates
from rewriter.verify.parity import select_meta_graph, signature_inputs

MODELS = r'''
import sys, keras, tensorflow as tf
out = sys.argv[1]
for name, layer, policy in [("scaled", keras.layers.Rescaling(1 / 255.0), "float32"),
                            ("centred_half", keras.layers.Rescaling(1 / 127.5, offset=-1.0), "mixed_float16"),
                            ("divided", None, "float32")]:
    keras.mixed_precision.set_global_policy(policy)
    image = keras.Input((4, 4, 3), name="image")
    x = layer(image) if layer is not None else keras.layers.Lambda(lambda t: t / 255.0)(image)
    keras.Model(image, keras.layers.Conv2D(2, 3)(x)).export(f"{out}/{name}", verbose=False)
keras.mixed_precision.set_global_policy("float32")


class Plain(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def f(self, x):
        return {"y": x * 0.5 + 1.0}  # an ordinary factor: not pixels


plain = Plain()
tf.saved_model.save(plain, f"{out}/plain", signatures={"serving_default": plain.f})
'''


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_by_script(MODELS, tmp_path_factory.mktemp("pixels"))


def _first_candidate(model: Path) -> tuple[str, dict[str, np.ndarray], dict[str, list[str]]]:
    meta_graph = select_meta_graph(read_saved_model(model).proto, ["serve"])
    key = "serving_default"
    base = signature_inputs(meta_graph, 0, None)[key]
    first = candidates(meta_graph, key, base, 0)[0]
    return first.strategy, first.values, first.reasons


@pytest.mark.parametrize("name", ["scaled", "centred_half", "divided"])
def test_a_rescaled_image_input_gets_pixel_values(models: Path, name: str) -> None:
    strategy, values, reasons = _first_candidate(models / name)
    image = next(iter(values.values()))
    assert strategy == "graph" and image.dtype == np.float32
    assert np.all(image == np.round(image)) and image.min() >= 0 and image.max() <= 255 and image.max() > 100
    assert any("pixel values 0..255, as a Rescaling reads" in reason for reason in next(iter(reasons.values())))


def test_an_ordinary_factor_leaves_the_values_random(models: Path) -> None:
    strategy, values, _ = _first_candidate(models / "plain")
    assert strategy == "random" and (values["x"] < 0).any()  # standard normal, as before
