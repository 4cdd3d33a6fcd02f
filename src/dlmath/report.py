"""What ``dlmath`` shows in a terminal: the verify table, details, the module overview (with rich).

The command line (`dlmath.cli`) imports this module only when a command runs, so that
``dlmath --help`` does not pay for rich. Formulas are shown through `dlmath.latex_text`,
which turns a claim's LaTeX statement into readable Unicode.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import IO

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from . import module
from . import verify as vf
from .latex_text import to_text

FALLBACK_WIDTH = 120  # console width when the output is not a terminal (pipes, files, tests) and $COLUMNS is unset

VERDICT_STYLE = {"pass": ("pass", "green"), "fail": ("FAIL", "bold red"), "error": ("ERROR", "bold magenta")}


# --------------------------------------------------------------------------- consoles


def console(file: IO[str]) -> Console:
    """A rich console on ``file``: auto width and colour on a terminal; fixed width, no colour otherwise."""
    try:
        tty = file.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        return Console(file=file, highlight=False)
    return Console(file=file, highlight=False, width=fallback_width(), color_system=None,
                   force_terminal=False, no_color=True)


def fallback_width() -> int:
    """``$COLUMNS`` when it is a sensible number, else `FALLBACK_WIDTH`."""
    try:
        width = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        return FALLBACK_WIDTH
    return width if 40 <= width <= 1000 else FALLBACK_WIDTH


# --------------------------------------------------------------------------- running


def run_with_progress(claims: Sequence[vf.Claim], seed: int, thorough: bool, results: list[vf.Result],
                      on_result: Callable[[list[vf.Result]], None] | None = None) -> list[vf.Result]:
    """Run ``claims`` one by one into ``results``, with a transient progress bar on stderr (when a terminal).

    ``results`` is the caller's list, so that what finished survives an interruption
    (KeyboardInterrupt propagates). ``on_result`` sees the results so far after each claim.
    """
    err = console(sys.stderr)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("claims", total=len(claims))
        for c in claims:
            progress.update(task, description=c.id)
            results.append(vf.run_claim(c, seed=seed, thorough=thorough))
            progress.advance(task)
            if on_result is not None:
                on_result(results)
    return results


# --------------------------------------------------------------------------- the verify table


def num(x: float) -> str:
    """A measured value or tolerance, compactly (``1.234e-14``, ``0.5``, ``nan``)."""
    return f"{x:.4g}"


def tolerance(comparison: str, value: float) -> str:
    return f"{comparison} {num(value)}"


def verdict_text(verdict: str) -> Text:
    label, style = VERDICT_STYLE.get(verdict, (verdict, ""))
    return Text(label, style=style)


def results_table(results: Sequence[vf.Result], seed: int, thorough: bool) -> Table:
    """One row per claim (and one more under each erratum, for its printed form).

    Fits 80 columns with the longest claim id whole: no chapter column (the id's prefix
    names the chapter), no borders, short verdicts.
    """
    mode = "thorough" if thorough else "quick"
    table = Table(title=f"dlmath verify (seed {seed}, {mode})", title_justify="left", box=None,
                  pad_edge=False, header_style="bold")
    table.add_column("claim", no_wrap=True)
    table.add_column("measured", justify="right", no_wrap=True)
    table.add_column("tolerance", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("time", justify="right")
    for r in results:
        ev = r.evidence
        measured, tol = (num(ev.measured), tolerance(ev.comparison, ev.tolerance)) if ev is not None else ("-", "-")
        table.add_row(Text(r.claim.id), measured, tol, verdict_text(r.verdict), f"{r.seconds:.2f}s")
        if ev is not None and ev.printed is not None:
            holds = ev.printed_passed
            verdict = Text("holds", style="yellow") if holds else Text("fails", style="red")
            table.add_row(Text("  printed form", style="italic"), num(ev.printed.measured),
                          tolerance(ev.comparison, ev.tolerance), verdict, "")
    return table


def summary_line(summary: vf.Summary, seconds: float, total: int | None = None) -> Text:
    """``N passed, N failed, N errors in S s`` (and ``; interrupted after N of M claims``)."""
    errors = "error" if summary.errors == 1 else "errors"
    line = f"{summary.passed} passed, {summary.failed} failed, {summary.errors} {errors} in {seconds:.2f} s"
    done = summary.passed + summary.failed + summary.errors
    if total is not None and done < total:
        line += f"; interrupted after {done} of {total} claims"
        return Text(line, style="bold yellow")
    return Text(line, style="bold green" if summary.ok else "bold red")


def problem_lines(results: Sequence[vf.Result]) -> list[Text]:
    """For each failed or errored claim: what went wrong, in words (each failing measurement)."""
    lines: list[Text] = []
    for r in results:
        if r.verdict == "error":
            lines.append(Text(f"ERROR {r.claim.id}: {r.error}", style="magenta"))
        elif r.verdict == "fail" and r.evidence is not None:
            ev = r.evidence
            lines.append(Text(f"FAIL {r.claim.id}: {ev.details or 'see the measurements below'}", style="red"))
            if not ev.main_passed:
                lines.append(Text(f"     measured {num(ev.measured)}, needs {tolerance(ev.comparison, ev.tolerance)}"
                                  f": {ev.tolerance_reason}"))
            for c in ev.cross_checks:
                if not c.passed:
                    lines.append(Text(f"     cross-check {c.name} measured {num(c.measured)}, needs "
                                      f"{tolerance(c.comparison, c.tolerance)}: {c.reason}"))
    return lines


def _passes(ok: bool | None) -> str:
    return "pass" if ok else "FAIL"


def detail_lines(results: Sequence[vf.Result]) -> list[Text]:
    """``--details``: each claim's statement (as Unicode), source, every measurement and the derived verdicts."""
    lines: list[Text] = []
    for r in results:
        lines.append(Text(""))
        lines.append(Text(f"{r.claim.id}: {r.claim.title} [{r.verdict}]", style="bold"))
        lines.append(Text(f"  statement: {to_text(r.claim.statement)}"))
        lines.append(Text(f"  source:    {r.claim.source}"))
        ev = r.evidence
        if ev is None:
            lines.append(Text(f"  error:     {r.error}", style="magenta"))
            continue
        lines.append(Text(f"  measured:  {num(ev.measured)}, needs {tolerance(ev.comparison, ev.tolerance)}: "
                          f"{_passes(ev.main_passed)} ({ev.tolerance_reason})"))
        for c in ev.cross_checks:
            lines.append(Text(f"  cross-check {c.name}: {num(c.measured)}, needs "
                              f"{tolerance(c.comparison, c.tolerance)}: {_passes(c.passed)} ({c.reason})"))
        if ev.details:
            lines.append(Text(f"  details:   {ev.details}"))
        if ev.printed is not None:
            verdict = "passes" if ev.printed_passed else "fails"
            lines.append(Text(f"  printed:   {to_text(ev.printed.statement)} measures {num(ev.printed.measured)} "
                              f"and {verdict}; correction from {ev.printed.correction_source}"))
        n = len(ev.cross_checks)
        checks = f"{sum(c.passed for c in ev.cross_checks)} of {n} cross-checks pass" if n else "no cross-checks"
        lines.append(Text(f"  verdict:   {r.verdict} (main measurement {_passes(ev.main_passed)}; {checks})"))
    return lines


def claims_table(claims: Sequence[vf.Claim]) -> Table:
    """The ``--list`` table: each selected claim's id, title and source."""
    table = Table(title="dlmath claims", title_justify="left", box=None, pad_edge=False, header_style="bold")
    table.add_column("claim", no_wrap=True)
    table.add_column("title", ratio=2)
    table.add_column("source", ratio=1)
    for c in claims:
        title = Text(c.title)
        if c.erratum:
            title.append(" (erratum)", style="yellow")
        table.add_row(Text(c.id), title, Text(c.source))
    return table


# --------------------------------------------------------------------------- the module overview


def chapters_table(counts: dict[str, tuple[int, int]], ran: bool) -> Table:
    """The nine chapters with their topics, key formula and claims (passed/total, or registered)."""
    table = Table(title=f"{module.TITLE}: chapters", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("id")
    table.add_column("title")
    table.add_column("topics", ratio=3)
    table.add_column("key formula", ratio=3, overflow="fold")
    table.add_column("claims passed" if ran else "claims", justify="right")
    for c in module.CHAPTERS:
        passed, total = counts.get(c.id, (0, 0))
        table.add_row(str(c.number), c.id, c.title, c.topics, Text(c.key_formula_text),
                      _count_cell(passed, total, ran))
    return table


def chapter_notes() -> list[Text]:
    """Where the module prints a chapter's key formula differently from the one shown."""
    return [Text(f"Chapter {c.number} ({c.id}): {c.note}.", style="dim") for c in module.CHAPTERS if c.note]


def _count_cell(passed: int, total: int, ran: bool) -> Text:
    if total == 0:
        return Text("none yet", style="dim")
    if not ran:
        return Text(str(total))
    return Text(f"{passed}/{total}", style="green" if passed == total else "red")


def learning_path_tree() -> Tree:
    tree = Tree(Text("Learning path", style="bold"))
    for stage in module.LEARNING_PATH:
        branch = tree.add(f"{stage.name} ({stage.duration})")
        for topic in stage.topics:
            branch.add(module.topic_label(topic))
    return tree


def links_tree() -> Tree:
    tree = Tree(Text("Links to other modules", style="bold"))
    for link in module.MODULE_LINKS:
        branch = tree.add(link.module)
        for chapter, concept in link.links:
            branch.add(f"{module.topic_label(chapter)} -> {concept}")
    return tree


def course_map_table() -> Table:
    table = Table(title="Courses this module is benchmarked against", title_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False)
    table.add_column("university")
    table.add_column("course")
    table.add_column("matching content")
    for c in module.COURSE_MAP:
        table.add_row(c.university, c.course, c.matching)
    return table
