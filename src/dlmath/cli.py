"""The ``dlmath`` command line: run the module's claims and show the module's overview.

Commands::

    dlmath verify [CHAPTER ...] [--thorough] [--seed N] [--json FILE|-] [--details] [--list]
    dlmath chapters [--run]
    dlmath --version

This file holds no mathematics and no course content: chapters come from `dlmath.module`,
claims from `dlmath.verify` (loaded by `dlmath.chapters.load_all`), and what is shown in
the terminal from `dlmath.report`. Only click is imported at start-up; NumPy, SciPy, the
engine and rich are imported when a command runs, so ``dlmath --help`` is quick.

Usage errors print one line to stderr and exit 2. Ctrl-C (SIGINT) during a run exits 130
and SIGTERM exits 143, after showing and saving the claims that finished.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click

from . import __version__
from . import verify as vf
from .module import CHAPTERS, Chapter

if TYPE_CHECKING:
    from rich.console import Console

PROG = "dlmath"
EXIT_USAGE = 2
EXIT_SIGINT = 128 + signal.SIGINT    # 130
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143


# --------------------------------------------------------------------------- errors


class CliError(click.ClickException):
    """A command-line error shown as one line, ``dlmath: <message>``, with exit status 2."""

    exit_code = EXIT_USAGE

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
    except click.UsageError as exc:
        raise _one_line(exc) from exc


class OneLineErrorGroup(click.Group):
    """A click group whose usage errors print one line and whose Ctrl-C exits 130 without a traceback."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        with _one_line_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with _one_line_errors():
                return super().invoke(ctx)
        except Terminated:
            click.echo(f"{PROG}: terminated", err=True)
            ctx.exit(EXIT_SIGTERM)
        except KeyboardInterrupt:
            click.echo(f"{PROG}: interrupted", err=True)
            ctx.exit(EXIT_SIGINT)


# --------------------------------------------------------------------------- signals


class Terminated(KeyboardInterrupt):
    """SIGTERM during a run: handled like Ctrl-C (finally blocks run, finished work is kept), exit 143."""


class _Signals:
    """SIGINT and SIGTERM raise exceptions, except inside `deferred` blocks (file writes), where they wait."""

    def __init__(self) -> None:
        self.deferring = 0
        self.pending: int | None = None

    def handler(self, signum: int, frame: object) -> None:
        if self.deferring:
            self.pending = signum
            return
        self.raise_for(signum)

    @staticmethod
    def raise_for(signum: int) -> NoReturn:
        if signum == signal.SIGTERM:
            raise Terminated()
        raise KeyboardInterrupt()

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold a signal that arrives inside the block until the block is done (then raise it)."""
        self.deferring += 1
        try:
            yield
        finally:
            self.deferring -= 1
        if not self.deferring and self.pending is not None:
            signum, self.pending = self.pending, None
            self.raise_for(signum)


_SIGNALS = _Signals()


@contextmanager
def _signals_handled() -> Iterator[None]:
    """During a run: SIGINT raises KeyboardInterrupt and SIGTERM raises `Terminated` (deferred during writes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _SIGNALS.handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------- JSON report


def _json_target(name: str) -> Path | None:
    """Where ``--json NAME`` writes: None for ``-`` (stdout), else the real path of a regular file.

    A symlink is followed: the report replaces the file it points to, and the link stays a
    link. Directories, FIFOs, devices and sockets are refused (a report is a file), as is a
    directory that does not exist or cannot be written. Checked before any claim runs.
    """
    if name == "-":
        return None
    shown = repr(name)
    real = Path(os.path.realpath(name))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise CliError(f"--json {shown}: {exc.strerror or exc}") from exc
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise CliError(f"--json {shown} is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise CliError(f"--json {shown} is not a regular file (a FIFO, device or socket); "
                       "use '--json -' for standard output")
    parent = real.parent
    if not parent.is_dir():
        raise CliError(f"--json {shown}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CliError(f"--json {shown}: directory {str(parent)!r} is not writable")
    return real


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` through a temporary file in its directory and `os.replace`.

    An existing file keeps its permission bits; a new one gets 0o666 less the umask, as
    with any file a program creates. Signals wait until the write is done (or undone), so
    the temporary file never outlives the run.
    """
    with _SIGNALS.deferred():
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(payload, f, indent=2)
                f.write("\n")
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _summary_dict(summary: vf.Summary, seconds: float) -> dict[str, Any]:
    return {
        "passed": summary.passed, "failed": summary.failed, "errors": summary.errors,
        "total": summary.passed + summary.failed + summary.errors, "ok": summary.ok,
        "seconds": round(seconds, 4),
        "by_chapter": {ch: {"passed": p, "total": t} for ch, (p, t) in summary.by_chapter.items()},
    }


def _report(seed: int, thorough: bool, results: Sequence[vf.Result], seconds: float,
            complete: bool) -> dict[str, Any]:
    return {
        "seed": seed, "thorough": thorough, "complete": complete, "results": [r.to_dict() for r in results],
        "summary": _summary_dict(vf.summarize(results), seconds),
    }


def _save(target: Path | None, payload: dict[str, Any]) -> None:
    """The report to ``target`` (atomically), or to stdout when ``target`` is None (``--json -``)."""
    if target is None:
        with _SIGNALS.deferred():
            json.dump(payload, sys.stdout, indent=2)
            sys.stdout.write("\n")
            sys.stdout.flush()
        return
    try:
        _write_json_atomic(target, payload)
    except OSError as exc:
        raise CliError(f"cannot write --json {str(target)!r}: {exc.strerror or exc}") from exc


# --------------------------------------------------------------------------- commands


@click.group(name=PROG, cls=OneLineErrorGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name=PROG, message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """dlmath: the mathematics of deep learning, with every claim checked by a program."""
    if ctx.invoked_subcommand is None:  # `dlmath` alone: the help, and success
        click.echo(ctx.get_help())
        ctx.exit(0)


def _check_seed(ctx: click.Context, param: click.Parameter, value: int) -> int:
    """``--seed`` must be a non-negative integer."""
    if value < 0:
        raise click.BadParameter(f"{value} is negative; use an integer >= 0", ctx, param)
    return value


def _resolve_chapters(names: Sequence[str]) -> list[Chapter]:
    """The chapters named on the command line (ids or numbers), without duplicates, in the order given."""
    chapters: list[Chapter] = []
    for name in names:
        try:
            chapter = vf.resolve_chapter(name)
        except vf.UnknownChapterError as exc:
            raise CliError(str(exc)) from exc
        if chapter not in chapters:
            chapters.append(chapter)
    return chapters


def _load_claims() -> None:
    """Import every chapter module, so that its claims register (this imports the engine)."""
    from . import chapters

    chapters.load_all()


def _selection_label(chapters: Sequence[Chapter]) -> str:
    """``chapter 3 backprop`` / ``chapters 3 backprop, 6 attention`` / ``any chapter``."""
    if not chapters:
        return "any chapter"
    names = ", ".join(f"{c.number} {c.id}" for c in chapters)
    return f"chapter{'s' if len(chapters) > 1 else ''} {names}"


@cli.command("verify")
@click.argument("chapters", nargs=-1, metavar="[CHAPTER]...")
@click.option("--thorough", is_flag=True, help="Run the slower, more thorough version of each check.")
@click.option("--seed", type=int, default=0, show_default=True, callback=_check_seed,
              help="Seed of the run; each claim derives its own seed from it.")
@click.option("--json", "json_name", metavar="FILE",
              help="Also write the results as JSON to FILE, a regular file or a symlink to one (atomically, "
                   "after each claim, keeping the file's permissions). '-' writes the JSON to standard output "
                   "and the table to standard error.")
@click.option("--list", "list_only", is_flag=True, help="List the selected claims without running them.")
@click.option("--details", is_flag=True,
              help="After the table, show each claim's statement, source, every measurement and cross-check "
                   "with its tolerance and reason, and the verdicts derived from them.")
@click.pass_context
def verify_command(ctx: click.Context, chapters: tuple[str, ...], thorough: bool, seed: int,
                   json_name: str | None, list_only: bool, details: bool) -> None:
    """Check the claims of the named chapters (all chapters when none is named).

    CHAPTER is a chapter id (backprop) or number (3). Exit status: 0 when every
    selected claim passes, 1 when one fails or errors, 2 on a usage error, 130 when
    interrupted (Ctrl-C) and 143 when terminated (SIGTERM).
    """
    selected = _resolve_chapters(chapters)
    use_json = json_name is not None and not list_only
    target = _json_target(json_name) if use_json and json_name is not None else None
    from . import report

    _load_claims()
    claims = vf.select([c.id for c in selected])
    out = report.console(sys.stderr if use_json and target is None else sys.stdout)
    if not claims:
        out.print(f"No claims are registered yet for {_selection_label(selected)}; nothing to run.")
    elif list_only:
        out.print(report.claims_table(claims))
    if list_only or not claims:
        if use_json:
            _save(target, _report(seed, thorough, [], 0.0, complete=True))
        return
    ctx.exit(_verify(out, claims, seed, thorough, use_json, target, details))


def _verify(out: Console, claims: Sequence[vf.Claim], seed: int, thorough: bool, use_json: bool,
            target: Path | None, details: bool = False) -> int:
    """Run, show, save; the exit status (0 all pass, 1 one fails or errors, 130/143 interrupted)."""
    from . import report

    start = time.perf_counter()
    results: list[vf.Result] = []

    def save_partial(done: list[vf.Result]) -> None:
        # an interrupted run keeps every finished result on disk ("complete": false until the end)
        if use_json and target is not None and len(done) < len(claims):
            _save(target, _report(seed, thorough, done, time.perf_counter() - start, complete=False))

    status = 0
    with _signals_handled():
        try:
            report.run_with_progress(claims, seed, thorough, results, save_partial)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (`Terminated`): keep what finished
            status = EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT
        seconds = time.perf_counter() - start
        complete = status == 0
        summary = vf.summarize(results)
        out.print(report.results_table(results, seed, thorough))
        out.print(report.summary_line(summary, seconds, total=len(claims)))
        for line in report.problem_lines(results):
            out.print(line)
        if details:
            for line in report.detail_lines(results):
                out.print(line)
        if use_json:
            _save(target, _report(seed, thorough, results, seconds, complete=complete))
            if target is not None:
                out.print(f"wrote {target}", style="dim", highlight=False)
    if status:
        return status
    return 0 if summary.ok else 1


@cli.command("chapters")
@click.option("--run", "run_claims", is_flag=True,
              help="Run every claim and show how many pass (by default the registered claims are counted).")
def chapters_command(run_claims: bool) -> None:
    """Show the module overview: the chapters, their claims, the learning path, links and course map."""
    from . import report

    _load_claims()
    claims = vf.select()
    counts = {c.id: (0, 0) for c in CHAPTERS}
    if run_claims:
        results: list[vf.Result] = []
        with _signals_handled():
            report.run_with_progress(claims, seed=0, thorough=False, results=results)
        for chapter, (passed, total) in vf.summarize(results).by_chapter.items():
            counts[chapter] = (passed, total)
    else:
        for c in claims:
            counts[c.chapter] = (0, counts[c.chapter][1] + 1)
    out = report.console(sys.stdout)
    out.print(report.chapters_table(counts, ran=run_claims))
    for line in report.chapter_notes():
        out.print(line)
    out.print()
    out.print(report.learning_path_tree())
    out.print()
    out.print(report.links_tree())
    out.print()
    out.print(report.course_map_table())


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``dlmath`` script and of ``python -m dlmath``."""
    cli.main(args=list(argv) if argv is not None else None, prog_name=PROG)
    sys.exit(0)  # unreachable in standalone mode: click exits; here for the type checker
