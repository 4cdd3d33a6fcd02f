"""The claim registry and runner, and the chapter-3 claims run as tests."""

from __future__ import annotations

import numpy as np
import pytest

from dlmath import verify as vf


def test_chapters_resolve_by_id_and_number() -> None:
    assert vf.resolve_chapter("3").id == "backprop"
    assert vf.resolve_chapter("Backprop").number == 3
    assert [c.number for c in vf.CHAPTERS] == list(range(1, 10))
    with pytest.raises(vf.UnknownChapterError, match="unknown chapter 'x'"):
        vf.resolve_chapter("x")
    with pytest.raises(vf.UnknownChapterError):
        vf.resolve_chapter("10")


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
    c = vf.Claim("attention.nan", "attention", "t", "s", "src", lambda ctx: vf.Evidence(float("nan"), 1, "r"))
    assert vf.run_claim(c).verdict == "fail"


def test_every_cross_check_enters_the_verdict() -> None:
    ok = vf.CrossCheck("fd", 1e-9, 1e-7, "r")
    bad = vf.CrossCheck("fd2", 1e-3, 1e-7, "r")
    low = vf.CrossCheck("lower", 0.5, 1.0, "r", ">=")
    assert ok.passed and not bad.passed and not low.passed
    ev = vf.Evidence.at_most(1.0, 2.0, "r", cross_checks=(ok, bad))
    assert ev.main_passed and not ev.passed
    assert vf.Evidence.at_most(1.0, 2.0, "r", cross_checks=[ok]).passed  # a list is accepted, kept as a tuple
    assert not vf.Evidence.at_most(3.0, 2.0, "r", cross_checks=(ok,)).passed
    assert not vf.CrossCheck("nan", float("nan"), 1.0, "r").passed
    c = vf.Claim("attention.x", "attention", "t", "s", "src",
                 lambda ctx: vf.Evidence.at_most(1.0, 2.0, "r", cross_checks=(bad,)))
    assert vf.run_claim(c).verdict == "fail"


def test_a_verdict_cannot_be_stored_only_derived() -> None:
    with pytest.raises(ValueError, match="comparison"):
        vf.Evidence(1.0, 2.0, "r", comparison="<")
    with pytest.raises(ValueError, match="comparison"):
        vf.CrossCheck("x", 1.0, 2.0, "r", comparison="==")
    with pytest.raises(TypeError):
        vf.PrintedForm("s", 1.0, True, "src")  # type: ignore[call-arg]
    ev = vf.Evidence.at_least(3.0, 2.0, "r", printed=vf.PrintedForm("s", 1.0, "src"))
    assert ev.passed and ev.printed_passed is False
    assert vf.Evidence.at_most(1.0, 2.0, "r").printed_passed is None
    with pytest.raises(AttributeError):
        ev.measured = 0.0  # type: ignore[misc]
    d = ev.to_dict()
    assert d["main_passed"] is True and d["passed"] is True and d["printed_passed"] is False
    assert d["printed"] == {"statement": "s", "measured": 1.0, "correction_source": "src"}
    d = vf.Evidence.at_most(1.0, 2.0, "r", cross_checks=(vf.CrossCheck("fd", 5.0, 1.0, "why"),)).to_dict()
    assert d["passed"] is False and d["cross_checks"] == [
        {"name": "fd", "measured": 5.0, "tolerance": 1.0, "reason": "why", "comparison": "<=", "passed": False}]


def test_a_crashing_check_is_an_error_verdict() -> None:
    def boom(ctx: vf.RunContext) -> vf.Evidence:
        raise ZeroDivisionError("boom")
    r = vf.run_claim(vf.Claim("attention.boom", "attention", "t", "s", "src", boom))
    assert r.verdict == "error" and "ZeroDivisionError" in (r.error or "")


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
    for cc in first.evidence.cross_checks:
        assert cc.passed and cc.reason, cc


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
