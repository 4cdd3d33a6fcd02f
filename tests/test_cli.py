"""The ``dlmath`` command line, run against fake claims in an isolated registry."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import dlmath
import dlmath.chapters
from dlmath import verify as vf
from dlmath.cli import cli
from dlmath.module import CHAPTERS

AddClaim = Callable[..., None]


def isolate_registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, vf.Claim]:
    """An empty claim registry for the test; the real one (and the chapter modules) are left alone."""
    fresh: dict[str, vf.Claim] = {}
    monkeypatch.setattr(vf, "REGISTRY", fresh)
    monkeypatch.setattr(dlmath.chapters, "load_all", lambda: vf.REGISTRY)
    return fresh


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, vf.Claim]:
    return isolate_registry(monkeypatch)


@pytest.fixture
def add_claim(registry: dict[str, vf.Claim]) -> AddClaim:
    """Register a fake claim whose check is ``check`` (by default an always-passing one)."""

    def add(id: str, check: vf.Check | None = None, *, erratum: bool = False) -> None:
        def passing(ctx: vf.RunContext) -> vf.Evidence:
            return vf.Evidence.at_most(1e-12, 1e-10, "rounding only", "fake: fine")

        check = check or passing
        vf.claim(id, title=f"title of {id}", statement="x = x", source=f"source of {id}", erratum=erratum)(check)

    return add


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def failing(ctx: vf.RunContext) -> vf.Evidence:
    return vf.Evidence.at_most(0.5, 1e-10, "rounding only", "fake: off by a half")


def crashing(ctx: vf.RunContext) -> vf.Evidence:
    raise ZeroDivisionError("fake crash")


def erratum(ctx: vf.RunContext) -> vf.Evidence:
    printed = vf.PrintedForm("x = 2x", measured=3.0, correction_source="fake textbook")
    return vf.Evidence.at_most(1e-13, 1e-10, "rounding only", "fake: corrected form holds", printed=printed)


def test_passing_claim_exits_0_and_shows_its_row(add_claim: AddClaim) -> None:
    add_claim("attention.fake-pass")
    result = invoke("verify", "attention")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "attention.fake-pass" in line)
    assert "pass" in row and "<= 1e-10" in row and "1e-12" in row
    assert "1 passed, 0 failed, 0 errors" in result.stdout


def test_chapter_by_number_selects_the_same_claims(add_claim: AddClaim) -> None:
    add_claim("attention.fake-pass")
    assert "attention.fake-pass" in invoke("verify", "6").stdout


def test_only_the_selected_chapter_runs(add_claim: AddClaim) -> None:
    add_claim("attention.fake-pass")
    add_claim("backprop.fake-fail", failing)
    result = invoke("verify", "attention")
    assert result.exit_code == 0
    assert "backprop.fake-fail" not in result.stdout


def test_failing_claim_exits_1_with_its_details(add_claim: AddClaim) -> None:
    add_claim("attention.fake-pass")
    add_claim("attention.fake-fail", failing)
    result = invoke("verify", "attention")
    assert result.exit_code == 1
    assert "FAIL" in result.stdout
    assert "fake: off by a half" in result.stdout
    assert "1 passed, 1 failed, 0 errors" in result.stdout


def test_crashing_claim_is_an_error_and_exits_1(add_claim: AddClaim) -> None:
    add_claim("attention.fake-crash", crashing)
    result = invoke("verify", "attention")
    assert result.exit_code == 1
    assert "ERROR" in result.stdout
    assert "ZeroDivisionError: fake crash" in result.stdout
    assert "Traceback" not in result.output


def test_erratum_shows_the_printed_form_under_the_correction(add_claim: AddClaim) -> None:
    add_claim("attention.fake-erratum", erratum, erratum=True)
    result = invoke("verify", "attention")
    assert result.exit_code == 0  # the verdict is about the corrected statement
    lines = result.stdout.splitlines()
    i = next(i for i, line in enumerate(lines) if "attention.fake-erratum" in line)
    assert "printed form" in lines[i + 1]
    assert "fails" in lines[i + 1]
    assert "<= 1e-10" in lines[i + 1]


def test_json_report_is_valid_and_complete(add_claim: AddClaim, tmp_path: Path) -> None:
    add_claim("attention.fake-pass")
    add_claim("attention.fake-crash", crashing)
    add_claim("attention.fake-erratum", erratum, erratum=True)
    out = tmp_path / "report.json"
    result = invoke("verify", "attention", "--seed", "7", "--json", str(out))
    assert result.exit_code == 1
    report = json.loads(out.read_text())
    assert report["seed"] == 7 and report["thorough"] is False
    verdicts = {r["id"]: r["verdict"] for r in report["results"]}
    assert verdicts == {"attention.fake-crash": "error", "attention.fake-erratum": "pass",
                        "attention.fake-pass": "pass"}
    erratum_result = next(r for r in report["results"] if r["id"] == "attention.fake-erratum")
    assert erratum_result["evidence"]["printed"]["passed"] is False
    assert erratum_result["evidence"]["printed_passed"] is False and erratum_result["evidence"]["passed"] is True
    assert report["summary"] | {"seconds": 0} == {
        "passed": 2, "failed": 0, "errors": 1, "total": 3, "ok": False, "seconds": 0,
        "by_chapter": {"attention": {"passed": 2, "total": 3}},
    }
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left behind


def test_json_into_a_missing_directory_is_a_usage_error(add_claim: AddClaim, tmp_path: Path) -> None:
    add_claim("attention.fake-pass")
    result = invoke("verify", "attention", "--json", str(tmp_path / "missing" / "r.json"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("dlmath: ")


def test_thorough_and_seed_reach_the_check(add_claim: AddClaim) -> None:
    seen: list[vf.RunContext] = []

    def spy(ctx: vf.RunContext) -> vf.Evidence:
        seen.append(ctx)
        return vf.Evidence.at_least(1.0, 0.5, "fake")

    add_claim("attention.fake-spy", spy)
    assert invoke("verify", "attention", "--thorough", "--seed", "3").exit_code == 0
    assert seen == [vf.RunContext(vf.claim_seed(3, "attention.fake-spy"), True)]
    assert ">= 0.5" in invoke("verify", "attention").stdout


def test_no_registered_claims_is_not_an_error(registry: dict[str, vf.Claim]) -> None:
    result = invoke("verify", "attention")
    assert result.exit_code == 0
    assert "No claims are registered yet for chapter 6 attention" in result.stdout


@pytest.mark.parametrize("args", [["verify", "foo"], ["verify", "99"], ["verify", "attention", "foo"]])
def test_unknown_chapter_exits_2_with_one_line(registry: dict[str, vf.Claim], args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"dlmath: unknown chapter '{args[-1]}'; choose one of: 1 approximation, ")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["verify", "--seed", "abc"], ["verify", "--seed", "-1"],
                                  ["verify", "--nope"], ["nope"]])
def test_bad_options_exit_2_with_one_line(registry: dict[str, vf.Claim], args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("dlmath: ")
    assert "Usage:" not in result.output


def test_list_shows_claims_without_running_them(add_claim: AddClaim) -> None:
    add_claim("attention.fake-crash", crashing)
    result = invoke("verify", "attention", "--list")
    assert result.exit_code == 0
    assert "attention.fake-crash" in result.stdout
    assert "title of attention.fake-crash" in result.stdout
    assert "source of attention.fake-crash" in result.stdout
    assert "ERROR" not in result.stdout


def test_chapters_counts_without_running_by_default(add_claim: AddClaim) -> None:
    add_claim("attention.fake-crash", crashing)
    result = invoke("chapters")
    assert result.exit_code == 0
    for chapter in CHAPTERS:
        assert chapter.id in result.stdout
    attention_row = next(line for line in result.stdout.splitlines() if " attention " in line)
    assert attention_row.rstrip(" │|").endswith("1")
    assert "Learning path" in result.stdout and "Links to other modules" in result.stdout


def test_chapters_runs_the_claims(add_claim: AddClaim) -> None:
    add_claim("attention.fake-pass")
    add_claim("attention.fake-fail", failing)
    result = invoke("chapters", "--run")
    assert result.exit_code == 0
    attention_row = next(line for line in result.stdout.splitlines() if " attention " in line)
    assert "1/2" in attention_row


def test_output_has_no_colour_codes_when_not_a_terminal(add_claim: AddClaim) -> None:
    add_claim("attention.fake-fail", failing)
    result = invoke("verify", "attention")
    assert "\x1b[" not in result.output


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"dlmath {dlmath.__version__}"


def test_python_m_dlmath_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "dlmath", "--version"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"dlmath {dlmath.__version__}"


def test_details_show_statement_source_and_printed_form(add_claim: AddClaim) -> None:
    add_claim("attention.fake-erratum", erratum, erratum=True)
    result = invoke("verify", "attention", "--details")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "statement: x = x" in out and "source:    source of attention.fake-erratum" in out
    assert "rounding only" in out and "fake: corrected form holds" in out
    assert "x = 2x measures 3 and fails; correction from fake textbook" in out


# --------------------------------------------------------------------------- regressions (issue 5)


def test_dlmath_alone_prints_help_and_exits_0() -> None:
    result = invoke()
    assert result.exit_code == 0
    assert "Usage: " in result.stdout and "verify" in result.stdout and "chapters" in result.stdout


@pytest.mark.parametrize("name", ["²", "٣", "3²", "①"])
def test_non_ascii_digit_chapter_is_a_one_line_usage_error(registry: dict[str, vf.Claim], name: str) -> None:
    # str.isdigit() accepts '²' but int() rejects it: this used to print a traceback
    result = invoke("verify", name)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"dlmath: unknown chapter '{name}'")
    assert "Traceback" not in result.output


def checked_twice(main: float, cross: float) -> vf.Check:
    def check(ctx: vf.RunContext) -> vf.Evidence:
        return vf.Evidence.at_most(main, 1e-10, "rounding only", "fake",
                                   cross_checks=(vf.CrossCheck("finite-differences", cross, 1e-7, "fd step"),))
    return check


def test_a_failing_cross_check_fails_the_claim_and_is_shown(add_claim: AddClaim, tmp_path: Path) -> None:
    add_claim("attention.fake-cross", checked_twice(1e-12, 0.5))
    out = tmp_path / "r.json"
    result = invoke("verify", "attention", "--details", "--json", str(out))
    assert result.exit_code == 1
    row = next(line for line in result.stdout.splitlines() if line.startswith("attention.fake-cross"))
    assert "FAIL" in row
    assert "cross-check finite-differences measured 0.5, needs <= 1e-07: fd step" in result.stdout
    assert "cross-check finite-differences: 0.5, needs <= 1e-07: FAIL (fd step)" in result.stdout
    assert "verdict:   fail (main measurement pass; 0 of 1 cross-checks pass)" in result.stdout
    evidence = json.loads(out.read_text())["results"][0]["evidence"]
    assert evidence["main_passed"] is True and evidence["passed"] is False
    assert evidence["cross_checks"] == [{"name": "finite-differences", "measured": 0.5, "tolerance": 1e-7,
                                         "comparison": "<=", "reason": "fd step", "passed": False}]


def test_details_show_latex_statements_as_unicode(registry: dict[str, vf.Claim]) -> None:
    def check(ctx: vf.RunContext) -> vf.Evidence:
        return vf.Evidence.at_most(0.0, 1.0, "r")
    vf.claim("attention.fake-latex", title="t", statement=r"\frac{\partial L}{\partial z_j} = \sigma(z)^\top",
             source="s")(check)
    result = invoke("verify", "attention", "--details")
    assert "statement: ∂L/∂zⱼ = σ(z)ᵀ" in result.stdout


# ----- --json targets


def test_json_refuses_a_directory_a_fifo_and_a_device(add_claim: AddClaim, tmp_path: Path) -> None:
    ran: list[int] = []

    def spy(ctx: vf.RunContext) -> vf.Evidence:
        ran.append(1)
        return vf.Evidence.at_most(0, 1, "r")
    add_claim("attention.fake-spy", spy)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target, why in [(tmp_path, "is a directory"), (fifo, "is not a regular file"),
                        (Path("/dev/null"), "is not a regular file")]:
        result = invoke("verify", "attention", "--json", str(target))
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1 and why in result.stderr
    assert ran == []  # refused before any claim runs
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_json_through_a_symlink_writes_the_target_and_keeps_the_link(add_claim: AddClaim, tmp_path: Path) -> None:
    add_claim("attention.fake-pass")
    real = tmp_path / "data" / "report.json"
    real.parent.mkdir()
    real.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert invoke("verify", "attention", "--json", str(link)).exit_code == 0
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert json.loads(real.read_text())["complete"] is True
    assert sorted(p.name for p in real.parent.iterdir()) == ["report.json"]


def test_json_keeps_the_mode_of_an_existing_file(add_claim: AddClaim, tmp_path: Path) -> None:
    add_claim("attention.fake-pass")
    out = tmp_path / "r.json"
    out.write_text("{}")
    out.chmod(0o600)
    assert invoke("verify", "attention", "--json", str(out)).exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text())["summary"]["passed"] == 1


def test_json_dash_writes_json_to_stdout_and_the_table_to_stderr(add_claim: AddClaim) -> None:
    add_claim("attention.fake-pass")
    add_claim("attention.fake-fail", failing)
    result = invoke("verify", "attention", "--json", "-")
    assert result.exit_code == 1
    report = json.loads(result.stdout)  # stdout is the JSON and nothing else
    assert report["complete"] is True and report["summary"]["failed"] == 1
    assert "attention.fake-pass" in result.stderr and "1 passed, 1 failed" in result.stderr


# ----- interruptions


def interrupted(ctx: vf.RunContext) -> vf.Evidence:
    raise KeyboardInterrupt


def test_ctrl_c_exits_130_after_showing_and_saving_what_finished(add_claim: AddClaim, tmp_path: Path) -> None:
    add_claim("attention.a-fake-pass")
    add_claim("attention.b-fake-interrupted", interrupted)
    add_claim("attention.c-never-runs")
    out = tmp_path / "r.json"
    result = invoke("verify", "attention", "--json", str(out))
    assert result.exit_code == 130, result.output
    assert "Traceback" not in result.output
    assert "attention.a-fake-pass" in result.stdout and "attention.c-never-runs" not in result.stdout
    assert "interrupted after 1 of 3 claims" in result.stdout
    report = json.loads(out.read_text())
    assert report["complete"] is False
    assert [r["id"] for r in report["results"]] == ["attention.a-fake-pass"]
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored after the run


SLOW_RUN = """
import sys, time
from pathlib import Path
import dlmath.chapters
from dlmath import cli, verify as vf

dlmath.chapters.load_all = lambda: vf.REGISTRY  # only the fake claims below

@vf.claim("attention.a-fast", title="t", statement="x", source="s")
def fast(ctx):
    return vf.Evidence.at_most(0.0, 1.0, "r")

@vf.claim("attention.b-slow", title="t", statement="x", source="s")
def slow(ctx):
    Path(sys.argv[2]).write_text("started")
    time.sleep(60)
    return vf.Evidence.at_most(0.0, 1.0, "r")

cli.main(["verify", "attention", "--json", sys.argv[1]])
"""


def test_sigterm_leaves_no_temporary_file_and_keeps_what_finished(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    out, started = reports / "r.json", tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SLOW_RUN), str(out), str(started)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert started.exists(), proc.communicate()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert "attention.a-fast" in stdout and "interrupted after 1 of 2 claims" in stdout
    assert [p.name for p in reports.iterdir()] == ["r.json"]  # no .r.json.*.tmp left behind
    report = json.loads(out.read_text())
    assert report["complete"] is False and [r["id"] for r in report["results"]] == ["attention.a-fast"]


# ----- newcomer friction


def test_the_verify_table_fits_80_columns_without_splitting_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    real_ids = list(dlmath.chapters.load_all())  # the ids of the real claims, shown by fake ones
    assert real_ids
    isolate_registry(monkeypatch)  # an isolated registry from here on

    def erratum_like(ctx: vf.RunContext) -> vf.Evidence:
        return vf.Evidence.at_most(5.889e-08, 2.220446e-13, "r", printed=vf.PrintedForm("p", 51.82, "s"))
    for claim_id in real_ids:
        vf.claim(claim_id, title="t", statement="s", source="s")(erratum_like)
    result = invoke("verify", env={"COLUMNS": "80"})
    lines = result.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80, result.stdout
    for claim_id in real_ids:
        assert any(claim_id in line for line in lines), claim_id


def test_the_cli_module_imports_neither_numpy_scipy_the_engine_nor_rich() -> None:
    code = "import sys, dlmath.cli; print(sorted(m for m in ('numpy', 'scipy', 'rich', 'dlmath.autodiff') " \
           "if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == "[]"


def test_help_runs_without_importing_scipy() -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "dlmath", "--help"], capture_output=True,
                          text=True, timeout=60, check=True)
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "click" in imported
    assert not imported & {"scipy", "numpy", "rich", "dlmath.autodiff"}
