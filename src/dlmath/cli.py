"""The ``dlmath`` command line: run the module's claims and show the module's overview.

Commands::

    dlmath verify [CHAPTER ...] [--thorough] [--seed N] [--json FILE] [--list]
    dlmath chapters [--no-run]
    dlmath --version

This file holds no mathematics: it selects claims from `dlmath.verify`, runs them,
and shows what they measured. Usage errors print one line to stderr and exit 2.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from . import __version__
from . import verify as vf

PROG = "dlmath"
FALLBACK_WIDTH = 120  # console width when the output is not a terminal (pipes, files, tests)

# The module overview's learning path: (stage, duration, chapter ids or other topics).
LEARNING_PATH: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Stage 1, foundations", "2-3 weeks", ("approximation", "backprop")),
    ("Stage 2, architectures", "3-4 weeks", ("residual", "attention")),
    ("Stage 3, advanced", "2-3 weeks", ("ntk", "optimisation dynamics (training and stability analysis)")),
)

# The module overview's links to other modules: (module, ((chapter id, the concept it leads to), ...)).
MODULE_LINKS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Optimisation theory", (("backprop", "gradient descent"), ("batchnorm", "optimisation stability"))),
    ("Statistical learning", (("approximation", "expressive power"), ("dropout", "regularisation theory"))),
    ("Information theory", (("attention", "information selection"),)),
)

VERDICT_STYLE = {"pass": ("pass", "green"), "fail": ("FAIL", "bold red"), "error": ("ERROR", "bold magenta")}


# --------------------------------------------------------------------------- errors


class CliError(click.ClickException):
    """A command-line error shown as one line, ``dlmath: <message>``, with exit status 2."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"{PROG}: {self.format_message()}", file=file if file is not None else sys.stderr)


def _one_line(exc: click.UsageError) -> CliError:
    """Click's usage error (usage text, hint and message) as a single-line `CliError`."""
    message = exc.format_message()
    if message:
        message = message[0].lower() + message[1:]
    if exc.ctx is not None:
        message = f"{message.rstrip('.')} (see '{exc.ctx.command_path} --help')"
    return CliError(message)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turn click's usage errors raised inside the block into one-line `CliError`s."""
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:
        raise  # `dlmath` alone: click shows the help, which is what the user wants
    except click.UsageError as exc:
        raise _one_line(exc) from exc


class OneLineErrorGroup(click.Group):
    """A click group whose usage errors (of its own options and of its commands) print one line."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        with _one_line_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _one_line_errors():
            return super().invoke(ctx)


# --------------------------------------------------------------------------- consoles


def _make_console(file: IO[str]) -> Console:
    """A rich console on ``file``: auto width and colour on a terminal; fixed width, no colour otherwise."""
    try:
        tty = file.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        return Console(file=file, highlight=False)
    return Console(file=file, highlight=False, width=_fallback_width(), color_system=None,
                   force_terminal=False, no_color=True)


def _fallback_width() -> int:
    """``$COLUMNS`` when it is a sensible number, else `FALLBACK_WIDTH`."""
    try:
        width = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        return FALLBACK_WIDTH
    return width if 40 <= width <= 1000 else FALLBACK_WIDTH


def _stdout() -> Console:
    return _make_console(sys.stdout)


def _stderr() -> Console:
    return _make_console(sys.stderr)


# --------------------------------------------------------------------------- running


def _resolve_chapters(names: Sequence[str]) -> list[vf.Chapter]:
    """The chapters named on the command line (ids or numbers), without duplicates, in the order given."""
    chapters: list[vf.Chapter] = []
    for name in names:
        try:
            chapter = vf.resolve_chapter(name)
        except vf.UnknownChapterError as exc:
            raise CliError(str(exc)) from exc
        if chapter not in chapters:
            chapters.append(chapter)
    return chapters


def _run_with_progress(claims: Sequence[vf.Claim], seed: int, thorough: bool,
                       on_result: Callable[[list[vf.Result]], None] | None = None) -> list[vf.Result]:
    """Run ``claims`` one by one, with a transient progress bar on stderr when stderr is a terminal.

    ``on_result`` sees the results so far after each claim (used to save finished work as it comes).
    """
    err = _stderr()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    results: list[vf.Result] = []
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("claims", total=len(claims))
        for c in claims:
            progress.update(task, description=c.id)
            results.append(vf.run_claim(c, seed=seed, thorough=thorough))
            progress.advance(task)
            if on_result is not None:
                on_result(results)
    return results


def _selection_label(chapters: Sequence[vf.Chapter]) -> str:
    """``chapter 3 backprop`` / ``chapters 3 backprop, 6 attention`` / ``any chapter``."""
    if not chapters:
        return "any chapter"
    names = ", ".join(f"{c.number} {c.id}" for c in chapters)
    return f"chapter{'s' if len(chapters) > 1 else ''} {names}"


# --------------------------------------------------------------------------- formatting


def _num(x: float) -> str:
    """A measured value or tolerance, compactly (``1.234e-14``, ``0.5``, ``nan``)."""
    return f"{x:.4g}"


def _tolerance(evidence: vf.Evidence) -> str:
    return f"{evidence.comparison} {_num(evidence.tolerance)}"


def _verdict_text(verdict: str) -> Text:
    label, style = VERDICT_STYLE.get(verdict, (verdict, ""))
    return Text(label, style=style)


def _printed_row(printed: vf.PrintedForm, evidence: vf.Evidence) -> list[Text | str]:
    """The row under an erratum: the module's printed formula, measured against the same tolerance."""
    verdict = (Text("passes as printed", style="yellow") if evidence.printed_passed
               else Text("fails as printed", style="red"))
    return ["", Text("  printed form", style="italic"), _num(printed.measured), _tolerance(evidence), verdict, ""]


def _results_table(results: Sequence[vf.Result], seed: int, thorough: bool) -> Table:
    """One row per claim (and one more under each erratum, for its printed form)."""
    mode = "thorough" if thorough else "quick"
    table = Table(title=f"dlmath verify (seed {seed}, {mode})", title_justify="left")
    table.add_column("chapter")
    table.add_column("claim", overflow="fold")
    table.add_column("measured", justify="right")
    table.add_column("tolerance", justify="right")
    table.add_column("verdict")
    table.add_column("seconds", justify="right")
    for r in results:
        ev = r.evidence
        measured, tolerance = (_num(ev.measured), _tolerance(ev)) if ev is not None else ("-", "-")
        table.add_row(r.claim.chapter, Text(r.claim.id), measured, tolerance, _verdict_text(r.verdict),
                      f"{r.seconds:.2f}")
        if ev is not None and ev.printed is not None:
            table.add_row(*_printed_row(ev.printed, ev))
    return table


def _summary_line(summary: vf.Summary, seconds: float) -> Text:
    """``N passed, N failed, N errors in S s``, coloured by the overall outcome."""
    errors = "error" if summary.errors == 1 else "errors"
    line = f"{summary.passed} passed, {summary.failed} failed, {summary.errors} {errors} in {seconds:.2f} s"
    return Text(line, style="bold green" if summary.ok else "bold red")


def _problem_lines(results: Sequence[vf.Result]) -> list[Text]:
    """For each failed or errored claim: what went wrong, in words."""
    lines: list[Text] = []
    for r in results:
        if r.verdict == "error":
            lines.append(Text(f"ERROR {r.claim.id}: {r.error}", style="magenta"))
        elif r.verdict == "fail" and r.evidence is not None:
            ev = r.evidence
            what = ev.details or f"measured {_num(ev.measured)}, needs {_tolerance(ev)}"
            lines.append(Text(f"FAIL {r.claim.id}: {what}", style="red"))
            if ev.tolerance_reason:
                lines.append(Text(f"     tolerance {_tolerance(ev)}: {ev.tolerance_reason}"))
    return lines


def _detail_lines(results: Sequence[vf.Result]) -> list[Text]:
    """``--details``: every claim's statement, source, evidence and, for errata, the printed form."""
    lines: list[Text] = []
    for r in results:
        lines.append(Text(""))
        lines.append(Text(f"{r.claim.id}: {r.claim.title} [{r.verdict}]", style="bold"))
        lines.append(Text(f"  statement: {r.claim.statement}"))
        lines.append(Text(f"  source:    {r.claim.source}"))
        ev = r.evidence
        if ev is None:
            lines.append(Text(f"  error:     {r.error}", style="magenta"))
            continue
        lines.append(Text(f"  measured:  {_num(ev.measured)} (needs {_tolerance(ev)}: {ev.tolerance_reason})"))
        if ev.details:
            lines.append(Text(f"  details:   {ev.details}"))
        if ev.printed is not None:
            verdict = "fails" if not ev.printed_passed else "passes"
            lines.append(Text(f"  printed:   {ev.printed.statement} measures {_num(ev.printed.measured)} and "
                              f"{verdict}; correction from {ev.printed.correction_source}"))
    return lines


def _claims_table(claims: Sequence[vf.Claim]) -> Table:
    """The ``--list`` table: each selected claim's id, title and source."""
    table = Table(title="dlmath claims", title_justify="left")
    table.add_column("claim", overflow="fold")
    table.add_column("title")
    table.add_column("source")
    for c in claims:
        title = Text(c.title)
        if c.erratum:
            title.append(" (erratum)", style="yellow")
        table.add_row(Text(c.id), title, Text(c.source))
    return table


# --------------------------------------------------------------------------- JSON report


def _summary_dict(summary: vf.Summary, seconds: float) -> dict[str, Any]:
    return {
        "passed": summary.passed, "failed": summary.failed, "errors": summary.errors,
        "total": summary.passed + summary.failed + summary.errors, "ok": summary.ok,
        "seconds": round(seconds, 4),
        "by_chapter": {ch: {"passed": p, "total": t} for ch, (p, t) in summary.by_chapter.items()},
    }


def _check_json_target(path: Path) -> None:
    """Fail early (before any claim runs) when the report could not be written."""
    if path.is_dir():
        raise CliError(f"--json {str(path)!r} is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"--json {str(path)!r}: directory {str(parent)!r} does not exist")


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` through a temporary file in the same directory and `os.replace`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_report(path: Path, seed: int, thorough: bool, results: Sequence[vf.Result], seconds: float,
                  complete: bool = True) -> None:
    payload = {
        "seed": seed, "thorough": thorough, "complete": complete, "results": [r.to_dict() for r in results],
        "summary": _summary_dict(vf.summarize(results), seconds),
    }
    try:
        _write_json_atomic(path, payload)
    except OSError as exc:
        raise CliError(f"cannot write --json {str(path)!r}: {exc.strerror or exc}") from exc


# --------------------------------------------------------------------------- commands


@click.group(name=PROG, cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name=PROG, message="%(prog)s %(version)s")
def cli() -> None:
    """dlmath: the mathematics of deep learning, with every claim checked by a program."""


def _check_seed(ctx: click.Context, param: click.Parameter, value: int) -> int:
    """``--seed`` must be a non-negative integer."""
    if value < 0:
        raise click.BadParameter(f"{value} is negative; use an integer >= 0", ctx, param)
    return value


@cli.command("verify")
@click.argument("chapters", nargs=-1, metavar="[CHAPTER]...")
@click.option("--thorough", is_flag=True, help="Run the slower, more thorough version of each check.")
@click.option("--seed", type=int, default=0, show_default=True, callback=_check_seed,
              help="Seed of the run; each claim derives its own seed from it.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Also write the results as JSON to FILE (atomically, after each claim).")
@click.option("--list", "list_only", is_flag=True, help="List the selected claims without running them.")
@click.option("--details", is_flag=True,
              help="After the table, show each claim's statement, source, tolerance reason and details.")
@click.pass_context
def verify_command(ctx: click.Context, chapters: tuple[str, ...], thorough: bool, seed: int,
                   json_path: Path | None, list_only: bool, details: bool) -> None:
    """Check the claims of the named chapters (all chapters when none is named).

    CHAPTER is a chapter id (backprop) or number (3). Exit status: 0 when every
    selected claim passes, 1 when one fails or errors, 2 on a usage error.
    """
    selected = _resolve_chapters(chapters)
    if json_path is not None and not list_only:
        _check_json_target(json_path)
    claims = vf.select([c.id for c in selected])
    out = _stdout()
    if not claims:
        out.print(f"No claims are registered yet for {_selection_label(selected)}; nothing to run.")
    elif list_only:
        out.print(_claims_table(claims))
    if list_only or not claims:
        if json_path is not None and not list_only:
            _write_report(json_path, seed, thorough, [], 0.0)
        return
    ctx.exit(_verify(out, claims, seed, thorough, json_path, details))


def _verify(out: Console, claims: Sequence[vf.Claim], seed: int, thorough: bool, json_path: Path | None,
            details: bool = False) -> int:
    """Run, show, report; the exit status (0 when every claim passes, else 1)."""
    start = time.perf_counter()

    def save_partial(done: list[vf.Result]) -> None:
        # an interrupted run keeps every finished result on disk ("complete": false until the end)
        if json_path is not None and len(done) < len(claims):
            _write_report(json_path, seed, thorough, done, time.perf_counter() - start, complete=False)
    results = _run_with_progress(claims, seed, thorough, save_partial)
    seconds = time.perf_counter() - start
    summary = vf.summarize(results)
    out.print(_results_table(results, seed, thorough))
    out.print(_summary_line(summary, seconds))
    for line in _problem_lines(results):
        out.print(line)
    if details:
        for line in _detail_lines(results):
            out.print(line)
    if json_path is not None:
        _write_report(json_path, seed, thorough, results, seconds)
        out.print(Text(f"wrote {json_path}", style="dim"))
    return 0 if summary.ok else 1


@cli.command("chapters")
@click.option("--no-run", is_flag=True, help="Only count the registered claims; do not run them.")
def chapters_command(no_run: bool) -> None:
    """Show the module overview: the chapters, their claims, the learning path and the links."""
    claims = vf.select()
    counts = _chapter_counts(claims, run=not no_run)
    out = _stdout()
    out.print(_chapters_table(counts, ran=not no_run))
    out.print()
    out.print(_learning_path_tree())
    out.print()
    out.print(_links_tree())


def _chapter_counts(claims: Sequence[vf.Claim], run: bool) -> dict[str, tuple[int, int]]:
    """Chapter id -> (claims passed, claims registered); passed is 0 when not run."""
    counts = {c.id: (0, 0) for c in vf.CHAPTERS}
    if not run:
        for c in claims:
            counts[c.chapter] = (0, counts[c.chapter][1] + 1)
        return counts
    summary = vf.summarize(_run_with_progress(claims, seed=0, thorough=False))
    for chapter, (passed, total) in summary.by_chapter.items():
        counts[chapter] = (passed, total)
    return counts


def _chapters_table(counts: dict[str, tuple[int, int]], ran: bool) -> Table:
    """The nine chapters with their topics, key formula and claims (passed/total, or registered)."""
    table = Table(title="Deep Learning Mathematics: chapters", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("id")
    table.add_column("title")
    table.add_column("topics", ratio=3)
    table.add_column("key formula", ratio=3, overflow="fold")
    table.add_column("claims passed" if ran else "claims registered", justify="right")
    for c in vf.CHAPTERS:
        passed, total = counts[c.id]
        formula = Text(c.key_formula_text or c.key_formula)
        table.add_row(str(c.number), c.id, c.title, c.topics, formula, _count_cell(passed, total, ran))
    return table


def _count_cell(passed: int, total: int, ran: bool) -> Text:
    if total == 0:
        return Text("none yet", style="dim")
    if not ran:
        return Text(str(total))
    return Text(f"{passed}/{total}", style="green" if passed == total else "red")


def _topic_label(topic: str) -> str:
    """A chapter id as ``3 Backpropagation``; any other topic unchanged."""
    chapter = vf.CHAPTER_BY_ID.get(topic)
    return f"{chapter.number} {chapter.title}" if chapter else topic


def _learning_path_tree() -> Tree:
    tree = Tree(Text("Learning path", style="bold"))
    for stage, duration, topics in LEARNING_PATH:
        branch = tree.add(f"{stage} ({duration})")
        for topic in topics:
            branch.add(_topic_label(topic))
    return tree


def _links_tree() -> Tree:
    tree = Tree(Text("Links to other modules", style="bold"))
    for module, links in MODULE_LINKS:
        branch = tree.add(module)
        for chapter, concept in links:
            branch.add(f"{_topic_label(chapter)} -> {concept}")
    return tree


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``dlmath`` script and of ``python -m dlmath``."""
    cli.main(args=list(argv) if argv is not None else None, prog_name=PROG)
    sys.exit(0)  # unreachable in standalone mode: click exits; here for the type checker

