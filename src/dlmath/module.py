r"""The study module *Deep Learning Mathematics* as data: its chapters, learning path, links and course map.

This is the one place where the course's content is written down. The claim registry
(`dlmath.verify`) uses the chapter ids to file claims; the command line (`dlmath.cli`) and
the report show the rest. Neither of them holds any of it: they know people, this module
knows the course. It imports nothing from dlmath, so anything may import it.

Each chapter carries its key formula twice: in LaTeX (for reports that typeset it) and in
plain Unicode (for a terminal), written by hand so that both read well.
"""

from __future__ import annotations

from dataclasses import dataclass

TITLE = "Deep Learning Mathematics"
SUBTITLE = "the mathematics behind deep neural networks"

QUESTIONS: tuple[str, ...] = (
    "Why can a neural network approximate any function?",
    "What are the optimisation dynamics of deep networks?",
    "What is the mathematical principle behind each architecture?",
)


@dataclass(frozen=True)
class Chapter:
    """One chapter of the module: its number, id (used in claim ids), title, topics and key formula."""

    number: int
    id: str
    title: str
    topics: str
    key_formula: str       # LaTeX
    key_formula_text: str  # the same formula in plain Unicode, for the terminal
    note: str = ""         # what the module prints differently, when it does


CHAPTERS: tuple[Chapter, ...] = (
    Chapter(1, "approximation", "Universal approximation theorem",
            "one hidden layer approximates any continuous function; expressive power of depth; width vs depth",
            r"\forall f\in C([0,1]^n),\ \epsilon>0\ \exists N:\ \|N-f\|_\infty<\epsilon",
            "∀f∈C([0,1]ⁿ), ε>0 ∃N: ‖N−f‖∞ < ε"),
    Chapter(2, "ntk", "Neural tangent kernel",
            "infinite-width limit; definition of the NTK; kernel view of training dynamics",
            r"\Theta^{(L)}=\sum_{l}\Sigma^{(l)}\prod_{l'>l}\dot\Sigma^{(l')}",
            "Θ⁽ᴸ⁾ = Σₗ Σ⁽ˡ⁾ ∏_{l'>l} Σ̇⁽ˡ'⁾",
            note="the module prints the product of the later layers' Σ times Σ̇ of layer l; the standard "
                 "result (Jacot, Gabriel & Hongler 2018) is the one shown"),
    Chapter(3, "backprop", "Backpropagation",
            "chain rule; computational graphs and automatic differentiation; efficient gradients",
            r"\partial L/\partial w^{(l)}_{ij}=\partial L/\partial z^{(l+1)}_j"
            r"\cdot\partial z^{(l+1)}_j/\partial w^{(l)}_{ij}",
            "∂L/∂wᵢⱼ⁽ˡ⁾ = ∂L/∂zⱼ⁽ˡ⁺¹⁾ · ∂zⱼ⁽ˡ⁺¹⁾/∂wᵢⱼ⁽ˡ⁾"),
    Chapter(4, "residual", "Residual networks",
            "theory of skip connections; gradient flow; training very deep networks",
            r"y=x+F(x;W)", "y = x + F(x; W)"),
    Chapter(5, "batchnorm", "Batch normalization",
            "internal covariate shift; the mathematics of normalisation; training stability",
            r"\hat x=(x-\mu_B)/\sqrt{\sigma_B^2+\epsilon}", "x̂ = (x − μ_B) / √(σ_B² + ε)"),
    Chapter(6, "attention", "Attention",
            "mathematical form of attention; self- vs cross-attention; multi-head attention",
            r"\mathrm{Attention}(Q,K,V)=\mathrm{softmax}(QK^\top/\sqrt{d_k})V",
            "Attention(Q,K,V) = softmax(QKᵀ/√d_k) V"),
    Chapter(7, "dropout", "Dropout",
            "dropout as regularisation; the ensemble view; the variational-inference view",
            r"\text{drop units at random in training, use the expectation at test time}",
            "drop units at random in training; use the expectation at test time"),
    Chapter(8, "convolution", "Convolutional networks",
            "definition of convolution; translation equivariance; analysis of pooling",
            r"(f*g)(x)=\int f(t)g(x-t)\,dt", "(f ∗ g)(x) = ∫ f(t) g(x − t) dt"),
    Chapter(9, "recurrent", "Recurrent networks",
            "mathematics of sequence models; LSTM and GRU; vanishing and exploding gradients",
            r"h_t=f(W_hh_{t-1}+W_xx_t+b)", "h_t = f(W_h h_{t−1} + W_x x_t + b)"),
)
CHAPTER_BY_ID: dict[str, Chapter] = {c.id: c for c in CHAPTERS}


@dataclass(frozen=True)
class Stage:
    """A stage of the learning path: chapter ids, or topics the module has no chapter for."""

    name: str
    duration: str
    topics: tuple[str, ...]


LEARNING_PATH: tuple[Stage, ...] = (
    Stage("Stage 1, foundations", "2-3 weeks", ("approximation", "backprop")),
    Stage("Stage 2, architectures", "3-4 weeks", ("residual", "attention")),
    Stage("Stage 3, advanced", "2-3 weeks", ("ntk", "optimisation dynamics (training and stability analysis)")),
)


@dataclass(frozen=True)
class ModuleLink:
    """Another study module, and which chapter leads to which of its concepts."""

    module: str
    links: tuple[tuple[str, str], ...]  # (chapter id, the concept it leads to)


MODULE_LINKS: tuple[ModuleLink, ...] = (
    ModuleLink("Optimisation theory", (("backprop", "gradient descent"), ("batchnorm", "optimisation stability"))),
    ModuleLink("Statistical learning", (("approximation", "expressive power"), ("dropout", "regularisation theory"))),
    ModuleLink("Information theory", (("attention", "information selection"),)),
)


@dataclass(frozen=True)
class Course:
    """A university course the module is benchmarked against (the course map)."""

    university: str
    course: str
    matching: str


COURSE_MAP: tuple[Course, ...] = (
    Course("MIT", "6.883 Neural Networks", "backpropagation, CNN, RNN"),
    Course("Stanford", "CS231n Convolutional Neural Networks", "CNN, attention"),
    Course("CMU", "10-601 Machine Learning", "deep-learning foundations"),
    Course("NYU", "DS-GA 1008 Deep Learning", "deep-learning theory"),
)


def topic_label(topic: str) -> str:
    """A chapter id as ``3 Backpropagation``; any other topic unchanged."""
    chapter = CHAPTER_BY_ID.get(topic)
    return f"{chapter.number} {chapter.title}" if chapter else topic
