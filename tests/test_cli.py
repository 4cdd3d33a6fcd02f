"""The ``dlmath`` command line, run against fake claims in an isolated registry."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import dlmath
from dlmath import verify as vf
from dlmath.cli import cli

AddClaim = Callable[..., None]


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, vf.Claim]:
    """An empty claim registry for the test; the real one (and the chapter modules) are left alone."""
    fresh: dict[str, vf.Claim] = {}
    monkeypatch.setattr(vf, "REGISTRY", fresh)
    monkeypatch.setattr(vf, "load_all", lambda: vf.REGISTRY)
    return fresh


@pytest.fixture
def add_claim(registry: dict[str, vf.Claim]) -> AddClaim:
    """Register a fake claim whose check is ``check`` (by default an always-passing one)."""

    def add(id: str, check: vf.Check | None = None, *, erratum: bool = False) -> None:
        def passing(ctx: vf.RunContext) -> vf.Evidence:
            return vf.Evidence.at_most(1e-12, 1e-10, "rounding only", "fake: fine")

        check = check or passing
        vf.claim(id, title=f"title of {id}", statement="x = x", source=f"source of {id}", erratum=erratum)(check)

    return add


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


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
    assert "fails as printed" in lines[i + 1]
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
    assert erratum_result["evidence"]["printed_passed"] is False
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


def test_chapters_no_run_lists_all_nine(add_claim: AddClaim) -> None:
    add_claim("attention.fake-crash", crashing)
    result = invoke("chapters", "--no-run")
    assert result.exit_code == 0
    for chapter in vf.CHAPTERS:
        assert chapter.id in result.stdout
    attention_row = next(line for line in result.stdout.splitlines() if " attention " in line)
    assert attention_row.rstrip(" │|").endswith("1")
    assert "Learning path" in result.stdout and "Links to other modules" in result.stdout


def test_chapters_runs_the_claims(add_claim: AddClaim) -> None:
    add_claim("attention.fake-pass")
    add_claim("attention.fake-fail", failing)
    result = invoke("chapters")
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
