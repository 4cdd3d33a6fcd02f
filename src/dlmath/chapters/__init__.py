"""One module per chapter of the module "Deep Learning Mathematics": its claims and experiments.

Each module registers its claims with `dlmath.verify.claim` when imported;
`dlmath.verify.load_all` imports them all.
"""
