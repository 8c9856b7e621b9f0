"""parity.run_rounds on a model simulated in Python (no runtime involved): what the source's
reference outputs are when a call fails after changing state, and when randomness only shows
from the third call on. The real-runtime cases are in test_convert_parity.py."""
from __future__ import annotations

import numpy as np

from rewriter.verify.input_synthesis import Candidate
from rewriter.verify.parity import Batch, run_rounds


class CounterModel:
    """a_step(x): c += x[0], then asserts x > 0 (so a failing call has already assigned);
    b_read(): c. Like run_source, a round after the first starts from a fresh load with the
    successful calls replayed."""

    def __init__(self) -> None:
        self.c, self.rounds = 0.0, 0

    def call(self, key: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray] | str:
        if key == "b_read":
            return {"c": np.float32(self.c)}
        x = arrays["x"]
        self.c += float(x[0])
        if (x <= 0).any():
            return "assertion failed: x > 0"
        return {"y": x * 2}

    def run_batch(self, replay: Batch, batch: Batch) -> list[dict[str, np.ndarray] | str]:
        if self.rounds:
            self.c = 0.0
            for key, arrays in replay:
                self.call(key, arrays)
        self.rounds += 1
        return [self.call(key, arrays) for key, arrays in batch]


def test_a_call_after_a_failed_call_that_assigned_is_run_again_on_fresh_state() -> None:
    """sweep-II A: b_read read the counter a failed a_step had moved (0.7), and the target,
    which runs only the successful calls, read 0: a false mismatch of a right model."""
    model = CounterModel()
    failing = np.array([0.7, -0.2], np.float32)
    passing = np.array([0.5, 0.25], np.float32)
    inputs = {"a_step": {"x": failing}, "b_read": {}}
    alternatives = {"a_step": [Candidate("random", {"x": failing}), Candidate("positive", {"x": passing})],
                    "b_read": [Candidate("none", {})]}
    run = run_rounds(model.run_batch, inputs, alternatives, None)
    assert run.order == ["a_step", "b_read"]  # the target runs them in this order
    assert run.outputs["b_read"]["c"] == np.float32(0.5)  # what the target sees after a_step's one success
    assert run.strategies["a_step"]["strategy"] == "positive"
    assert run.strategies["b_read"]["failed"] == []  # run again, not counted as a failed strategy


class LateRandomness:
    """y = x, plus noise of the order of the output from the third call on: a Keras 3
    SeedGenerator's dropout gave the same output on the first two calls (sweep-II B)."""

    def __init__(self) -> None:
        self.calls = 0
        self.rng = np.random.default_rng(0)

    def run_batch(self, replay: Batch, batch: Batch) -> list[dict[str, np.ndarray] | str]:
        results: list[dict[str, np.ndarray] | str] = []
        for _, arrays in batch:
            self.calls += 1
            x = arrays["x"].astype(np.float32)
            results.append({"y": x + (self.rng.standard_normal(x.shape).astype(np.float32) if self.calls > 2 else 0)})
        return results


def test_randomness_that_shows_only_after_the_second_call_is_not_measured_as_noise() -> None:
    model = LateRandomness()
    x = np.array([1.0, 2.0, 3.0], np.float32)
    run = run_rounds(model.run_batch, {"f": {"x": x}}, None, {"f": "float32"})
    assert "f" not in run.movements  # the moved runs saw randomness, not rounding
    assert "run again on the same inputs" in run.notes["f"]


def test_a_deterministic_model_is_measured() -> None:
    def run_batch(replay: Batch, batch: Batch) -> list[dict[str, np.ndarray] | str]:
        return [{"y": arrays["x"] * np.float32(3)} for _, arrays in batch]

    x = np.array([1.0, 2.0, 3.0], np.float32)
    run = run_rounds(run_batch, {"f": {"x": x}}, None, {"f": "float32"})
    assert run.notes == {} and run.movements["f"]["y"] is not None


def test_a_source_that_reads_unrestored_variables_is_not_told_to_pass_inputs() -> None:
    """sweep-III P2: a Keras 3 model held by a tf.Module fails in a C++ loader on every strategy
    ('Could not find variable ...'), and the advice was --inputs, which cannot help."""
    def run_batch(replay: Batch, batch: Batch) -> list[dict[str, np.ndarray] | str]:
        return ["Could not find variable sequential/dense/kernel. This could mean that the variable has been deleted."
                for _ in batch]

    x = np.array([1.0], np.float32)
    run = run_rounds(run_batch, {"f": {"x": x}}, {"f": [Candidate("graph", {"x": x}), Candidate("random", {"x": x})]},
                     None, where="TensorFlow 2.17.1's C++ loader")
    error = run.outputs["f"]["__error__"]
    assert "--source-runtime installed" in error and "--inputs" not in error

    def failing(replay: Batch, batch: Batch) -> list[dict[str, np.ndarray] | str]:
        return ["assertion failed: x > 0" for _ in batch]

    assert run_rounds(failing, {"f": {"x": x}}, None, None).outputs["f"]["__error__"].endswith(
        "pass valid inputs with --inputs")
