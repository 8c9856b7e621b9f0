"""The command line as users meet it: help, usage errors, exit codes, inspection, rules."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import fixture_dir, run_cli


def _one_clear_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("tfdowngrade:") and "error" in line]
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    return lines[0]


def test_help_has_examples_and_exit_codes() -> None:
    result = run_cli("--help")
    assert result.code == 0
    for text in ("tfdowngrade in/ out/ --to 2.3", "exit codes:", "3  parity failed", "4  the target runtime"):
        assert text in result.stdout


def test_convert_help_lists_options() -> None:
    result = run_cli("convert", "--help")
    assert result.code == 0
    for option in ("--to", "--force", "--no-verify", "--allow-lossy", "--report", "--report-md", "--rtol", "--offline"):
        assert option in result.stdout


@pytest.mark.parametrize(
    "args, needle",
    [
        (["in/", "out/"], "--to"),
        (["in/", "out/", "--to", "two.three"], "not a TensorFlow release"),
        (["check"], "IN"),
        (["rules"], "list"),
        (["--bogus"], "unrecognized"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], needle: str) -> None:
    result = run_cli(*args)
    assert result.code == 2
    assert needle in _one_clear_line(result.stderr)


@pytest.mark.parametrize("to, needle", [("1.14", "not a release this tool knows"), ("2.99", "not a release this tool knows")])
def test_unknown_or_newer_target_is_bad_input(to: str, needle: str, tmp_path: Path) -> None:
    result = run_cli(fixture_dir("tf_module"), tmp_path / "out", "--to", to, "--no-verify")
    assert result.code == 2
    assert needle in _one_clear_line(result.stderr)
    assert not (tmp_path / "out").exists()


def test_target_equal_to_source_is_a_no_op(tmp_path: Path) -> None:
    result = run_cli("check", fixture_dir("tf_module"), "--to", "2.21")
    assert result.code == 0, result.stderr
    assert "0 rewrite(s) planned" in result.stdout


def test_inspect_shows_signatures_and_missing_ops() -> None:
    result = run_cli("inspect", fixture_dir("tf_module"), "--to", "2.3")
    assert result.code == 0, result.stderr
    assert "signature 'serving_default'" in result.stdout
    assert "unknown-op: DisableCopyOnRead" in result.stdout
    assert "unknown-attr: VarHandleOp" in result.stdout
    # the object graph too: fields TF 2.3's schema lacks, each with the rule that handles it (a
    # helper's sweep: inspect showed two problems, then check refused on a field it never named)
    assert "TensorFlow 2.3's protobuf schema lacks" in result.stdout
    assert "tensorflow.SavedBareConcreteFunction.function_spec: rule bare-concrete-function-function-spec" in result.stdout
    newest = run_cli("inspect", fixture_dir("tf_module"), "--to", "2.20")
    assert "TensorFlow 2.20's protobuf schema knows every field saved_model.pb holds" in newest.stdout


def test_rules_list_and_show() -> None:
    listing = run_cli("rules", "list")
    assert listing.code == 0
    assert "disable-copy-on-read" in listing.stdout and "DisableCopyOnRead" in listing.stdout
    shown = run_cli("rules", "show", "disable-copy-on-read")
    assert shown.code == 0 and "remove: [node]" in shown.stdout
    missing = run_cli("rules", "show", "no-such-rule")
    assert missing.code == 2


def test_rules_check_names_file_and_line(tmp_path: Path) -> None:
    rule = tmp_path / "bad.yaml"
    rule.write_text("id: bad-rule\ndescription: x\nsince: '2.10'\nmatch:\n  nodes:\n    n: {op: X, colour: red}\nrewrite:\n  remove: [n]\n")
    result = run_cli("rules", "check", rule)
    assert result.code == 2
    line = _one_clear_line(result.stderr)
    assert f"{rule}:6:" in line and "colour" in line


def test_internal_errors_are_one_line_and_a_log(tmp_path: Path) -> None:
    """A bug must not print a traceback: force one with a rules folder that is a file."""
    not_a_dir = tmp_path / "rules"
    not_a_dir.write_text("")
    result = run_cli("check", fixture_dir("tf_module"), "--to", "2.3", "--rules-dir", not_a_dir)
    assert result.code == 2
    assert "rules folder is missing" in _one_clear_line(result.stderr)


def test_unknown_tags_refused_before_writing_even_without_parity(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli(fixture_dir("tf_module"), out, "--to", "2.3", "--tags", "train", "--no-verify")
    assert result.code == 2
    assert "no MetaGraphDef has tags train" in _one_clear_line(result.stderr)
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--report", "--report-md", "--report-html"])
def test_unwritable_report_path_is_bad_input_before_any_work(flag: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli(fixture_dir("keras3_cnn"), out, "--to", "2.3", flag, tmp_path / "missing" / "r.txt")
    assert result.code == 2, result.stderr
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    folder = run_cli("check", fixture_dir("keras3_cnn"), "--to", "2.3", flag, tmp_path)
    assert folder.code == 2 and "is a folder" in folder.stderr


def test_a_reader_that_leaves_early_is_not_an_internal_error() -> None:
    """`tfdowngrade targets | head -1`: stdout's reader is gone before we write (EPIPE)."""
    import os
    import subprocess

    from conftest import CLI, ROOT

    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout now fails with EPIPE
    try:
        proc = subprocess.run([*CLI, "targets"], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=300, cwd=ROOT)
    finally:
        os.close(write_end)
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 141  # 128 + SIGPIPE, as a shell reports it


def test_error_line_is_one_line() -> None:
    """A runtime's multi-line message quoted in the error line ("...\\n\\t [[{{node x}}]]", TF 1.15's
    GatherV2 batch_dims error, a helper) is joined into one line."""
    from rewriter.cli import _one_line

    assert _one_line("parity failed: Expected batch_dims in [-1, 1)\n\t [[{{node g}}]] (nothing written)\n") == \
        "parity failed: Expected batch_dims in [-1, 1) [[{{node g}}]] (nothing written)"
