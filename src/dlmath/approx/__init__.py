"""dlmath.approx: universal approximation with certified error, rates and depth separation (chapter 1).

Empty until the universal-approximation issue; chapters that need constructions import them from here.
"""

__all__: list[str] = []
