"""Prediction intervals from validation errors: conformal quantiles, coverage, CRPS."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from training.intervals import crps, interval, score, score_gaussian, validation_errors


def test_conformal_quantiles_on_known_errors():
    errors = np.arange(1.0, 20.0)  # 19 errors: 1 .. 19
    # 80%: the (0.1 * 20)th and (0.9 * 20)th smallest, i.e. 2 and 18
    assert interval(errors, 0.8) == (2.0, 18.0)
    # 95%: floor(0.025 * 20) = 0 -> the smallest; ceil(0.975 * 20) = 20 -> capped at 19
    assert interval(errors, 0.95) == (1.0, 19.0)


def test_crps_of_an_ensemble_by_hand():
    # ensemble {-1, 1}, outcome 0: E|X - 0| = 1, E|X - X'| = (0 + 2 + 2 + 0) / 4 = 1
    assert crps(np.array([-1.0, 1.0]), 0.0) == pytest.approx(0.5)
    # a point ensemble is the absolute error
    assert crps(np.array([2.0]), 0.5) == pytest.approx(1.5)


def test_errors_are_normalised_per_field_and_score_coverage_on_other_cells():
    fields = ["a"] * 10 + ["b"] * 3  # b has too few errors for an interval
    validation = pl.DataFrame(
        {
            "field": fields,
            "actual": [float(i) for i in range(10)] + [0.0, 0.0, 0.0],
            "model": [0.0] * 13,
        }
    )
    errors = validation_errors(validation, {"a": 2.0, "b": 1.0})
    assert errors == {"a": [i / 2 for i in range(10)]}
    # a's 80% interval of 0, 0.5, ..., 4.5 (n = 10): the floor(0.1 * 11) = 1st and the
    # ceil(0.9 * 11) = 10th smallest, (0.0, 4.5) normalised
    test = pl.DataFrame(
        {
            "field": ["a", "a", "a", "a", "b"],
            "actual": [1.0, 7.9, 8.1, -0.1, 5.0],
            "model": [0.0] * 5,
        }
    )
    scores = score(test, errors, {"a": 2.0, "b": 1.0})
    assert scores["cells"] == 4
    assert scores["coverage_80"] == 0.75  # all but -0.1 (-0.05 normalised) inside
    assert scores["crps"] == pytest.approx(
        np.mean([crps(np.array(errors["a"]), r) for r in (0.5, 3.95, 4.05, -0.05)])
    )


def test_gaussian_intervals_and_crps_by_hand():
    from scipy.stats import norm

    # field a (std 2): mean 0, spread 2 (1 normalised); outcomes at z = 0, 1, 1.5, 3
    frame = pl.DataFrame(
        {
            "field": ["a"] * 4 + ["b"],
            "actual": [0.0, 2.0, 3.0, 6.0, 1.0],
            "dfm": [0.0] * 4 + [float("nan")],  # b: no DFM prediction, not scored
            "dfm_std": [2.0] * 4 + [1.0],
        }
    )
    scores = score_gaussian(frame, {"a": 2.0, "b": 1.0})
    assert scores["cells"] == 4
    assert scores["coverage_80"] == 0.5  # |z| <= 1.2816: z = 0 and 1
    assert scores["coverage_95"] == 0.75  # |z| <= 1.96: and 1.5
    # CRPS of N(0, 1) at y: y (2 Phi(y) - 1) + 2 phi(y) - 1 / sqrt(pi); at 0: (sqrt 2 - 1) / sqrt pi
    at = [y * (2 * norm.cdf(y) - 1) + 2 * norm.pdf(y) - 1 / np.sqrt(np.pi) for y in (0, 1, 1.5, 3)]
    assert at[0] == pytest.approx((np.sqrt(2) - 1) / np.sqrt(np.pi))
    assert scores["crps"] == pytest.approx(np.mean(at))
    # a Gaussian's CRPS is what an ensemble of its n quantiles converges to; deterministic,
    # the midpoint quantiles' error shrinks like 1/n (5e-8 here), abs=1e-5 leaves room
    ensemble = norm.ppf((np.arange(4000) + 0.5) / 4000)
    assert crps(ensemble, 1.5) == pytest.approx(at[2], abs=1e-5)
