"""DecodeImage's rewrite (rules/decode-image.yaml), judged image by image: the rules' fixture model
(one DecodeImage per variant: dtype, channels, expand_animations) is converted to 2.3, and every
signature is called on each of its images alone and on malformed bytes, in the installed TF and in
TF 2.3.4's Python API. Each call must decode to the same bytes, shape and dtype in both, or fail in
both. (The catalog test compares the images' values in one batch; this one also covers the error
cases, which would stop a batch.)"""
from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_cli
from rewriter.runtimes.python23 import Py23Env, ensure_py23_env

FIXTURE = ROOT / "golden" / "rules" / "decode_image"

# Runs in either TensorFlow: calls every signature on each image alone; prints one JSON line of
# signature/image -> ["ok", dtype, shape, hex of the bytes] or ["error", first line].
_CALL_EACH = r'''
import base64, json, sys
import tensorflow as tf
model, cases_json = sys.argv[1:3]
cases = json.load(open(cases_json))
loaded = tf.saved_model.load(model)
result = {}
for signature, images in sorted(cases.items()):
    function = loaded.signatures[signature]
    for name, data in sorted(images.items()):
        try:
            out = function(images=tf.constant([base64.b64decode(data)]))
            pixels = out["pixels"].numpy()
            result[signature + "/" + name] = ["ok", str(pixels.dtype), out["shapes"].numpy().tolist(),
                                              pixels.tobytes().hex()]
        except Exception as error:
            result[signature + "/" + name] = ["error", str(error).strip().splitlines()[0][:200]]
print("RESULT" + json.dumps(result))
'''


def _malformed(images: dict[str, bytes]) -> dict[str, bytes]:
    bmp = images["bmp"]  # 24-bit, bottom-up
    return {
        "empty": b"",
        "unknown": b"hello world, not an image",
        "bmp_short": b"BMxx",
        "gif_short": b"GIF89a\x01",
        "png_truncated": images["png"][:40],
        "jpeg_truncated": images["jpeg"][:300],
        "bmp_trailing_bytes": bmp + b"\x01\x02",
        "bmp_16_bits": bmp[:28] + b"\x10" + bmp[29:],
        "webp_like": b"RIFF\x10\x00\x00\x00WEBPVP8 junkjunk",
    }


# Real 1x1 WebP images (lossy RGB and lossless RGBA): TF 2.20+ decodes them, TF 2.3 has no WebP
# decoder. The rules are narrowing: the output must fail loudly on them, never return other pixels.
WEBP = {
    "webp_lossy": base64.b64decode("UklGRiIAAABXRUJQVlA4IBYAAAAwAQCdASoBAAEADsD+JaQAA3AAAAAA"),
    "webp_lossless": base64.b64decode("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA=="),
}


def _run(python: list[str], model: Path, cases: Path, env: dict[str, str] | None = None) -> dict[str, list]:
    proc = subprocess.run([*python, "-c", _CALL_EACH, str(model), str(cases)], capture_output=True, text=True,
                          timeout=900, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT"):])


@pytest.fixture(scope="module")
def py23_env() -> Py23Env:
    return ensure_py23_env()


def test_each_image_and_malformed_input_decodes_alike_in_tf_2_3(tmp_path: Path, py23_env: Py23Env) -> None:
    from rewriter.rules.loader import load_rules

    rules = [r for r in load_rules() if r.id.startswith("decode-image")]
    assert rules and all(r.exactness == "narrowing" and r.fails_on and "WebP" in r.fails_on for r in rules)
    out = tmp_path / "out"
    result = run_cli(FIXTURE / "saved_model", out, "--to", "2.3", "--no-verify", "-q")
    assert result.code == 0, result.stderr
    assert "warning: narrowing rule decode-image-" in result.stdout

    with np.load(FIXTURE / "data.npz", allow_pickle=False) as data:
        recorded = {key.split("/")[0]: [bytes(v) for v in data[key]] for key in data.files
                    if key.endswith("/inputs/images")}
    def first(magic: bytes, depth: int | None = None) -> bytes:
        return next(image for image in recorded["serving_default"]
                    if image.startswith(magic) and (depth is None or image[28] == depth))

    malformed = _malformed({"bmp": first(b"BM", 24), "png": first(b"\x89PNG"), "jpeg": first(b"\xff\xd8\xff")})
    cases = {signature: {**{f"image{i}": base64.b64encode(image).decode() for i, image in enumerate(images)},
                         **{name: base64.b64encode(data).decode() for name, data in {**malformed, **WEBP}.items()}}
             for signature, images in recorded.items()}
    cases_json = tmp_path / "cases.json"
    cases_json.write_text(json.dumps(cases))
    assert len(cases) >= 6

    source = _run([sys.executable], FIXTURE / "saved_model", cases_json)
    target = _run([str(py23_env.python)], out, cases_json, py23_env.environ())
    assert set(source) == set(target)
    assert any(v[0] == "error" for v in source.values()) and any(v[0] == "ok" for v in source.values())
    # the narrowing, shown: WebP decodes in the source and fails loudly (an error, not pixels) in 2.3
    narrowed = {key for key in source if key.split("/")[-1] in WEBP}
    assert any(source[key][0] == "ok" for key in narrowed)
    assert all(target[key][0] == "error" for key in narrowed), {k: target[k][:3] for k in narrowed}
    differ = {key: (source[key][:3], target[key][:3]) for key in source if key not in narrowed
              and (source[key][0] != target[key][0] or (source[key][0] == "ok" and source[key] != target[key]))}
    assert not differ, differ
