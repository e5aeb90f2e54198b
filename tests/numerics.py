"""Float comparisons whose tolerance follows from what the compared operations guarantee.

Two code paths that compute the same network (Keras' layers vs kvision's torch forms, a kernel
in torch's memory order vs Keras', a model before and after a save/load) sum the same products
in a different order. float32 addition is not associative: each reordered reduction may move the
result by a few units in the last place (float32's machine epsilon is 2**-23, about 1.19e-7) of
the *largest partial sums*, not of the result. So the error is bounded relative to the scale of
the output (its largest magnitude), never relative to each element: a logit near zero carries
the absolute error of the big logits beside it. An element-wise ``rtol`` of 1e-6 therefore
fails at random, depending on the random initial weights (it did, in about one run in four).
"""

from __future__ import annotations

import numpy as np

#: float32's machine epsilon.
EPS32 = float(np.finfo(np.float32).eps)

#: Allowed difference in units of ``EPS32 x scale``. Measured on the suite's small networks
#: (reductions of 25-600 terms, 30 random initialisations of alexnet_small, save/load round trip
#: and torch-layout kernels): at most 35 eps x scale. 840 eps (1e-4 relative to the scale)
#: leaves a 24x margin yet still fails for any real defect, which moves outputs by >1e-2.
REORDER_EPS = 840


def assert_close_to_scale(
    actual, expected, *, eps_units: float = REORDER_EPS, floor: float = 1.0
) -> None:
    """``actual`` equals ``expected`` up to float32 reordering: |a - e| <= eps_units*eps*scale.

    ``scale`` is max |expected|, at least ``floor`` (1: outputs near 0 are compared
    absolutely; 0: purely relative, for quantities whose size carries no meaning).
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"shapes differ: {actual.shape} vs {expected.shape}"
    scale = max(float(np.abs(expected).max(initial=0.0)), floor)
    bound = eps_units * EPS32 * scale
    worst = float(np.abs(actual.astype(np.float64) - expected).max(initial=0.0))
    assert worst <= bound, (
        f"max |difference| {worst:.3g} exceeds {bound:.3g} "
        f"({eps_units} float32 eps x output scale {scale:.3g})"
    )
