"""nn.fusion against torch.nn.utils.fusion (float64): conv (plain and transposed) and linear weights."""

from __future__ import annotations

import numpy as np
import pytest

from dlmath.nn import fusion

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("shape,transpose", [((5, 3, 3, 3), False), ((3, 5, 2, 2), True), ((5, 7), False)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_fuse_weights_match_torch(shape: tuple[int, ...], transpose: bool, with_bias: bool) -> None:
    rng = np.random.default_rng(0)
    c = shape[1] if transpose else shape[0]
    w, b = rng.standard_normal(shape), rng.standard_normal(c) if with_bias else None
    rm, rv, g, beta = rng.standard_normal(c), rng.uniform(0.1, 2, c), rng.uniform(0.5, 2, c), rng.standard_normal(c)
    t = torch.tensor
    if len(shape) == 2:
        W, B = fusion.fuse_linear_bn_weights(w, b, rm, rv, 1e-5, g, beta)
        tW, tB = torch.nn.utils.fusion.fuse_linear_bn_weights(t(w), None if b is None else t(b), t(rm), t(rv), 1e-5,
                                                               t(g), t(beta))
    else:
        W, B = fusion.fuse_conv_bn_weights(w, b, rm, rv, 1e-5, g, beta, transpose=transpose)
        tW, tB = torch.nn.utils.fusion.fuse_conv_bn_weights(t(w), None if b is None else t(b), t(rm), t(rv), 1e-5,
                                                             t(g), t(beta), transpose=transpose)
    np.testing.assert_allclose(W, tW.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(B, tB.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_mismatched_statistics_name_the_function() -> None:
    with pytest.raises(ValueError, match="fuse_conv_bn_weights: running statistics"):
        fusion.fuse_conv_bn_weights(np.ones((4, 3)), None, np.zeros(3), np.ones(3), 1e-5, None, None)
