"""dlmath.approx: universal approximation with certified error, rates and depth separation (chapter 1).

* `approximate(f, domain, eps)`: a one-hidden-layer network with a stated, checked error bound
  (construct.py); `ShallowNet` / `ReLUNet` hold the weights (networks.py).
* `sawtooth`, `folding_net`, `count_linear_regions`, `parity_network`: the power of depth (depth.py).
* `GALLERY`, `error_vs_width`, `random_features_fit`: experiments for plots and reports (experiments.py).
"""

from .construct import (
    Approximation,
    Domain,
    approximate,
    estimate_lipschitz,
    grid_certificate,
    interpolation_error_bound,
    relu_interpolant,
    ridge_features,
    sigmoid_bump,
    sigmoid_staircase,
    staircase_error_bound,
)
from .depth import (
    LinearPieces,
    count_linear_regions,
    folding_net,
    linear_pieces,
    parity_network,
    parity_relu_network,
    sawtooth,
    tent_map_layers,
)
from .experiments import (
    GALLERY,
    GalleryFunction,
    barron_constant_gaussian,
    error_vs_width,
    fitted_slope,
    random_features_fit,
    sample_ball,
)
from .networks import ACTIVATIONS, Activation, ApproximationError, ReLUNet, ShallowNet, as_relu_layers

__all__ = [
    "ACTIVATIONS", "GALLERY", "Activation", "Approximation", "ApproximationError", "Domain", "GalleryFunction",
    "LinearPieces", "ReLUNet", "ShallowNet", "approximate", "as_relu_layers", "barron_constant_gaussian",
    "count_linear_regions", "error_vs_width", "estimate_lipschitz", "fitted_slope", "folding_net",
    "grid_certificate", "interpolation_error_bound", "linear_pieces", "parity_network", "parity_relu_network",
    "random_features_fit", "relu_interpolant", "ridge_features", "sample_ball", "sawtooth", "sigmoid_bump",
    "sigmoid_staircase", "staircase_error_bound", "tent_map_layers",
]
