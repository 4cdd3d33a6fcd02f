"""What every claim of every chapter must satisfy, checked in one place.

Each chapter's test module (``test_claims_can_fail.py`` for chapter 3, ``test_claims_<chapter>.py``
for the others) holds a ``BREAKERS`` mapping claim id -> breaker (a function that monkeypatches the
subject of the claim: a rule, a formula, a constant) and the tests only its own claims need. Here:

- every registered claim has exactly one breaker, and every breaker belongs to a claim;
- breaking what a claim checks turns its verdict to "fail" (measured, not crashed), and undoing the
  break turns it back to "pass" (a claim that cannot fail is a defect, DESIGN.md);
- an erratum claim shows the module's printed form failing while the corrected statement passes,
  and a claim that carries a printed form is marked as an erratum;
- every claim passes on other seeds too (the tolerances are not tuned to seed 0).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import pytest

from dlmath import chapters
from dlmath import verify as vf

HERE = Path(__file__).parent


def _all_breakers() -> dict[str, Callable[[pytest.MonkeyPatch], None]]:
    found: dict[str, Callable[[pytest.MonkeyPatch], None]] = {}
    for path in sorted(HERE.glob("test_claims_*.py")):
        breakers = getattr(importlib.import_module(path.stem), "BREAKERS", {})
        duplicated = set(found) & set(breakers)
        assert not duplicated, f"{path.name} breaks claims another module already breaks: {sorted(duplicated)}"
        found.update(breakers)
    return found


REGISTRY = chapters.load_all()
BREAKERS = _all_breakers()


def test_every_registered_claim_has_a_breaker() -> None:
    assert set(REGISTRY) - set(BREAKERS) == set(), f"claims without a breaker: {sorted(set(REGISTRY) - set(BREAKERS))}"
    assert set(BREAKERS) - set(REGISTRY) == set(), f"breakers of no claim: {sorted(set(BREAKERS) - set(REGISTRY))}"


@pytest.mark.parametrize("claim_id", sorted(BREAKERS))
def test_breaking_what_the_claim_checks_makes_it_fail(claim_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    claim = REGISTRY[claim_id]
    before = vf.run_claim(claim)
    assert before.verdict == "pass", (before.error, before.evidence)
    BREAKERS[claim_id](monkeypatch)
    after = vf.run_claim(claim)
    assert after.error is None, after.error  # the claim measured the broken subject; it did not crash
    assert after.verdict == "fail", (claim_id, after.evidence)
    monkeypatch.undo()
    assert vf.run_claim(claim).verdict == "pass"  # nothing else was left broken


@pytest.mark.parametrize("claim_id", sorted(REGISTRY))
def test_printed_forms_fail_beside_a_passing_correction(claim_id: str) -> None:
    claim = REGISTRY[claim_id]
    result = vf.run_claim(claim)
    ev = result.evidence
    assert ev is not None, result.error
    assert claim.erratum == (ev.printed is not None), (
        f"{claim_id}: erratum={claim.erratum} but the evidence {'has' if ev.printed else 'has no'} printed form")
    if ev.printed is not None:
        assert ev.passed and ev.printed_passed is False, (claim_id, ev)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("chapter", [c.id for c in vf.CHAPTERS])
def test_every_claim_passes_on_other_seeds(chapter: str, seed: int) -> None:
    for claim in vf.select([chapter]):
        r = vf.run_claim(claim, seed=seed)
        assert r.verdict == "pass", (claim.id, seed, r.error, r.evidence)
