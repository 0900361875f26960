"""Prediction intervals from validation errors: conformal quantiles, coverage, CRPS."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from training.intervals import crps, interval, score, validation_errors


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
