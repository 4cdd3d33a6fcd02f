"""Claims and their checks: the registry behind ``dlmath verify``.

A claim is one decorated function in its chapter's module::

    @claim("backprop.some-identity", title="...", statement=r"...", source="...")
    def some_identity(ctx: RunContext) -> Evidence: ...

It takes a `RunContext` (seed, thoroughness, a seeded Generator), prints nothing,
writes nothing, and returns `Evidence`: the measured quantity, the tolerance and why
that tolerance, named `CrossCheck`s (independent measurements that must also hold),
details and optional figure data. A claim about a formula the module prints wrongly
carries a `PrintedForm`: the printed version measured beside the corrected one.

Verdicts are computed from the numbers, never stored: `Evidence.passed` is derived from
the measured value, the tolerance and every cross-check, and nothing can set it.

This module knows nothing of mathematics and imports no chapter: the chapters import it
to register their claims (`dlmath.chapters.load_all` imports them all), and the course's
chapters come from `dlmath.module`. It imports no NumPy either, so that the command line
starts fast.
"""

from __future__ import annotations

import math
import re
import time
import traceback
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .module import CHAPTER_BY_ID, CHAPTERS, Chapter

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "CHAPTERS",
    "CHAPTER_BY_ID",
    "REGISTRY",
    "Chapter",
    "Check",
    "Claim",
    "CrossCheck",
    "DuplicateClaimError",
    "Evidence",
    "PrintedForm",
    "Result",
    "RunContext",
    "Summary",
    "UnknownChapterError",
    "claim",
    "claim_seed",
    "resolve_chapter",
    "run",
    "run_claim",
    "select",
    "summarize",
]

COMPARISONS = ("<=", ">=")


class UnknownChapterError(ValueError):
    """A chapter named on the command line (or in a claim id) that the module does not have."""


class DuplicateClaimError(ValueError):
    """Two different checks registered under one claim id."""


def resolve_chapter(name: str) -> Chapter:
    """A chapter by id (``backprop``) or number (``3``, ASCII digits only)."""
    key = name.strip().lower()
    if re.fullmatch(r"[0-9]{1,3}", key):
        for c in CHAPTERS:
            if c.number == int(key):
                return c
    elif key in CHAPTER_BY_ID:
        return CHAPTER_BY_ID[key]
    choices = ", ".join(f"{c.number} {c.id}" for c in CHAPTERS)
    raise UnknownChapterError(f"unknown chapter {name!r}; choose one of: {choices}")


# --------------------------------------------------------------------------- evidence


def _compare(measured: float, comparison: str, tolerance: float) -> bool:
    """``measured <comparison> tolerance``; a NaN or infinite measurement never passes."""
    if not math.isfinite(measured):
        return False
    return measured <= tolerance if comparison == "<=" else measured >= tolerance


def _check_comparison(owner: str, comparison: str) -> None:
    if comparison not in COMPARISONS:
        raise ValueError(f"{owner}: comparison must be one of {COMPARISONS}, not {comparison!r}")


@dataclass(frozen=True)
class CrossCheck:
    """An independent measurement that must also hold for the claim to pass."""

    name: str            # short id, e.g. "finite-differences"
    measured: float
    tolerance: float
    reason: str          # why this tolerance
    comparison: str = "<="

    def __post_init__(self) -> None:
        _check_comparison(f"cross-check {self.name!r}", self.comparison)
        object.__setattr__(self, "measured", float(self.measured))
        object.__setattr__(self, "tolerance", float(self.tolerance))

    @property
    def passed(self) -> bool:
        """finite(measured) and measured <comparison> tolerance."""
        return _compare(self.measured, self.comparison, self.tolerance)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "measured": _jsonable(self.measured), "tolerance": _jsonable(self.tolerance),
                "comparison": self.comparison, "reason": self.reason, "passed": self.passed}


@dataclass(frozen=True)
class PrintedForm:
    """The module's printed (wrong) version of a formula, measured beside the correction.

    It is judged with the claim's own tolerance and comparison (`Evidence.printed_passed`).
    """

    statement: str          # the printed formula (LaTeX)
    measured: float         # the same quantity measured for the printed form
    correction_source: str  # where the corrected statement comes from

    def __post_init__(self) -> None:
        object.__setattr__(self, "measured", float(self.measured))


@dataclass(frozen=True)
class Evidence:
    """What a check measured; its verdict is derived from the numbers and cannot be set.

    ``passed``: the measured value meets the tolerance as ``comparison`` says ('<=' or '>='),
    it is finite, and every cross-check passes.
    """

    measured: float
    tolerance: float
    tolerance_reason: str
    details: str = ""
    comparison: str = "<="
    cross_checks: tuple[CrossCheck, ...] = ()
    printed: PrintedForm | None = None
    figure: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _check_comparison("evidence", self.comparison)
        object.__setattr__(self, "measured", float(self.measured))
        object.__setattr__(self, "tolerance", float(self.tolerance))
        checks = tuple(self.cross_checks)
        for c in checks:
            if not isinstance(c, CrossCheck):
                raise TypeError(f"cross_checks holds CrossCheck objects, not {type(c).__name__}")
        names = [c.name for c in checks]
        if len(set(names)) != len(names):
            raise ValueError(f"cross-check names must be distinct: {names}")
        object.__setattr__(self, "cross_checks", checks)
        if self.printed is not None and not isinstance(self.printed, PrintedForm):
            raise TypeError(f"printed is a PrintedForm, not {type(self.printed).__name__}")

    @property
    def main_passed(self) -> bool:
        """finite(measured) and measured <comparison> tolerance."""
        return _compare(self.measured, self.comparison, self.tolerance)

    @property
    def passed(self) -> bool:
        """The verdict: the main measurement and every cross-check pass."""
        return self.main_passed and all(c.passed for c in self.cross_checks)

    @property
    def printed_passed(self) -> bool | None:
        """Does the printed form meet the claim's tolerance? None when there is no printed form."""
        if self.printed is None:
            return None
        return _compare(self.printed.measured, self.comparison, self.tolerance)

    @classmethod
    def at_most(cls, measured: float, tolerance: float, reason: str, details: str = "",
                **extra: Any) -> Evidence:
        """Evidence that passes when ``measured <= tolerance`` (extra: cross_checks, printed, figure)."""
        return cls(measured, tolerance, reason, details, "<=", **extra)

    @classmethod
    def at_least(cls, measured: float, tolerance: float, reason: str, details: str = "",
                 **extra: Any) -> Evidence:
        """Evidence that passes when ``measured >= tolerance`` (extra: cross_checks, printed, figure)."""
        return cls(measured, tolerance, reason, details, ">=", **extra)

    def to_dict(self) -> dict[str, Any]:
        """Every field, plus the derived verdicts (main_passed, passed, printed_passed, each cross-check's)."""
        printed = None
        if self.printed is not None:
            printed = {"statement": self.printed.statement, "measured": _jsonable(self.printed.measured),
                       "correction_source": self.printed.correction_source, "passed": self.printed_passed}
        return {
            "measured": _jsonable(self.measured), "tolerance": _jsonable(self.tolerance),
            "comparison": self.comparison, "tolerance_reason": self.tolerance_reason, "details": self.details,
            "cross_checks": [c.to_dict() for c in self.cross_checks], "printed": printed,
            "figure": _jsonable(self.figure),
            "main_passed": self.main_passed, "passed": self.passed, "printed_passed": self.printed_passed,
        }


@dataclass(frozen=True)
class RunContext:
    """What a check receives: its own seed (derived from the run's seed and the claim id)."""

    seed: int
    thorough: bool

    @property
    def rng(self) -> np.random.Generator:
        import numpy as np  # here, not at the top: the command line starts without NumPy

        return np.random.default_rng(self.seed)


Check = Callable[[RunContext], Evidence]


@dataclass(frozen=True)
class Claim:
    id: str
    chapter: str
    title: str
    statement: str
    source: str
    check: Check
    erratum: bool = False


REGISTRY: dict[str, Claim] = {}


def _same_definition(a: Check, b: Check) -> bool:
    """Are ``a`` and ``b`` the same source definition (the same function, or it again after a reload)?"""
    if a is b:
        return True
    code_a, code_b = getattr(a, "__code__", None), getattr(b, "__code__", None)
    return (code_a is not None and code_b is not None
            and getattr(a, "__module__", None) == getattr(b, "__module__", None)
            and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
            and code_a.co_filename == code_b.co_filename and code_a.co_firstlineno == code_b.co_firstlineno)


def claim(id: str, *, title: str, statement: str, source: str, erratum: bool = False) -> Callable[[Check], Check]:
    """Register a check as a claim of the chapter named by the id's prefix (``backprop.x``).

    An id names one claim. Registering the same function again is a no-op, and so is
    re-executing the same definition (same module, qualified name, file and line: a
    module reloaded with `importlib.reload`), which replaces the old entry. Any other
    function under an existing id raises `DuplicateClaimError`.
    """
    chapter = id.split(".", 1)[0]
    if chapter not in CHAPTER_BY_ID:
        raise UnknownChapterError(f"claim id {id!r} does not start with a chapter id")

    def register(check: Check) -> Check:
        old = REGISTRY.get(id)
        if old is not None and not _same_definition(old.check, check):
            where = f"{getattr(old.check, '__module__', '?')}.{getattr(old.check, '__qualname__', '?')}"
            raise DuplicateClaimError(f"claim {id!r} is already registered (by {where})")
        REGISTRY[id] = Claim(id, chapter, title, statement, source, check, erratum)
        return check
    return register


def select(chapter_names: Sequence[str] = ()) -> list[Claim]:
    """Registered claims of the named chapters (all when none named), in chapter order then id.

    Only what is registered: call `dlmath.chapters.load_all` first to import every chapter.
    """
    wanted = {resolve_chapter(n).id for n in chapter_names} if chapter_names else set(CHAPTER_BY_ID)
    order = {c.id: c.number for c in CHAPTERS}
    return sorted((c for c in REGISTRY.values() if c.chapter in wanted), key=lambda c: (order[c.chapter], c.id))


# --------------------------------------------------------------------------- running


@dataclass
class Result:
    claim: Claim
    evidence: Evidence | None
    seconds: float
    error: str | None = None

    @property
    def verdict(self) -> str:
        """'pass', 'fail' or 'error', derived from the evidence."""
        if self.error is not None or self.evidence is None:
            return "error"
        return "pass" if self.evidence.passed else "fail"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.claim.id, "chapter": self.claim.chapter, "title": self.claim.title,
            "statement": self.claim.statement, "source": self.claim.source, "erratum": self.claim.erratum,
            "verdict": self.verdict, "seconds": round(self.seconds, 4), "error": self.error,
            "evidence": None if self.evidence is None else self.evidence.to_dict(),
        }


def _jsonable(x: Any) -> Any:
    """Plain JSON values from NumPy scalars and arrays (duck-typed: NumPy is not imported here)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (bool, int, str)) or x is None:
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else str(x)
    if hasattr(x, "tolist"):  # a NumPy array or scalar
        return _jsonable(x.tolist())
    return str(x)


def claim_seed(seed: int, claim_id: str) -> int:
    """A per-claim seed: runs are deterministic and claims do not share random streams."""
    return (seed * 1_000_003 + zlib.crc32(claim_id.encode())) % (2**32)


def run_claim(c: Claim, seed: int = 0, thorough: bool = False) -> Result:
    """Run one claim. A crashing check is an error verdict; KeyboardInterrupt and SystemExit propagate."""
    ctx = RunContext(claim_seed(seed, c.id), thorough)
    start = time.perf_counter()
    try:
        evidence = c.check(ctx)
    except Exception as exc:  # a crashing check is reported as an error verdict, not a crash of the run
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return Result(c, None, time.perf_counter() - start, tb)
    if not isinstance(evidence, Evidence):
        return Result(c, None, time.perf_counter() - start,
                      f"the check returned {type(evidence).__name__}, not Evidence")
    return Result(c, evidence, time.perf_counter() - start)


def run(claims: Iterable[Claim], seed: int = 0, thorough: bool = False,
        on_result: Callable[[Result], None] | None = None) -> list[Result]:
    results = []
    for c in claims:
        r = run_claim(c, seed, thorough)
        results.append(r)
        if on_result is not None:
            on_result(r)
    return results


@dataclass
class Summary:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    by_chapter: dict[str, list[int]] = field(default_factory=dict)  # chapter -> [passed, total]

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.errors == 0


def summarize(results: Sequence[Result]) -> Summary:
    s = Summary()
    for r in results:
        counts = s.by_chapter.setdefault(r.claim.chapter, [0, 0])
        counts[1] += 1
        if r.verdict == "pass":
            s.passed += 1
            counts[0] += 1
        elif r.verdict == "fail":
            s.failed += 1
        else:
            s.errors += 1
    return s
