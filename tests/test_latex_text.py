"""LaTeX statements shown as readable Unicode in the terminal (`dlmath verify --details`)."""

from __future__ import annotations

import pytest

from dlmath import verify as vf
from dlmath.chapters import load_all
from dlmath.latex_text import to_text
from dlmath.module import CHAPTERS


@pytest.mark.parametrize(("latex", "text"), [
    (r"\frac{a}{b}", "a/b"),
    (r"\frac{a+b}{c d}", "(a+b)/(c d)"),
    (r"\frac{f(x+h)-f(x-h)}{2h}", "(f(x+h)−f(x−h))/(2h)"),
    (r"\frac{\partial L}{\partial w^{(l)}_{ij}}", "∂L/∂w⁽ˡ⁾ᵢⱼ"),
    (r"\sum_{k} y_k \log p_k", "Σₖ yₖ log pₖ"),
    (r"\mathrm{diag}(p) - p p^\top", "diag(p) − p pᵀ"),
    (r"\sqrt{\sigma_B^2+\epsilon}", "√(σ_B²+ε)"),
    (r"\hat x", "x̂"),
    (r"\dot\Sigma^{(l)}", "Σ̇⁽ˡ⁾"),
    (r"a \le b \ge c \approx d", "a ≤ b ≥ c ≈ d"),
    (r"J\in\mathbb R^{m\times n}", "J∈ℝ^(m×n)"),
    (r"\Theta \odot \forall", "Θ⊙∀"),  # as in LaTeX, a space after a command word is not shown
    (r"\|x\|_\infty", "‖x‖_∞"),
    (r"x\ \text{at test-time}", "x at test-time"),
    (r"\Big(a\Big)", "(a)"),
    (r"\unknown{x}", "unknownx"),
])
def test_to_text(latex: str, text: str) -> None:
    assert to_text(latex) == text


def _formulas() -> list[str]:
    load_all()
    return [c.statement for c in vf.REGISTRY.values()] + [c.key_formula for c in CHAPTERS]


@pytest.mark.parametrize("latex", _formulas())
def test_every_statement_and_key_formula_reads_without_latex(latex: str) -> None:
    text = to_text(latex)
    assert text and "\\" not in text
    assert "^{" not in text and "_{" not in text
