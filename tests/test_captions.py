"""Pictures with several panels say what each panel is (the demo's futures.png)."""

from __future__ import annotations

import numpy as np

from motion_prior.foundation.visualize import captioned_panels


def test_each_panel_gets_its_caption_above_it():
    rng = np.random.default_rng(0)
    left, right = (rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(2))
    picture = captioned_panels([(left, "simulated"), (right, "sampled")], gap=8, band=20)
    assert picture.shape == (60, 108, 3)
    np.testing.assert_array_equal(picture[20:, :50], left)
    np.testing.assert_array_equal(picture[20:, 58:], right)
    for columns in (slice(0, 50), slice(58, 108)):
        band = picture[:20, columns]
        assert (band < 128).all(axis=-1).sum() > 10  # dark text on the white band
    assert (picture[:, 50:58] == 255).all()  # the gap stays white
