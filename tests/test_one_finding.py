"""One problem, one finding: a node that only feeds a refused node is covered by that refusal
(rewriter/pipeline.py _refusals), while a node that is read elsewhere keeps its own finding."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def test_a_producer_that_only_feeds_a_refused_node_gives_no_second_finding(tmp_path: Path) -> None:
    import tensorflow as tf

    from rewriter.api import check

    class ThreeFryGamma(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2], tf.int32, name="seed")])
        def call(self, seed: tf.Tensor) -> dict[str, tf.Tensor]:
            key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed)
            # ThreeFry (alg 2): no older op draws these numbers, so the gamma draw is refused.
            gamma = tf.raw_ops.StatelessRandomGammaV3(shape=[3], key=key, counter=counter, alg=2,
                                                      alpha=np.float32(2.0))
            # A second key/counter also read by a signature output: not covered by the refusal.
            key2, _ = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed + 1)
            return {"gamma": gamma, "key": key2}

    module = ThreeFryGamma()
    tf.saved_model.save(module, str(tmp_path / "model"), signatures={"serving_default": module.call})
    plan = check(tmp_path / "model", "2.3")
    by_op: dict[str, list[str]] = {}
    for finding in plan.refusals:
        by_op.setdefault(finding.op, []).append(finding.kind)
    assert by_op.get("StatelessRandomGammaV3") == ["refused"]
    # The first StatelessRandomGetKeyCounter only feeds the refused draw; the second is returned.
    assert by_op.get("StatelessRandomGetKeyCounter") == ["no-rule"], plan.refusals
