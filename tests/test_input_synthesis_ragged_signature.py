"""A signature argument declared as tf.RaggedTensorSpec reaches the SignatureDef as two inputs,
its flat values ('r') and its row splits ('r_1'), with no assert in the graph that ties them: the
random values of the two did not fit, every strategy failed in the source, and a right conversion
ended 'not proven' (exit 3; a helper's sweep). The splits are now made for the values."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from conftest import run_cli, saved_by_script
from test_input_synthesis_composites import _graph_candidate

MODEL = r'''
import sys, tensorflow as tf


class Ragged(tf.Module):
    @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int64, ragged_rank=1)])
    def __call__(self, r):
        return {"sum": tf.reduce_sum(r, axis=1)}


module = Ragged()
tf.saved_model.save(module, sys.argv[1], signatures={"serving_default": module.__call__})
'''


def test_a_ragged_signature_argument_gets_splits_for_its_values(tmp_path: Path, runtime_2_3: Any) -> None:
    model = saved_by_script(MODEL, tmp_path / "ragged")
    graph, _ = _graph_candidate(model)
    values, splits = graph.values["r"], graph.values["r_1"]
    assert splits[0] == 0 and splits[-1] == values.shape[0] and np.all(np.diff(splits) >= 0)
    result = run_cli(model, tmp_path / "out", "--to", "2.3")
    assert result.code == 0, result.stdout + result.stderr
    assert "row splits of the ragged signature input 'r'" in result.stdout + result.stderr
