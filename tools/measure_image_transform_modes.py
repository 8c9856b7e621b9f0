"""Does TF 2.3.4's ImageProjectiveTransformV2 map coordinates as TF 2.21's does, per fill_mode and
interpolation? (rules/new-ops.yaml, image-projective-transform-v3-other cites this.)

Runs one batch of transforms (translations by quarter pixels across every border, scalings,
shears, one projective) through ImageProjectiveTransformV2 in the installed TensorFlow and in
TF 2.3.4's own Python API (rewriter/runtimes/py23env), and prints, per mode and interpolation,
how many transforms give a different image and the first differing source coordinates.

    .venv/bin/python tools/measure_image_transform_modes.py
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

MODES = ("CONSTANT", "REFLECT", "WRAP", "NEAREST")
INTERPOLATIONS = ("NEAREST", "BILINEAR")
DXS = np.arange(-9, 9.01, 0.25)
DYS = (-6.5, -0.75, -0.25, 0.0, 0.5, 4.5, 7.25)

SCRIPT = '''
import sys, numpy as np, tensorflow as tf
img = (np.arange(20, dtype=np.float32) + 1).reshape(1, 5, 4, 1)
t = np.array([[1, 0, dx, 0, 1, dy, 0, 0] for dx in np.arange(-9, 9.01, 0.25)
              for dy in (-6.5, -0.75, -0.25, 0.0, 0.5, 4.5, 7.25)]
             + [[s, 0.1, -0.3, -0.2, s, 0.7, 0, 0] for s in (0.5, 0.8, 1.3, 2.0)]
             + [[0.9, 0.2, 0.3, -0.1, 1.1, 0.2, 0.01, -0.02]], np.float32)
out = {}
for interp in %r:
    for mode in %r:
        out[interp + "_" + mode] = tf.raw_ops.ImageProjectiveTransformV2(
            images=np.repeat(img, len(t), 0), transforms=t, output_shape=[5, 4],
            interpolation=interp, fill_mode=mode).numpy()
np.savez(sys.argv[1], **out)
''' % (INTERPOLATIONS, MODES)


def main() -> int:
    import subprocess

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from rewriter.runtimes.python23 import ensure_py23_env

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "transform.py"
        script.write_text(SCRIPT)
        subprocess.run([sys.executable, str(script), f"{tmp}/new.npz"], check=True, capture_output=True)
        ran = ensure_py23_env().run(SCRIPT, f"{tmp}/old.npz")
        if ran.returncode:
            print(ran.stderr[-2000:], file=sys.stderr)
            return 1
        new, old = np.load(f"{tmp}/new.npz"), np.load(f"{tmp}/old.npz")
        for key in new.files:
            differ = (new[key] != old[key]).reshape(len(new[key]), -1).any(1)
            coords = sorted({float(x + dx) for i, (dx, dy) in enumerate((dx, dy) for dx in DXS for dy in DYS)
                             if dy == 0.0 for x in range(4) if new[key][i, 0, x, 0] != old[key][i, 0, x, 0]})
            print(f"{key:18} {int(differ.sum()):4d}/{len(differ)} transforms differ; "
                  f"first differing x coordinates (width 4): {coords[:6]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
