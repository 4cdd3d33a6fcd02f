"""Claims and their checks: the registry behind ``dlmath verify``.

A claim is one decorated function in its chapter's module::

    @claim("backprop.softmax-jacobian", title="...", statement=r"...", source="...")
    def softmax_jacobian(ctx: RunContext) -> Evidence: ...

It takes a `RunContext` (seed, thoroughness, a seeded Generator), prints nothing,
writes nothing, and returns `Evidence`: the measured quantity, the tolerance and why
that tolerance, named cross-checks (independent measurements that must hold too) and
details. The verdict is derived from those numbers, never stored. A claim about a
formula the module prints wrongly carries a `PrintedForm`: the printed version failing
beside the corrected one; the claim's verdict is about the corrected statement.

This module knows nothing of mathematics; it only collects, runs and reports.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import time
import traceback
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Chapter:
    number: int
    id: str
    title: str
    topics: str
    key_formula: str  # LaTeX, for the report
    key_formula_text: str = ""  # the same in plain Unicode, for the terminal


CHAPTERS: tuple[Chapter, ...] = (
    Chapter(1, "approximation", "Universal approximation theorem",
            "one hidden layer approximates any continuous function; expressive power of depth; width vs depth",
            r"\forall f\in C([0,1]^n),\ \epsilon>0\ \exists N:\ \|N-f\|_\infty<\epsilon",
            '∀f∈C([0,1]ⁿ), ε>0 ∃N: ‖N−f‖∞ < ε'),
    Chapter(2, "ntk", "Neural tangent kernel",
            "infinite-width limit; definition of the NTK; kernel view of training dynamics",
            r"\Theta^{(L)}=\sum_{l}\Sigma^{(l)}\prod_{l'>l}\dot\Sigma^{(l')}", "Θ⁽ᴸ⁾ = Σₗ Σ⁽ˡ⁾ ∏_{l'>l} Σ̇⁽ˡ'⁾"),
    Chapter(3, "backprop", "Backpropagation",
            "chain rule; computational graphs and automatic differentiation; efficient gradients",
            r"\partial L/\partial w^{(l)}_{ij}=\partial L/\partial z^{(l+1)}_j"
            r"\cdot\partial z^{(l+1)}_j/\partial w^{(l)}_{ij}", '∂L/∂wᵢⱼ⁽ˡ⁾ = ∂L/∂zⱼ⁽ˡ⁺¹⁾ · ∂zⱼ⁽ˡ⁺¹⁾/∂wᵢⱼ⁽ˡ⁾'),
    Chapter(4, "residual", "Residual networks",
            "theory of skip connections; gradient flow; training very deep networks", r"y=x+F(x;W)", 'y = x + F(x; W)'),
    Chapter(5, "batchnorm", "Batch normalization",
            "internal covariate shift; the mathematics of normalisation; training stability",
            r"\hat x=(x-\mu_B)/\sqrt{\sigma_B^2+\epsilon}", 'x̂ = (x − μ_B) / √(σ_B² + ε)'),
    Chapter(6, "attention", "Attention",
            "mathematical form of attention; self- vs cross-attention; multi-head attention",
            r"\mathrm{Attention}(Q,K,V)=\mathrm{softmax}(QK^\top/\sqrt{d_k})V",
            'Attention(Q,K,V) = softmax(QKᵀ/√d_k) V'),
    Chapter(7, "dropout", "Dropout",
            "dropout as regularisation; the ensemble view; the variational-inference view",
            r"\text{drop units at random in training, use the expectation at test time}",
            'drop units at random in training; use the expectation at test time'),
    Chapter(8, "convolution", "Convolutional networks",
            "definition of convolution; translation equivariance; analysis of pooling",
            r"(f*g)(x)=\int f(t)g(x-t)\,dt", '(f ∗ g)(x) = ∫ f(t) g(x − t) dt'),
    Chapter(9, "recurrent", "Recurrent networks",
            "mathematics of sequence models; LSTM and GRU; vanishing and exploding gradients",
            r"h_t=f(W_hh_{t-1}+W_xx_t+b)", 'h_t = f(W_h h_{t−1} + W_x x_t + b)'),
)
CHAPTER_BY_ID = {c.id: c for c in CHAPTERS}


class UnknownChapterError(ValueError):
    """A chapter named on the command line that the module does not have."""


def resolve_chapter(name: str) -> Chapter:
    """A chapter by id (``backprop``) or number (``3``)."""
    key = name.strip().lower()
    if key.isdigit():
        for c in CHAPTERS:
            if c.number == int(key):
                return c
    elif key in CHAPTER_BY_ID:
        return CHAPTER_BY_ID[key]
    choices = ", ".join(f"{c.number} {c.id}" for c in CHAPTERS)
    raise UnknownChapterError(f"unknown chapter {name!r}; choose one of: {choices}")


COMPARISONS = ("<=", ">=")


def _holds(measured: float, tolerance: float, comparison: str) -> bool:
    """``measured <comparison> tolerance``; a NaN or infinite measurement never holds."""
    m = float(measured)
    if not math.isfinite(m):
        return False
    return m <= tolerance if comparison == "<=" else m >= tolerance


def _check_comparison(comparison: str, what: str) -> None:
    if comparison not in COMPARISONS:
        raise ValueError(f"{what}: comparison must be one of {COMPARISONS}, got {comparison!r}")


@dataclass(frozen=True)
class CrossCheck:
    """An independent measurement that must also hold for the claim to pass."""

    name: str                # short id, e.g. "finite-differences"
    measured: float
    tolerance: float
    reason: str              # why this tolerance
    comparison: str = "<="   # "<=" or ">="

    def __post_init__(self) -> None:
        _check_comparison(self.comparison, f"cross-check {self.name!r}")
        object.__setattr__(self, "measured", float(self.measured))
        object.__setattr__(self, "tolerance", float(self.tolerance))

    @property
    def passed(self) -> bool:
        return _holds(self.measured, self.tolerance, self.comparison)


@dataclass(frozen=True)
class PrintedForm:
    """The module's printed version of a formula that is wrong, measured beside the correction.

    It is judged with the claim's own tolerance and comparison (`Evidence.printed_passed`);
    no verdict is stored here.
    """

    statement: str          # the printed formula (LaTeX)
    measured: float         # the same quantity measured for the printed form
    correction_source: str  # where the corrected statement comes from


@dataclass(frozen=True)
class Evidence:
    """What a check measured; the verdict is derived from the numbers, never stored.

    The claim passes when the main measurement meets the tolerance (compared as
    ``comparison`` says, '<=' or '>=') and every cross-check passes too.
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
        _check_comparison(self.comparison, "evidence")
        object.__setattr__(self, "measured", float(self.measured))
        object.__setattr__(self, "tolerance", float(self.tolerance))
        object.__setattr__(self, "cross_checks", tuple(self.cross_checks))

    @property
    def main_passed(self) -> bool:
        return _holds(self.measured, self.tolerance, self.comparison)

    @property
    def passed(self) -> bool:
        return self.main_passed and all(c.passed for c in self.cross_checks)

    @property
    def printed_passed(self) -> bool | None:
        """The printed form judged with the claim's tolerance and comparison (None without one)."""
        if self.printed is None:
            return None
        return _holds(self.printed.measured, self.tolerance, self.comparison)

    @classmethod
    def at_most(cls, measured: float, tolerance: float, reason: str, details: str = "",
                **extra: Any) -> Evidence:
        return cls(measured, tolerance, reason, details, "<=", **extra)

    @classmethod
    def at_least(cls, measured: float, tolerance: float, reason: str, details: str = "",
                 **extra: Any) -> Evidence:
        return cls(measured, tolerance, reason, details, ">=", **extra)

    def to_dict(self) -> dict[str, Any]:
        """Every field, plus the derived verdicts: main_passed, passed, each cross-check's
        passed and printed_passed."""
        d = asdict(self)
        d["cross_checks"] = [{**asdict(c), "passed": c.passed} for c in self.cross_checks]
        d["main_passed"] = self.main_passed
        d["passed"] = self.passed
        d["printed_passed"] = self.printed_passed
        return _jsonable(d)


@dataclass(frozen=True)
class RunContext:
    """What a check receives: its own seed (derived from the run's seed and the claim id)."""

    seed: int
    thorough: bool

    @property
    def rng(self) -> np.random.Generator:
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


def claim(id: str, *, title: str, statement: str, source: str, erratum: bool = False) -> Callable[[Check], Check]:
    """Register a check as a claim of the chapter named by the id's prefix (``backprop.x``)."""
    chapter = id.split(".", 1)[0]
    if chapter not in CHAPTER_BY_ID:
        raise UnknownChapterError(f"claim id {id!r} does not start with a chapter id")

    def register(check: Check) -> Check:
        if id in REGISTRY and REGISTRY[id].check.__qualname__ != check.__qualname__:
            raise ValueError(f"claim {id!r} registered twice")
        REGISTRY[id] = Claim(id, chapter, title, statement, source, check, erratum)
        return check
    return register


def load_all() -> dict[str, Claim]:
    """Import every chapter module so that its claims register."""
    from . import chapters

    for info in pkgutil.iter_modules(chapters.__path__):
        importlib.import_module(f"{chapters.__name__}.{info.name}")
    return REGISTRY


def select(chapter_names: Sequence[str] = ()) -> list[Claim]:
    """Claims of the named chapters (all when none named), in chapter order then id."""
    load_all()
    wanted = {resolve_chapter(n).id for n in chapter_names} if chapter_names else set(CHAPTER_BY_ID)
    order = {c.id: c.number for c in CHAPTERS}
    return sorted((c for c in REGISTRY.values() if c.chapter in wanted), key=lambda c: (order[c.chapter], c.id))


@dataclass
class Result:
    claim: Claim
    evidence: Evidence | None
    seconds: float
    error: str | None = None

    @property
    def verdict(self) -> str:
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
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else str(v)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def claim_seed(seed: int, claim_id: str) -> int:
    """A per-claim seed: runs are deterministic and claims do not share random streams."""
    return (seed * 1_000_003 + zlib.crc32(claim_id.encode())) % (2**32)


def run_claim(c: Claim, seed: int = 0, thorough: bool = False) -> Result:
    ctx = RunContext(claim_seed(seed, c.id), thorough)
    start = time.perf_counter()
    try:
        evidence = c.check(ctx)
    except Exception as exc:  # a crashing check is reported as an error verdict, not a crash of the run
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return Result(c, None, time.perf_counter() - start, tb)
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
