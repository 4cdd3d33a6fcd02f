r"""LaTeX formulas as readable plain Unicode, for a terminal (a presentation helper).

``to_text(r"\frac{\partial L}{\partial z^{(l)}_j}")`` gives ``∂L/∂z⁽ˡ⁾ⱼ``. It covers the
math-mode LaTeX that claim statements use: fractions, roots, sums and products, Greek
letters, relations and arrows, super- and subscripts (Unicode where every character has a
super/subscript form, ``^(...)`` / ``_(...)`` otherwise), accents (``\hat x`` -> x̂),
``\mathrm``/``\text``/``\mathbf``/``\operatorname``, ``\mathbb R`` -> ℝ and sizing
commands (dropped). An unknown command is kept as its name without the backslash. It is a
readable rendering, not a typesetter: the LaTeX stays the reference.
"""

from __future__ import annotations

import re

__all__ = ["to_text"]

SYMBOLS: dict[str, str] = {
    # Greek
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "vartheta": "ϑ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν",
    "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "upsilon": "υ", "phi": "φ", "varphi": "φ",
    "chi": "χ", "psi": "ψ", "omega": "ω",
    "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π", "Sigma": "Σ",
    "Upsilon": "Υ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
    # operators and big operators
    "partial": "∂", "nabla": "∇", "sum": "Σ", "prod": "∏", "int": "∫", "oint": "∮", "infty": "∞",
    "cdot": "·", "times": "×", "odot": "⊙", "otimes": "⊗", "oplus": "⊕", "circ": "∘", "ast": "∗", "star": "⋆",
    "pm": "±", "mp": "∓", "div": "÷", "sqrt": "√",
    # relations
    "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "ne": "≠", "neq": "≠", "approx": "≈", "sim": "∼",
    "simeq": "≃", "equiv": "≡", "propto": "∝", "ll": "≪", "gg": "≫", "in": "∈", "notin": "∉", "subset": "⊂",
    "subseteq": "⊆", "cup": "∪", "cap": "∩", "forall": "∀", "exists": "∃", "emptyset": "∅",
    # arrows
    "to": "→", "rightarrow": "→", "leftarrow": "←", "Rightarrow": "⇒", "Leftarrow": "⇐", "implies": "⇒",
    "iff": "⇔", "Leftrightarrow": "⇔", "mapsto": "↦",
    # dots, delimiters, misc
    "dots": "…", "ldots": "…", "cdots": "⋯", "vdots": "⋮", "ddots": "⋱", "langle": "⟨", "rangle": "⟩",
    "lceil": "⌈", "rceil": "⌉", "lfloor": "⌊", "rfloor": "⌋", "|": "‖", "Vert": "‖", "vert": "|", "mid": "|",
    "top": "ᵀ", "intercal": "ᵀ", "prime": "′", "ell": "ℓ", "{": "{", "}": "}", "%": "%", "_": "_", "#": "#",
    "&": "&", "$": "$",
    # spaces
    ",": " ", ";": " ", ":": " ", " ": " ", "quad": "  ", "qquad": "   ", "!": "",
}
FUNCTIONS = {"log", "ln", "exp", "sin", "cos", "tan", "tanh", "sinh", "cosh", "max", "min", "sup", "inf",
             "lim", "arg", "det", "dim", "ker", "deg", "Pr", "argmax", "argmin", "gcd"}
SIZING = {"left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr",
          "displaystyle", "textstyle", "scriptstyle", "limits", "nolimits"}
TEXT_ARG = {"mathrm", "text", "textrm", "textit", "textbf", "mathit", "mathbf", "mathsf", "mathtt",
            "boldsymbol", "bm", "operatorname", "mbox", "mathcal", "mathscr", "mathfrak"}
ACCENTS = {"hat": "\u0302", "widehat": "\u0302", "tilde": "\u0303", "widetilde": "\u0303", "bar": "\u0304",
           "overline": "\u0305", "dot": "\u0307", "ddot": "\u0308", "vec": "\u20d7", "check": "\u030c"}
BLACKBOARD = {"R": "ℝ", "N": "ℕ", "Z": "ℤ", "Q": "ℚ", "C": "ℂ", "E": "𝔼", "P": "ℙ", "1": "𝟙"}
FRACTIONS = {"frac", "dfrac", "tfrac", "cfrac"}
RELATIONS = {"le", "leq", "ge", "geq", "ne", "neq", "approx", "sim", "simeq", "equiv", "propto", "ll", "gg",
             "Rightarrow", "Leftarrow", "implies", "iff", "Leftrightarrow"}  # shown with a space either side

SUPERSCRIPT = dict(zip("0123456789+-−=()nilabcdefghjkmoprstuvwxyzABDEGHIJKLMNOPRTUVWαβγδεθφχ′'ᵀ*",
                       "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻⁼⁽⁾ⁿⁱˡᵃᵇᶜᵈᵉᶠᵍʰʲᵏᵐᵒᵖʳˢᵗᵘᵛʷˣʸᶻᴬᴮᴰᴱᴳᴴᴵᴶᴷᴸᴹᴺᴼᴾᴿᵀᵁⱽᵂᵅᵝᵞᵟᵋᶿᵠᵡ′′ᵀ*",
                       strict=True))
SUBSCRIPT = dict(zip("0123456789+-−=()aehijklmnoprstuvxβγρφχ",
                     "₀₁₂₃₄₅₆₇₈₉₊₋₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓᵦᵧᵨᵩᵪ", strict=True))

_TOKEN = re.compile(r"\\([A-Za-z]+)\s*|\\(.)|(\s+)|(.)", re.S)
_LOOSE = set(" +−-=,<>≤≥×·/→⇒≈∈")  # a part holding one of these (outside brackets) gets parentheses


def to_text(latex: str) -> str:
    """``latex`` (math mode) as plain Unicode, for a terminal."""
    tokens = [m.groups() for m in _TOKEN.finditer(latex)]
    text, _ = _sequence(tokens, 0, math=True)
    return re.sub(r" {2,}", " ", text).strip()


Token = tuple[str | None, str | None, str | None, str | None]


def _sequence(tokens: list[Token], i: int, math: bool, stop: str = "}") -> tuple[str, int]:
    """Render tokens from ``i`` up to the closing ``stop`` (not consumed) or the end."""
    out: list[str] = []
    while i < len(tokens):
        char = tokens[i][3]
        if char == stop:
            break
        piece, i = _atom(tokens, i, math)
        if piece is None:  # ^ or _: applies to what precedes it
            marker = char
            arg, i = _argument(tokens, i + 1, math)
            out.append(_script(arg, SUPERSCRIPT if marker == "^" else SUBSCRIPT, marker or "^"))
        else:
            out.append(piece)
    return "".join(out), i


def _atom(tokens: list[Token], i: int, math: bool) -> tuple[str | None, int]:
    """One rendered item starting at ``i``, and the index after it (None for ^ and _ in math)."""
    word, symbol, space, char = tokens[i]
    if space is not None:
        return " ", i + 1
    if char is not None:
        if char == "{":
            inner, j = _sequence(tokens, i + 1, math)
            return inner, j + 1
        if math and char in "^_":
            return None, i
        if math and char == "-":
            return "−", i + 1
        if math and char == "~":
            return " ", i + 1
        return char, i + 1
    if symbol is not None:
        return SYMBOLS.get(symbol, symbol), i + 1
    return _command(word or "", tokens, i + 1, math)


def _argument(tokens: list[Token], i: int, math: bool) -> tuple[str, int]:
    """The argument of a command or script: a ``{group}`` or the next single item."""
    while i < len(tokens) and tokens[i][2] is not None:  # skip spaces
        i += 1
    if i >= len(tokens):
        return "", i
    piece, j = _atom(tokens, i, math)
    return piece or "", j


def _command(name: str, tokens: list[Token], i: int, math: bool) -> tuple[str, int]:
    if name in FRACTIONS:
        num, i = _argument(tokens, i, math)
        den, i = _argument(tokens, i, math)
        return f"{_grouped(num)}/{_grouped(den)}", i
    if name == "sqrt":
        if i < len(tokens) and tokens[i][3] == "[":
            index, i = _sequence(tokens, i + 1, math, stop="]")
            i += 1
            arg, i = _argument(tokens, i, math)
            return f"{_script(index, SUPERSCRIPT, '^')}√{_grouped(arg)}", i
        arg, i = _argument(tokens, i, math)
        return f"√{_grouped(arg)}", i
    if name in TEXT_ARG:
        arg, i = _argument(tokens, i, math=name not in {"text", "textrm", "textit", "textbf", "mbox"})
        return arg, i
    if name == "mathbb":
        arg, i = _argument(tokens, i, math)
        return "".join(BLACKBOARD.get(ch, ch) for ch in arg), i
    if name in ACCENTS:
        arg, i = _argument(tokens, i, math)
        return (arg + ACCENTS[name]) if len(arg) == 1 else f"{arg}{ACCENTS[name]}", i
    if name in SIZING:
        return "", i
    if name in FUNCTIONS:  # log softmax(z), not logsoftmax(z)
        nxt = tokens[i] if i < len(tokens) else (None, None, None, None)
        return name + (" " if nxt[0] is not None or (nxt[3] or "").isalpha() else ""), i
    if name in RELATIONS:
        return f" {SYMBOLS[name]} ", i
    return SYMBOLS.get(name, name), i


def _script(arg: str, table: dict[str, str], marker: str) -> str:
    """``arg`` raised or lowered with Unicode characters when all of them exist, else ``^(arg)``."""
    if arg and all(ch in table or ch in table.values() for ch in arg):
        return "".join(table.get(ch, ch) for ch in arg)
    if len(arg) == 1 or not _loose(arg):
        return f"{marker}{arg}"
    return f"{marker}({arg})"


def _loose(part: str) -> bool:
    """Does ``part`` hold an operator or a space outside brackets (so that it needs parentheses)?"""
    depth = 0
    for ch in part:
        if ch in "([{⟨":
            depth += 1
        elif ch in ")]}⟩":
            depth -= 1
        elif depth == 0 and ch in _LOOSE:
            return True
    return False


def _grouped(part: str) -> str:
    """A fraction's numerator or denominator, in parentheses unless it is one item (``2h`` is two)."""
    part = part.strip()
    return f"({part})" if _loose(part) or re.search(r"[0-9][^\W0-9_]", part) else part
