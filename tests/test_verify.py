"""The claim registry and runner, and the chapter-3 claims run as tests."""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from dlmath import verify as vf
from dlmath.chapters import load_all
from dlmath.module import CHAPTERS


def test_chapters_resolve_by_id_and_number() -> None:
    assert vf.resolve_chapter("3").id == "backprop"
    assert vf.resolve_chapter("Backprop").number == 3
    assert [c.number for c in CHAPTERS] == list(range(1, 10))
    with pytest.raises(vf.UnknownChapterError, match="unknown chapter 'x'"):
        vf.resolve_chapter("x")
    with pytest.raises(vf.UnknownChapterError):
        vf.resolve_chapter("10")
    for not_ascii in ("²", "٣", "３"):  # isdigit() or isdecimal() accept these; int() or the user would not
        with pytest.raises(vf.UnknownChapterError):
            vf.resolve_chapter(not_ascii)


def test_claim_ids_must_start_with_a_chapter() -> None:
    with pytest.raises(vf.UnknownChapterError):
        vf.claim("nochapter.x", title="t", statement="s", source="src")


def test_per_claim_seeds_differ_and_are_stable() -> None:
    a = vf.claim_seed(0, "backprop.chain-rule")
    assert a == vf.claim_seed(0, "backprop.chain-rule")
    assert a != vf.claim_seed(1, "backprop.chain-rule")
    assert a != vf.claim_seed(0, "backprop.matrix-form")


def test_evidence_comparisons() -> None:
    assert vf.Evidence.at_most(1.0, 2.0, "r").passed
    assert not vf.Evidence.at_most(3.0, 2.0, "r").passed
    assert vf.Evidence.at_least(3.0, 2.0, "r").passed
    # a NaN measurement never passes, whatever the comparison says
    for compare in (vf.Evidence.at_most, vf.Evidence.at_least):
        assert not compare(float("nan"), 1.0, "r").passed
    c = vf.Claim("attention.nan", "attention", "t", "s", "src", lambda ctx: vf.Evidence(float("nan"), 1, "r"))
    assert vf.run_claim(c).verdict == "fail"
    with pytest.raises(ValueError, match="comparison"):
        vf.Evidence(1.0, 2.0, "r", comparison="<")
    with pytest.raises(ValueError, match="comparison"):
        vf.CrossCheck("c", 1.0, 2.0, "r", comparison="==")


def fd(measured: float) -> vf.CrossCheck:
    return vf.CrossCheck("finite-differences", measured, 1e-7, "central differences")


def test_a_failing_cross_check_fails_the_verdict_although_the_main_measurement_passes() -> None:
    worse = dataclasses.replace(fd(0.5), name="fd-2")
    ev = vf.Evidence.at_most(1e-16, 1e-14, "rounding", cross_checks=(fd(1e-10), worse))
    assert ev.main_passed and not ev.passed
    ok = vf.Evidence.at_most(1e-16, 1e-14, "rounding", cross_checks=[fd(1e-10)])
    assert ok.passed and ok.cross_checks == (fd(1e-10),)
    c = vf.Claim("attention.cross", "attention", "t", "s", "src",
                 lambda ctx: vf.Evidence.at_most(0.0, 1.0, "r", cross_checks=(fd(1.0),)))
    assert vf.run_claim(c).verdict == "fail"


def test_a_nan_cross_check_fails() -> None:
    for comparison in ("<=", ">="):
        check = vf.CrossCheck("x", float("nan"), 1.0, "r", comparison)
        assert not check.passed
        assert not vf.Evidence.at_most(0.0, 1.0, "r", cross_checks=(check,)).passed
    assert not vf.Evidence.at_most(0.0, 1.0, "r", cross_checks=(fd(float("inf")),)).passed


def test_a_verdict_cannot_be_stored() -> None:
    assert "passed" not in {f.name for f in dataclasses.fields(vf.Evidence)}
    assert "passed" not in {f.name for f in dataclasses.fields(vf.CrossCheck)}
    assert "passed" not in {f.name for f in dataclasses.fields(vf.PrintedForm)}
    with pytest.raises(TypeError):
        vf.Evidence(3.0, 2.0, "r", passed=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        vf.Evidence.at_most(3.0, 2.0, "r", passed=True)
    with pytest.raises(TypeError):
        vf.PrintedForm("x", 1.0, "src", passed=False)  # type: ignore[call-arg]
    ev = vf.Evidence.at_most(3.0, 2.0, "r")
    with pytest.raises(AttributeError):
        ev.passed = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.measured = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        vf.Evidence.at_most(0.0, 1.0, "r", cross_checks=(True,))
    assert not ev.passed


def test_the_printed_form_is_judged_with_the_claims_tolerance() -> None:
    printed = vf.PrintedForm("x = 2x", 0.5, "textbook")
    assert vf.Evidence.at_most(0.0, 0.1, "r", printed=printed).printed_passed is False
    assert vf.Evidence.at_least(0.0, -1.0, "r", printed=printed).printed_passed is True
    assert vf.Evidence.at_most(0.0, 0.1, "r").printed_passed is None


def test_evidence_to_dict_has_every_field_and_the_derived_verdicts() -> None:
    ev = vf.Evidence.at_most(np.float64(1e-16), 1e-14, "rounding", "d", cross_checks=(fd(0.5),),
                             printed=vf.PrintedForm("p", float("nan"), "src"), figure={"x": np.arange(2)})
    d = ev.to_dict()
    assert d["main_passed"] is True and d["passed"] is False and d["printed_passed"] is False
    assert d["cross_checks"][0]["passed"] is False and d["cross_checks"][0]["measured"] == 0.5
    assert d["printed"]["measured"] == "nan" and d["figure"] == {"x": [0, 1]}
    assert {f.name for f in dataclasses.fields(vf.Evidence)} <= set(d)


def test_one_id_names_one_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vf, "REGISTRY", {})

    def first(ctx: vf.RunContext) -> vf.Evidence:
        return vf.Evidence.at_most(0.0, 1.0, "r")

    def second(ctx: vf.RunContext) -> vf.Evidence:
        return vf.Evidence.at_most(0.0, 1.0, "r")

    register = vf.claim("attention.once", title="t", statement="s", source="src")
    register(first)
    register(first)  # the same function again: harmless
    with pytest.raises(vf.DuplicateClaimError, match=r"attention\.once"):
        vf.claim("attention.once", title="t", statement="s", source="src")(second)
    # a function of the same name elsewhere (another module's `check`) is another claim
    imposter = type(first)(first.__code__.replace(co_firstlineno=first.__code__.co_firstlineno + 1), {})
    with pytest.raises(vf.DuplicateClaimError):
        register(imposter)
    assert vf.REGISTRY["attention.once"].check is first


def test_reloading_a_chapter_module_is_not_a_duplicate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(vf, "REGISTRY", {})
    (tmp_path / "fake_chapter_for_reload.py").write_text(
        "from dlmath.verify import Evidence, claim\n"
        "@claim('attention.reloaded', title='t', statement='s', source='src')\n"
        "def reloaded(ctx):\n"
        "    return Evidence.at_most(0.0, 1.0, 'r')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("fake_chapter_for_reload")
    try:
        importlib.reload(module)
        assert vf.REGISTRY["attention.reloaded"].check is module.reloaded
    finally:
        sys.modules.pop("fake_chapter_for_reload", None)


def test_the_registry_imports_no_chapter() -> None:
    source = Path(vf.__file__).read_text(encoding="utf-8")
    assert "chapters" not in {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}


def test_a_crashing_check_is_an_error_verdict() -> None:
    def boom(ctx: vf.RunContext) -> vf.Evidence:
        raise ZeroDivisionError("boom")
    r = vf.run_claim(vf.Claim("attention.boom", "attention", "t", "s", "src", boom))
    assert r.verdict == "error" and "ZeroDivisionError" in (r.error or "")


load_all()
BACKPROP = vf.select(["backprop"])


def test_backprop_registers_the_issue_claims() -> None:
    ids = {c.id for c in BACKPROP}
    expected = {"backprop.chain-rule", "backprop.matrix-form", "backprop.softmax-cross-entropy-gradient",
                "backprop.softmax-jacobian", "backprop.cheap-gradient", "backprop.forward-vs-reverse-mode",
                "backprop.hvp-finite-differences", "backprop.hessian-symmetry", "backprop.gradcheck-float64",
                "backprop.gradcheck-float32"}
    assert expected <= ids
    for c in BACKPROP:
        assert c.title and c.statement and c.source


@pytest.mark.parametrize("claim", BACKPROP, ids=lambda c: c.id)
def test_backprop_claim_passes_and_is_deterministic(claim: vf.Claim) -> None:
    first = vf.run_claim(claim, seed=0)
    assert first.verdict == "pass", (first.error, first.evidence)
    again = vf.run_claim(claim, seed=0)
    assert again.evidence is not None and first.evidence is not None
    assert again.evidence.measured == first.evidence.measured
    assert np.isfinite(first.evidence.tolerance)
    if claim.erratum:
        # an erratum shows the printed form failing beside the corrected statement
        assert first.evidence.printed is not None and first.evidence.printed_passed is False


@pytest.mark.parametrize("seed", [1, 2])
def test_backprop_claims_pass_for_other_seeds(seed: int) -> None:
    bad = [r for r in vf.run(BACKPROP, seed=seed) if r.verdict != "pass"]
    assert not bad, [(r.claim.id, r.error, r.evidence) for r in bad]


def test_summary_counts_by_chapter() -> None:
    results = vf.run(BACKPROP[:2])
    s = vf.summarize(results)
    assert s.by_chapter["backprop"] == [2, 2] and s.ok
    d = results[0].to_dict()
    assert d["verdict"] == "pass" and d["evidence"]["comparison"] in ("<=", ">=")


def test_backprop_claims_pass_when_thorough() -> None:
    bad = [r for r in vf.run(BACKPROP, seed=0, thorough=True) if r.verdict != "pass"]
    assert not bad, [(r.claim.id, r.error, r.evidence) for r in bad]


@pytest.mark.parametrize("claim_id", ["backprop.softmax-cross-entropy-gradient", "backprop.forward-vs-reverse-mode"])
def test_backprop_finite_difference_cross_checks_enter_the_verdict(monkeypatch: pytest.MonkeyPatch,
                                                                    claim_id: str) -> None:
    from dlmath.chapters import backprop

    monkeypatch.setattr(backprop, "FD_TOL", 1e-30)  # no finite difference is that exact
    r = vf.run_claim(vf.REGISTRY[claim_id])
    assert r.evidence is not None and r.evidence.main_passed
    assert r.verdict == "fail" and [c.name for c in r.evidence.cross_checks if not c.passed] == ["finite-differences"]
