"""Every registered claim, of every chapter, has a breaker somewhere in the test suite.

Each chapter's test module (``test_claims_can_fail.py`` for chapter 3, ``test_claims_<chapter>.py``
for the others) holds a ``BREAKERS`` mapping claim id -> breaker and runs them; this test only
checks that together they leave no registered claim without one (a claim that cannot fail is a
defect, DESIGN.md).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from dlmath import chapters

HERE = Path(__file__).parent


def _all_breakers() -> dict[str, object]:
    found: dict[str, object] = {}
    for path in sorted(HERE.glob("test_claims_*.py")):
        module = importlib.import_module(path.stem)
        breakers = getattr(module, "BREAKERS", {})
        duplicated = set(found) & set(breakers)
        assert not duplicated, f"{path.name} breaks claims another module already breaks: {sorted(duplicated)}"
        found.update(breakers)
    return found


def test_every_registered_claim_has_a_breaker() -> None:
    registered = set(chapters.load_all())
    breakers = _all_breakers()
    assert registered - set(breakers) == set(), f"claims without a breaker: {sorted(registered - set(breakers))}"
    assert set(breakers) - registered == set(), f"breakers of no claim: {sorted(set(breakers) - registered)}"
