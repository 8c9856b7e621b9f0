"""parity's output comparison on hand-made arrays: NaN and infinity positions, tolerances, and
the error figures the report shows (no runtime involved)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from rewriter.verify.parity import _compare

TOL = {"float32": (1e-5, 1e-6)}


def compare(expected: list[float], actual: list[float]) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning here means a NaN leaked into the figures
        return _compare("sig", "out", np.array(expected, np.float32), np.array(actual, np.float32), TOL)


def test_equal_infinities_match_with_zero_error() -> None:
    result = compare([np.inf, -np.inf, 1.0, np.nan], [np.inf, -np.inf, 1.0, np.nan])
    assert result.status == "match" and result.max_abs_error == 0 and result.max_rel_error == 0


def test_an_infinity_against_a_number_is_a_mismatch() -> None:
    result = compare([np.inf, 1.0], [3.0e38, 1.0])
    assert result.status == "mismatch" and result.worst_index == [0]


def test_opposite_infinities_are_a_mismatch() -> None:
    """1 / round(-0.3) is -inf in TF 2.21 and +inf in TF 1.15.5 (a zero of the other sign): the
    message says so, not "max abs error inf"."""
    result = compare([1.0, np.inf], [1.0, -np.inf])
    assert result.status == "mismatch"
    assert result.message == "1 infinity(ies) of the other sign, first at [1]: expected inf, got -inf"


def test_nan_at_other_positions_is_a_mismatch() -> None:
    result = compare([np.nan, 1.0], [1.0, np.nan])
    assert result.status == "mismatch" and "NaN" in result.message


def test_tolerance_and_worst_index() -> None:
    result = compare([1.0, 2.0, 4.0], [1.0, 2.0 + 1e-6, 4.5])
    assert result.status == "mismatch" and result.worst_index == [2]
    assert abs(result.max_abs_error - 0.5) < 1e-6
    assert compare([1.0, 2.0], [1.0, 2.0 + 1e-6]).status == "match"


# --- the noise-aware verdict (rewriter/verify/noise.py) -------------------------------------------
def _bound(expected: np.ndarray, precision: str = "float32", movement: float | None = None) -> object:
    from rewriter.verify.noise import noise_bound

    return noise_bound(expected, precision, movement)


def test_three_grades_against_the_noise_bound() -> None:
    expected = np.array([1.0, -2.0, 4.0], np.float32)
    bound = _bound(expected, movement=1e-6)  # 16 x 1e-6 > 4 ulps of range 4
    same = _compare("s", "o", expected, expected.copy(), None, bound)
    assert same.grade == "bit-identical" and same.status == "match" and same.max_abs_error == 0
    near = _compare("s", "o", expected, expected + np.float32(5e-6), None, bound)
    assert near.grade == "within-noise" and near.status == "match"
    assert near.bound == 16e-6 and "moves this output by 1e-06" in near.bound_origin
    far = _compare("s", "o", expected, expected * np.float32(1.01), None, bound)
    assert far.grade == "mismatch" and far.status == "mismatch" and "noise bound" in far.message


def test_without_a_measurement_the_bound_is_a_few_rounding_steps_of_the_range() -> None:
    from rewriter.verify.noise import EPSILON, FLOOR_ULPS

    expected = np.array([0.5, -8.0], np.float32)
    bound = _bound(expected)
    assert bound.bound == FLOOR_ULPS * EPSILON["float32"] * 8.0  # type: ignore[attr-defined]
    wide = _bound(expected, "float16")
    assert wide.bound > 1000 * bound.bound  # type: ignore[attr-defined]  # float16 compute widens it


def test_user_tolerance_overrides_the_bound_and_says_so() -> None:
    expected = np.array([1.0, 2.0], np.float32)
    result = _compare("s", "o", expected, expected + np.float32(1e-3), {"float32": (1e-2, 0.0)}, _bound(expected))
    assert result.grade == "within-tolerance" and "--rtol" in result.bound_origin


def test_strings_compare_by_value_whatever_numpy_dtype_holds_them() -> None:
    as_bytes = np.array([b"caf\xc3\xa9", b"x"], dtype="|S5")
    as_object = np.array([b"caf\xc3\xa9", b"x"], dtype=object)
    as_str = np.array(["café", "x"])
    for expected, actual in [(as_bytes, as_object), (as_object, as_bytes), (as_str, as_object), (as_object, as_str)]:
        result = _compare("s", "o", expected, actual, TOL)
        assert result.status == "match" and result.grade == "bit-identical", (expected.dtype, actual.dtype)
    scalar = _compare("s", "o", np.array(b"hello world!!!", dtype="|S14"), np.array(b"hello world!!!", dtype=object), TOL)
    assert scalar.status == "match"
    wrong = _compare("s", "o", as_bytes, np.array([b"cafe", b"x"], dtype=object), TOL)
    assert wrong.status == "mismatch" and wrong.worst_index == [0]
    # The message shows the first differing element both ways (what a kernel did to a string).
    assert wrong.message == ("values differ (exact comparison): 1 of 2 element(s), the first at [0]: "
                             "expected b'caf\\xc3\\xa9', got b'cafe'")
    long = _compare("s", "o", np.array(b"a" * 100, dtype=object), np.array(b"b" * 100, dtype=object), TOL)
    assert "expected b'aaaa" in long.message and "...," in long.message and len(long.message) < 220
    ints = _compare("s", "o", np.array([[1, 2], [3, 4]], np.int64), np.array([[1, 2], [3, 5]], np.int64), {})
    assert ints.message.endswith("1 of 4 element(s), the first at [1, 1]: expected 4, got 5")
    assert _compare("s", "o", as_bytes, np.array([b"x"], dtype=object), TOL).status == "mismatch"


def test_perturbation_moves_each_element_by_one_ulp() -> None:
    from rewriter.verify.noise import perturb

    x = np.array([1.0, -3.0, 0.25], np.float32)
    moved = perturb(x, "float32", np.random.default_rng(0))
    assert np.all(np.abs(moved - x) == np.spacing(np.abs(x)))
    coarse = perturb(x, "float16", np.random.default_rng(0))  # float16 compute: a float16 ulp
    assert np.allclose(np.abs(coarse - x) / np.abs(x), np.finfo(np.float16).eps, rtol=1e-3)
    ints = np.array([1, 2], np.int32)
    assert perturb(ints, "float32", np.random.default_rng(0)) is ints


def test_precision_on_the_path_reads_casts_in_called_functions() -> None:
    from tensorflow.core.protobuf import saved_model_pb2

    from conftest import ROOT
    from rewriter.verify.noise import lowest_precision

    def meta(name: str) -> object:
        path = ROOT / "golden" / "parity" / name / "saved_model" / "saved_model.pb"
        return saved_model_pb2.SavedModel.FromString(path.read_bytes()).meta_graphs[0]

    mixed, plain = meta("mixed_precision"), meta("small_cnn")
    out = mixed.signature_def["serving_default"].outputs["output_0"].name  # type: ignore[attr-defined]
    assert lowest_precision(mixed, out, np.dtype(np.float32)) == "float16"
    out = plain.signature_def["serving_default"].outputs["output_0"].name  # type: ignore[attr-defined]
    assert lowest_precision(plain, out, np.dtype(np.float32)) == "float32"


@pytest.mark.parametrize("dtype, precision", [("float16", "float16"), ("float32", "float32"), ("float32", "float16"),
                                              ("float64", "bfloat16")])
def test_a_one_ulp_move_at_the_top_of_the_range_stays_finite(dtype: str, precision: str) -> None:
    """An input at its dtype's largest value moves down, not to infinity (which measures nothing)."""
    from rewriter.verify.noise import perturb

    top = np.finfo(dtype).max
    values = np.array([top, -top, 1.0, -2.5], dtype)
    for seed in range(8):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no overflow warning either
            moved = perturb(values, precision, np.random.default_rng(seed))
        assert moved.dtype == values.dtype and np.isfinite(moved).all()
        assert (moved != values).all()


# --- magnitude classes: a sentinel value does not set the range of the real ones ---------------------
def _masked_scores() -> np.ndarray:
    """Causal attention scores as Keras and BERT code writes them: s + (1 - mask) * -1e9."""
    scores = np.random.default_rng(3).standard_normal((4, 4)).astype(np.float32)
    return np.where(np.tril(np.ones((4, 4), bool)), scores, scores + np.float32(-1e9)).astype(np.float32)


def test_an_error_on_every_real_value_beside_a_mask_value_is_a_mismatch() -> None:
    """sweep-I F1: one -1e9 set the range, so 4 ulps of it (476) let an error of 0.5 pass."""
    expected = _masked_scores()
    bound = _bound(expected, movement=np.zeros(expected.shape))
    assert len(bound.classes) == 2  # type: ignore[attr-defined]
    shifted = np.where(expected > -1e8, expected + np.float32(0.5), expected).astype(np.float32)
    wrong = _compare("s", "o", expected, shifted, None, bound)
    assert wrong.grade == "mismatch" and "magnitude class" in wrong.message and wrong.bound < 1e-5
    assert wrong.worst_index is not None and expected[tuple(wrong.worst_index)] > -1e8
    assert wrong.error_histogram["counts"][-1] == 10  # the ten real scores are past their bound


def test_rounding_in_each_magnitude_class_is_within_noise() -> None:
    expected = _masked_scores()
    bound = _bound(expected, movement=np.zeros(expected.shape))
    rounded = np.nextafter(expected, np.float32(np.inf)).astype(np.float32)  # one ulp each, masked ones by 64
    result = _compare("s", "o", expected, rounded, None, bound)
    assert result.grade == "within-noise" and result.bound_origin.startswith("its values lie at 2 magnitudes")


def test_a_class_is_bounded_by_its_own_movement_not_the_sentinels() -> None:
    from rewriter.verify.noise import FLOOR_ULPS, EPSILON

    expected = _masked_scores()
    moved = np.where(expected < -1e8, 128.0, 0.0)  # only the masked values moved (by two of their ulps)
    bound = _bound(expected, movement=moved)
    real = bound.classes[0]  # type: ignore[attr-defined]
    assert real.bound == FLOOR_ULPS * EPSILON["float32"] * real.scale
    assert bound.classes[1].bound == 16 * 128.0  # type: ignore[attr-defined]
    # Given as one largest movement (the older form), every class takes it: the bound is wide.
    assert _bound(expected, movement=128.0).classes[0].bound == 16 * 128.0  # type: ignore[attr-defined]


def test_magnitudes_without_a_gap_wider_than_the_precision_are_one_class() -> None:
    from rewriter.verify.noise import magnitude_classes

    logits = np.array([1e-3, 0.5, 3.0, -1e4, 0.0, np.inf], np.float32)  # BERT's -1e4 mask: 1e4 / 3 < 1/eps
    assert magnitude_classes(logits, "float32") is None
    assert magnitude_classes(logits, "float16") is not None  # but more than float16's 1 / eps (1024)
    labels = magnitude_classes(np.array([0.0, 1.0, -1e9, np.nan, 3.4e38, 2.0], np.float32), "float32")
    assert labels is not None and list(labels) == [0, 0, 1, 0, 2, 0]


def test_a_constant_output_that_did_not_move_is_a_match_that_says_it_shows_little() -> None:
    """sweep-I F7: an untrained MobileNetV3's softmax is 0.1 everywhere, and was proven silently."""
    uniform = np.full((2, 10), 0.1, np.float32)
    still = _compare("s", "o", uniform, uniform.copy(), None, _bound(uniform, movement=0.0))
    assert still.grade == "bit-identical" and still.message.startswith("every element is 0.1 and did not move")
    moving = _compare("s", "o", uniform, uniform.copy(), None, _bound(uniform, movement=1e-8))
    assert moving.message == ""  # it moved with its inputs: it depends on them
    varied = np.linspace(0, 1, 20, dtype=np.float32).reshape(2, 10)
    assert _compare("s", "o", varied, varied.copy(), None, _bound(varied, movement=0.0)).message == ""


def test_the_console_line_shows_the_error_and_its_bound_alike() -> None:
    """A within-noise line gives the absolute error beside the absolute bound, then both as parts
    of the output's range: a relative bound printed beside an absolute error read as a pass above
    the bound (max abs err 9.5e-07 ... noise bound 4.77e-07)."""
    import io

    from rewriter.report.conversion import Report, print_summary
    from rewriter.verify.parity import OutputResult, ParityReport

    output = OutputResult("serve", "pool", "match", "float32", [1, 4], max_abs_error=9.5e-07, grade="within-noise",
                          precision="float32", scale=9.76, error_of_range=9.73e-08, bound=4.66e-06,
                          bound_of_range=4.77e-07)
    stream = io.StringIO()
    print_summary(Report("verify", None, None, parity=ParityReport("2.3.4", "", 0, {}, [output])), stream)
    assert ("serve/pool float32[1, 4] max abs err 9.5e-07, noise bound 4.66e-06 (9.73e-08 and 4.77e-07 of the range, "
            "float32)") in stream.getvalue()


def test_a_noise_bound_that_spans_the_range_proves_nothing() -> None:
    """sweep-II B: an eigvals output moved by 0.2 of its range under one-ulp input moves, a bound
    of 3.4 times its range: an output of zeros would have been within noise. Unprovable, not a match;
    a bit-identical output is still proven, and a bound under the range still judges."""
    expected = np.array([5.0, -1.0, 2.0], np.float32)
    chaotic = _bound(expected, movement=1.1)  # 16 x 1.1 > 5
    zeros = _compare("s", "o", expected, np.zeros(3, np.float32), None, chaotic)
    assert zeros.status == "mismatch" and zeros.grade == "unprovable"
    assert "at or over the 0.25 a comparison needs" in zeros.message and "--inputs" in zeros.message
    assert zeros.bound == chaotic.bound  # type: ignore[attr-defined]  # the report still states the bound
    same = _compare("s", "o", expected, expected.copy(), None, chaotic)
    assert same.status == "match" and same.grade == "bit-identical"
    # sweep-IV: a mixed-float16 MobileNetV3's bound was 0.37 of its range, and a kernel scaled by 1.1 passed
    loose = _bound(expected, movement=0.12)  # 16 x 0.12 = 1.92: 0.38 of the range
    assert _compare("s", "o", expected, expected * np.float32(1.1), None, loose).grade == "unprovable"
    wide = _bound(expected, movement=0.02)  # 16 x 0.02 = 0.32 < 0.25 x 5: it still sees an error of 0.5
    assert _compare("s", "o", expected, np.zeros(3, np.float32), None, wide).grade == "mismatch"
    assert _compare("s", "o", expected, expected + np.float32(0.3), None, wide).grade == "within-noise"


def test_a_magnitude_class_whose_bound_spans_its_range_is_unprovable() -> None:
    expected = _masked_scores()
    real = expected > -1e8
    bound = _bound(expected, movement=np.where(real, 10.0, 0.0))  # the real scores' class: 160 > its range
    shifted = np.where(real, expected + np.float32(0.5), expected).astype(np.float32)
    result = _compare("s", "o", expected, shifted, None, bound)
    assert result.status == "mismatch" and result.grade == "unprovable"
    # Only the masked class differs, and its bound is under its range: judged as before.
    masked_moved = np.where(real, expected, np.nextafter(expected, np.float32(0))).astype(np.float32)
    assert _compare("s", "o", expected, masked_moved, None, bound).grade == "within-noise"


def test_a_signature_that_fails_is_printed_once_with_its_error() -> None:
    """sweep-II C: a kernel the target lacks failed the signature, and its 12-line error was
    printed for each of its 12 outputs."""
    import io

    from rewriter.report.conversion import Report, print_summary
    from rewriter.verify.parity import OutputResult, ParityReport

    error = "No OpKernel was registered to support Op 'SobolSample'\nRegistered kernels:\n  <no registered kernels>"
    outputs = [OutputResult("serve", name, "error", message=error) for name in ("a", "b", "c")]
    outputs.append(OutputResult("other", "d", "error", message=error))
    stream = io.StringIO()
    print_summary(Report("verify", None, None, parity=ParityReport("2.3.4", "", 0, {}, outputs)), stream)
    text = stream.getvalue()
    assert text.count("<no registered kernels>") == 2  # once for serve, once for other
    assert "serve/b [] (the same error as serve/a)" in text and "serve/c [] (the same error as serve/a)" in text


def test_a_mismatch_that_only_reorders_the_values_says_so() -> None:
    """sweep-II: TF 2.3's eigvals returned the same eigenvalues as TF 2.21's in another order."""
    expected = np.array([[3.546, 0.2, 1.0], [2.0, 1.0, 0.5]], np.float32)
    bound = _bound(expected, movement=1e-6)
    reordered = _compare("s", "o", expected, expected[:, [1, 0, 2]].copy(), None, bound)
    assert reordered.grade == "mismatch" and "the expected values in another order" in reordered.message
    wrong = _compare("s", "o", expected, expected[:, [1, 0, 2]] * np.float32(1.01), None, bound)
    assert wrong.grade == "mismatch" and "another order" not in wrong.message


def test_a_loose_match_says_on_its_line_what_it_cannot_see() -> None:
    """sweep-IV: a mixed-precision model's bound of a fifth of its range read as a plain match."""
    import io

    from rewriter.report.conversion import Report, print_summary
    from rewriter.verify.parity import OutputResult, ParityReport

    loose = OutputResult("serve", "logits", "match", "float32", [2, 10], max_abs_error=5.2, grade="within-noise",
                         precision="float16", scale=100.0, error_of_range=0.052, bound=20.0, bound_of_range=0.2)
    tight = OutputResult("serve", "probs", "match", "float32", [2, 10], max_abs_error=1e-7, grade="within-noise",
                         precision="float32", scale=1.0, error_of_range=1e-7, bound=1e-6, bound_of_range=1e-6)
    stream = io.StringIO()
    print_summary(Report("verify", None, None, parity=ParityReport("2.3.4", "", 0, {}, [loose, tight])), stream)
    lines = stream.getvalue().splitlines()
    assert any("serve/logits" in line and "errors under 0.2 of the range cannot be seen here" in line for line in lines)
    assert not any("serve/probs" in line and "cannot be seen" in line for line in lines)
