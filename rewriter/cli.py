"""The `tfdowngrade` command line."""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import signal
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from rewriter import __version__
from rewriter.quiet_import import silence_tensorflow_import
from rewriter.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_REFUSED,
    BadInput,
    ParityFailed,
    Refused,
    TfDowngradeError,
)

EPILOG = """\
examples:
  tfdowngrade in/ out/ --to 2.3                 convert, then prove parity in the real TF 2.3.4
  tfdowngrade in/ out/ --to 2.3 --report r.json --report-md r.md --report-html r.html
  tfdowngrade models/ out/ --to 2.3 --jobs 2    a serving base path, a folder of SavedModels or a
                                                models.config: every version, same layout under out/
  tfdowngrade models.config out/ --to 2.3 --shard 0/4 --report shard0.json
  tfdowngrade check in/ --to 2.3                what would be rewritten, and what has no rule
  tfdowngrade verify out/ --against in/ --to 2.3
  tfdowngrade inspect in/ --to 2.3              tags, signatures, ops the target lacks
  tfdowngrade rules list                        every rule: id, since, ops, exactness
  tfdowngrade in/ out/ --to tfjs-node@4.22      a consumer instead of a release (see: tfdowngrade targets)
  tfdowngrade targets [--json]                  every consumer, its TF release, and where that comes from
  tfdowngrade rules check my-rule.yaml          validate a rule file
  tfdowngrade rules explain RULE_ID in/         why a rule did not match each candidate node

exit codes:
  0  converted (and parity matched, unless --no-verify); OUT appears only on exit 0
  1  refused: something has no exact older form (nothing written)
  2  bad input or usage
  3  parity failed in the target runtime: nothing is written to OUT; the unverified
     output is kept at OUT.unverified (the error line and the report name it)
  4  the target runtime (or the source's, see --source-runtime) cannot be obtained or
     cannot start, or parity cannot write its scratch files (a full TMPDIR): nothing is
     written to OUT; the unverified output is kept at OUT.unverified
  5  internal error (one line and a log file path; please report it)
  130, 143  interrupted (Ctrl-C) or terminated; 141  stdout's reader left (| head)
  for a repository: the worst code of its versions (the JSON report has each version's)
"""
if TYPE_CHECKING:
    from rewriter.verify.parity import ParityOptions
    from rewriter.report.conversion import Report

SUBCOMMANDS = ("convert", "check", "verify", "inspect", "rules", "targets")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadInput(f"{self.prog}: {message} (see --help)")


def _parity_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("parity")
    group.add_argument("--tags", default="serve", help="MetaGraphDef tags to load and run first, comma-separated "
                       "(default: serve); every other MetaGraphDef with a signature is run too")
    group.add_argument("--inputs", type=Path, help=".npz of inputs, keys <signature>/<input> or <input>")
    group.add_argument("--expected", type=Path, help=".npz of expected outputs, keys <signature>/<output>, compared "
                       "instead of running the source (for ops with no kernel here, e.g. GPU-only)")
    group.add_argument("--seed", type=int, default=0, help="seed of generated inputs (default 0)")
    group.add_argument("--rtol", type=float, help="relative tolerance for every float dtype")
    group.add_argument("--atol", type=float, help="absolute tolerance for every float dtype")
    group.add_argument("--runtime-dir", type=Path, help="cache of target runtimes (default ~/.cache/tfdowngrade/runtimes, or $TFDOWNGRADE_RUNTIME_DIR)")
    group.add_argument("--offline", action="store_true", help="never download: use the cached runtime or fail with exit 4")
    group.add_argument("--timeout", type=float, default=600.0, help="seconds the target runtime may spend on one step: loading, one signature, one function import (default 600)")
    group.add_argument("--source-runtime", default="auto", metavar="auto|installed|VERSION",
                       help="where the source runs: 'installed' = the installed TensorFlow's Python API; a release "
                            "such as 2.21 = that release's real runtime (its C API, fetched and cached like the "
                            "target's); 'auto' (default) = the installed TensorFlow if it is at least the release "
                            "that wrote the model, else that release's runtime")
    group.add_argument("--python-loader", action="store_true",
                       help="also load OUT with TensorFlow 2.3's own Python API (tf.saved_model.load) and compare "
                            "every signature; --to 2.3 only. Builds that environment on first use (about 30 s, "
                            "630 MB in ~/.cache/tfdowngrade/py23env; needs apt-get, gcc and network)")


def _report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", type=Path, help="write a JSON report (for CI) here")
    parser.add_argument("--report-md", type=Path, help="write a Markdown summary here")
    parser.add_argument("--report-html", type=Path, help="write a self-contained HTML report here (rewrite "
                        "pictures, parity grades and error histograms; no network needed to view it)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines or bars (bars are drawn "
                        "only when stderr is a terminal)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tfdowngrade",
        description="Bring a TensorFlow SavedModel down to an older TensorFlow release, and prove it "
        "computes the same in that release's real runtime.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tfdowngrade {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{convert,check,verify,inspect,rules,targets}")

    convert = sub.add_parser("convert", help="convert IN to OUT (the default command)", epilog=EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    convert.add_argument("input", type=Path, metavar="IN")
    convert.add_argument("output", type=Path, metavar="OUT")
    convert.add_argument("--to", required=True,
                         help="target release, e.g. 2.3 or 2.3.4, or a consumer, e.g. tfjs-node@4.22 (tfdowngrade targets)")
    convert.add_argument("--force", action="store_true", help="replace OUT if it exists and is not empty")
    convert.add_argument("--no-verify", action="store_true", help="skip parity in the target runtime (the report says so)")
    convert.add_argument("--allow-lossy", action="append", default=[], metavar="RULE_ID",
                         help="allow a rule that is not exact (repeatable); the report records it")
    convert.add_argument("--strict", action="store_true",
                         help="refuse narrowing rules too (exact wherever the output runs, but failing loudly on "
                              "inputs the source handles; by default they apply with a warning), Keras metadata the "
                              "target cannot read (left out by default) and training-only functions (stubbed by default)")
    convert.add_argument("--rules-dir", type=Path, help=argparse.SUPPRESS)
    repository = convert.add_argument_group("repositories (IN is a serving base path, a folder of SavedModels "
                                            "or a models.config)")
    repository.add_argument("--jobs", type=int, default=1, metavar="N", help="convert N versions at once (default 1)")
    repository.add_argument("--shard", metavar="I/N", help="convert only shard I of N (0 <= I < N): a deterministic "
                            "share, for spreading a registry over the machines of a batch system")
    _report_options(convert)
    _parity_options(convert)

    check = sub.add_parser("check", help="plan a conversion without writing anything")
    check.add_argument("input", type=Path, metavar="IN")
    check.add_argument("--to", required=True)
    check.add_argument("--allow-lossy", action="append", default=[], metavar="RULE_ID")
    check.add_argument("--strict", action="store_true", help="refuse narrowing rules too (see convert --strict)")
    check.add_argument("--rules-dir", type=Path, help=argparse.SUPPRESS)
    _report_options(check)

    verify = sub.add_parser("verify", help="check parity of OUT against IN in the target runtime")
    verify.add_argument("output", type=Path, metavar="OUT")
    verify.add_argument("--against", type=Path, required=True, metavar="IN")
    verify.add_argument("--to", required=True)
    _report_options(verify)
    _parity_options(verify)

    inspect = sub.add_parser("inspect", help="show tags, signatures and ops (like saved_model_cli show)")
    inspect.add_argument("input", type=Path, metavar="IN")
    inspect.add_argument("--to", help="also list the ops and attrs this release lacks")

    rules = sub.add_parser("rules", help="list, show or check rules")
    rules_sub = rules.add_subparsers(dest="rules_command", metavar="{list,show,check,explain}")
    rules_sub.add_parser("list", help="every rule of every kind: id, since, kind, exactness, what it handles")
    show = rules_sub.add_parser("show", help="one rule in full")
    show.add_argument("rule_id")
    rule_check = rules_sub.add_parser("check", help="validate rule files (graph, object-graph and Keras-config) "
                                                   "against rules/rule.schema.json and their parsers")
    rule_check.add_argument("files", type=Path, nargs="*", metavar="FILE_OR_DIR",
                            help="rule files, or folders of them (default: every rule under rules/)")
    explain = rules_sub.add_parser("explain", help="why a rule (graph, object-graph or Keras-config) does or does not match each candidate of IN")
    explain.add_argument("rule_id", metavar="RULE_ID")
    explain.add_argument("input", type=Path, metavar="IN")
    explain.add_argument("--to", help="also say whether the rule is used for this target")
    explain.add_argument("--rules-dir", type=Path, help=argparse.SUPPRESS)

    targets = sub.add_parser("targets", help="consumers --to accepts (tfjs-node@4.22, ...) and their TF releases")
    targets.add_argument("--json", action="store_true", help="print JSON (for CI)")
    return parser


def _normalize_argv(argv: list[str]) -> list[str]:
    """`tfdowngrade IN OUT --to X` is `tfdowngrade convert IN OUT --to X`."""
    if not argv or argv[0] in SUBCOMMANDS or argv[0].startswith("-"):
        return argv
    return ["convert", *argv]


def finish_progress() -> None:
    from rewriter.progress import finish

    finish()


def _progress(quiet: bool) -> Callable[[str], None]:
    from rewriter.progress import step_reporter

    return step_reporter(quiet)


def _parity_from(args: argparse.Namespace) -> "ParityOptions":
    from rewriter.verify.parity import ParityOptions
    from rewriter.runtimes.source_runtime import parse_choice

    parse_choice(args.source_runtime)  # a malformed or unknown release is a usage error: before reading IN

    return ParityOptions(
        tags=tuple(t.strip() for t in args.tags.split(",") if t.strip()), seed=args.seed, inputs_file=args.inputs,
        expected_file=args.expected,
        rtol=args.rtol, atol=args.atol, runtime_dir=args.runtime_dir, offline=args.offline, timeout=args.timeout,
        python_loader=args.python_loader, source_runtime=args.source_runtime,
    )


# --- commands --------------------------------------------------------------------------
def _cmd_convert(args: argparse.Namespace) -> int:
    from rewriter import api
    from rewriter.report.conversion import Report, print_summary
    from rewriter.repository import is_repository

    if is_repository(args.input):
        return _cmd_convert_repository(args)
    if args.shard:
        raise BadInput(f"--shard needs a repository; {args.input} is one SavedModel")
    report = Report("convert", args.input, args.output)
    with _reported(report, args):
        try:
            api.convert(
                args.input, args.output, args.to, force=args.force, verify_parity=not args.no_verify,
                allow_lossy=args.allow_lossy, rules_dir=args.rules_dir, parity=_parity_from(args),
                progress=_progress(args.quiet), report=report, strict=args.strict,
                graph_pictures=bool(args.report_html),
            )
        except TfDowngradeError:
            finish_progress()
            if report.plan is not None or report.parity is not None:
                print_summary(report)
            raise
        finish_progress()  # the last step's line before the summary, not after it
        print_summary(report)
        print(f"wrote {args.output}")
    return EXIT_OK


def _cmd_convert_repository(args: argparse.Namespace) -> int:
    from rewriter.repository import convert_repository, write_report

    if args.report_md or args.report_html:
        raise BadInput("for a repository, --report (JSON, one entry per version) is the report; "
                       "convert one version to get its Markdown or HTML report")
    if args.jobs < 1:
        raise BadInput("--jobs must be at least 1")
    worst, report = convert_repository(args, _progress(args.quiet), args.quiet)
    if args.report:
        write_report(report, args.report)
    return worst


@contextlib.contextmanager
def _reported(report: "Report", args: argparse.Namespace) -> Iterator[None]:
    """Record a user-facing error in the report, and write --report/--report-md however it ends."""
    try:
        yield
    except TfDowngradeError as error:
        report.exit_code, report.error = error.exit_code, str(error)
        raise
    except Exception as error:  # a bug: main() logs it; the report must not claim success
        report.exit_code, report.error = EXIT_INTERNAL, f"internal error: {type(error).__name__}"
        raise
    except (KeyboardInterrupt, _Terminated):  # the report must not claim success either
        interrupted = isinstance(sys.exc_info()[1], KeyboardInterrupt)
        report.exit_code = 130 if interrupted else 128 + signal.SIGTERM
        report.error = "interrupted" if interrupted else "terminated"
        raise
    finally:
        if getattr(args, "report", None):
            report.write_json(args.report)
        if getattr(args, "report_md", None):
            report.write_markdown(args.report_md)
        if getattr(args, "report_html", None):
            from rewriter.report.html import write_html

            write_html(report, args.report_html)


def _cmd_check(args: argparse.Namespace) -> int:
    from rewriter import api
    from rewriter.report.conversion import Report, print_findings

    report = Report("check", args.input, None)
    report.parity_skipped = "check does not run the model"
    with _reported(report, args):
        planned = api.check(args.input, args.to, allow_lossy=args.allow_lossy, rules_dir=args.rules_dir,
                            progress=_progress(args.quiet), strict=args.strict,
                            graph_pictures=bool(args.report_html))
        report.plan = planned
        finish_progress()
        counts = Counter(app.rule for app in planned.applications)
        print(f"TensorFlow {planned.source_version} -> {planned.target}: "
              f"{len(planned.before)} problem(s) found before rewriting, {sum(counts.values())} rewrite(s) planned")
        for rule, n in sorted(counts.items()):
            print(f"  {rule}: {n}")
        for note in planned.notes:
            if note.startswith("warning: narrowing rule"):
                print(note)
        if planned.refusals:
            print(f"{len(planned.refusals)} problem(s) without an exact older form:")
            print_findings(planned.refusals)
            report.exit_code = EXIT_REFUSED
            return EXIT_REFUSED
        print(f"ok: everything has a rule for TensorFlow {planned.target}")
        return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from rewriter import api
    from rewriter.api import _parity_failure
    from rewriter.report.conversion import Report, print_summary

    report = Report("verify", args.against, args.output)
    with _reported(report, args):
        report.parity = api.verify(args.output, args.against, args.to, _parity_from(args), _progress(args.quiet))
        finish_progress()
        print_summary(report)
        if not report.parity.ok:
            raise ParityFailed(_parity_failure(report.parity))
    return EXIT_OK


def _cmd_inspect(args: argparse.Namespace) -> int:
    from rewriter.inspect import describe

    print(describe(args.input, args.to), end="")
    return EXIT_OK


def _cmd_targets(args: argparse.Namespace) -> int:
    from rewriter.targets import consumers
    from rewriter.targets.releases import known_releases, parse_release

    known = set(known_releases())
    rows = consumers.to_json()
    for row in rows:
        tf = row["tensorflow"]
        row["supported"] = True if tf == "X.Y" else parse_release(tf) in known
    if args.json:
        print(json.dumps({"releases": [r.key for r in sorted(known)], "consumers": rows}, indent=1))
        return EXIT_OK
    print("releases: " + ", ".join(r.key for r in sorted(known)))
    print(f"{'--to':<22} {'TensorFlow':<11} source")
    for row in rows:
        source = row["source"]
        mark = "" if row["supported"] else "  (no registry for this release yet)"
        checked = "" if row["verified"] else "  [not read from the consumer's files]"
        print(f"{row['name']:<22} {row['tensorflow']:<11} {source['repo']}: {source['path']}{checked}{mark}")
    return EXIT_OK


def _cmd_rules(args: argparse.Namespace) -> int:
    from rewriter.rules.loader import builtin_rules_dir

    if args.rules_command == "explain":
        from rewriter.targets.releases import parse_release
        from rewriter.rules.explain import explain_text

        target = None
        if args.to:
            try:
                target = parse_release(args.to)
            except Exception:
                raise BadInput(f"--to {args.to!r} is not a release like 2.3") from None
        print(explain_text(args.rule_id, args.input, target, args.rules_dir), end="")
        return EXIT_OK
    from rewriter.rules import catalog as rule_catalog

    if args.rules_command == "check":
        files = rule_catalog.rule_files(args.files or [builtin_rules_dir()])
        if not files:
            raise BadInput(f"no rule files (*.yaml) in {', '.join(map(str, args.files))}")
        for path in files:
            print(f"{path}: ok ({', '.join(rule_catalog.check_file(path))})")
        return EXIT_OK
    if args.rules_command == "show":
        text = rule_catalog.show(args.rule_id)
        if text is None:
            raise BadInput(f"no rule {args.rule_id!r} (see `tfdowngrade rules list`)")
        print(text, end="")
        return EXIT_OK
    rows = [("id", "since", "kind", "exactness", "handles")]
    for header in rule_catalog.all_headers():
        rows.append((header.id, str(header.since), header.kind, header.exactness, ", ".join(header.handles)))
    # The last column (often long) is not padded, so the table stays as narrow as its ids.
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    return EXIT_OK


def _run(argv: list[str]) -> int:
    from rewriter import progress

    parser = build_parser()
    args = parser.parse_args(_normalize_argv(argv))
    progress.configure(getattr(args, "quiet", False))
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    if args.command == "rules" and args.rules_command is None:
        raise BadInput("tfdowngrade rules: say list, show ID, check FILE or explain ID IN")
    _check_report_paths(args)
    handler = {
        "convert": _cmd_convert, "check": _cmd_check, "verify": _cmd_verify,
        "inspect": _cmd_inspect, "rules": _cmd_rules, "targets": _cmd_targets,
    }[args.command]
    return handler(args)


def _check_report_paths(args: argparse.Namespace) -> None:
    """A report that cannot be written is bad usage, found before any work (not a crash at the end)."""
    for flag in ("report", "report_md", "report_html"):
        path = getattr(args, flag, None)
        if path is None:
            continue
        option = "--" + flag.replace("_", "-")
        if Path(path).is_dir():
            raise BadInput(f"{option} {path}: is a folder; give a file path")
        parent = Path(path).parent
        if not parent.is_dir():
            raise BadInput(f"{option} {path}: the folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise BadInput(f"{option} {path}: the folder {parent} is not writable")


def _log_internal_error() -> Path:
    folder = Path(os.environ.get("TFDOWNGRADE_LOG_DIR", tempfile.gettempdir()))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"tfdowngrade-error-{stamp}-{os.getpid()}.log"
    path.write_text(f"tfdowngrade {__version__}\nargv: {sys.argv}\n\n{traceback.format_exc()}", "utf-8")
    return path


class _Terminated(BaseException):
    """SIGTERM, raised as an exception so that cleanup runs (the temporary output is removed and
    the runtime worker killed) before we exit 143, as a shell reports a SIGTERM death."""


def _one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", " ", text.strip())


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (main() called from a thread): keep the default
        pass
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's start-up chatter is not ours to print
    silence_tensorflow_import()  # ... nor what TF 2.16+ prints before it reads that level
    try:
        try:
            return _run(list(sys.argv[1:] if argv is None else argv))
        finally:
            from rewriter.progress import finish

            finish()  # before any error line, so it is not drawn over
    except Refused as error:
        print(f"tfdowngrade: refused: {error}", file=sys.stderr)
        from rewriter.report.conversion import print_findings

        print_findings(error.findings, sys.stderr)
        return error.exit_code
    except TfDowngradeError as error:
        # One line, even where it quotes a runtime's multi-line message ("...\n\t [[{{node x}}]]").
        print(f"tfdowngrade: error: {_one_line(str(error))}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:  # `tfdowngrade targets | head`: the reader left early; not a fault of ours
        # Python's documented recipe: point stdout at /dev/null so the exit-time flush cannot fail again.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE  # what a shell reports for a program that SIGPIPE ended
    except KeyboardInterrupt:
        print("tfdowngrade: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("tfdowngrade: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except SystemExit as exit_:
        return int(exit_.code or 0) if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] == "tensorflow":
            print("tfdowngrade: error: TensorFlow is not installed: pip install tensorflow-cpu (2.12 or newer)", file=sys.stderr)
            return EXIT_BAD_INPUT
        path = _log_internal_error()
        print(f"tfdowngrade: internal error: {error} (details in {path})", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as error:  # noqa: BLE001 - the one place that turns any bug into one line
        path = _log_internal_error()
        first = (str(error).strip().splitlines() or [""])[0]
        print(f"tfdowngrade: internal error: {type(error).__name__}: {first} (details in {path})", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
