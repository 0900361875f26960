"""Honest baselines for the world model: persistence, training mean, AR(1), ridge, dynamic factor.

Every baseline answers the same question as the model: given a batch of windows in
normalised units, `values` and `presence` of shape (N, T, F) and a boolean `hidden` mask
of what is to be predicted, return a (N, T, F) prediction; only the hidden cells are
scored. A cell is *visible* when it is present and not hidden; no baseline ever reads
a hidden value. Everything is NumPy over whole arrays.

* `persistence`: the last visible value of the field in the window at or before the
  step (for a hidden cell: strictly before it); the training mean, 0, when none is.
* `training_mean`: 0, the training mean in normalised units.
* `ar1` / `AR1`: per field x_t = a + b x_{t-1}, fitted by least squares on the
  consecutive observed pairs of the training windows; the h-step forecast from the
  last visible value is a (1 - b^h) / (1 - b) + b^h x (0 when nothing is visible).
  A field with fewer than `MIN_PAIRS` pairs or no variation falls back to a = 0,
  b = 1 (persistence).
* `Ridge`: per field, ridge regression of the hidden cell on the visible cross-section
  of its step and every field's last visible value before it, fitted on the training
  windows hidden as the task hides them; the penalty is chosen on the last 20% of the
  training windows.
* `Oracle` (synthetic world only): per field, least squares on the hidden factors of
  the window through the cell's step and the field's last visible value. It is no floor
  for what the fields share beyond the factors (same-step co-movements, release noise).
* `dynamic_factor` / `DynamicFactor`: statsmodels' `DynamicFactorMQ` (EM, idiosyncratic
  AR(1) components, factor order 1) fitted on the training period's panel: one row per
  step holding each field's latest vintage seen by the training windows. It covers the
  varying fields observed in at least `min_coverage` of the panel's steps and in
  `MIN_DFM_STEPS` steps (at most `max_fields`, the best-covered first). Each window is
  then nowcast on its own: a Kalman filter and RTS smoother with the fitted matrices
  run over the window's T steps from the stationary state distribution (approximately
  diffuse if the fit is not stationary), every invisible cell missing; the smoothed
  signal (factors times loadings plus the idiosyncratic state) is the prediction. This
  is ``results.apply(window, refit=False)``'s smoothed signal, batched over windows.
  Fields it does not cover, or all fields when it cannot be fitted (`reason` says
  why), get NaN (reported as n/a).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from canvas.layout import STEPS

MIN_PAIRS = 3
MIN_DFM_STEPS = 12
_JITTER = 1e-9
DIFFUSE = 1e6  # prior variance of a non-stationary state, as statsmodels' approximate diffuse


def step_index(days: np.ndarray, step: str) -> np.ndarray:
    """Integer step number of step starts given in days since 1970-01-01 (`layout.step`)."""
    days = np.asarray(days, dtype=np.int64)
    if step in ("1mo", "1q"):
        months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
        return months if step == "1mo" else months // 3
    if step not in STEPS:
        raise ValueError(f"step must be one of {sorted(STEPS)}, got {step!r}")
    return days // int(STEPS[step])


def last_visible(
    values: np.ndarray, presence: np.ndarray, hidden: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell: the last visible value at or before its step, the horizon to it, found."""
    T = values.shape[1]
    visible = (presence > 0) & ~hidden
    steps = np.arange(T)[None, :, None]
    last = np.maximum.accumulate(np.where(visible, steps, -1), axis=1)
    found = last >= 0
    value = np.take_along_axis(values, np.maximum(last, 0), axis=1)
    return np.where(found, value, 0.0), np.where(found, steps - last, 0), found


def persistence(values: np.ndarray, presence: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """The last visible value of each field before the target step; 0 when there is none."""
    return last_visible(values, presence, hidden)[0].astype(np.float32)


def training_mean(values: np.ndarray, presence: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """The per-field training mean: 0 in normalised units."""
    return np.zeros(values.shape, dtype=np.float32)


@dataclass(frozen=True)
class AR1:
    """Per-field AR(1) x_t = a + b x_{t-1}; `fitted` marks fields with enough pairs."""

    a: np.ndarray
    b: np.ndarray
    fitted: np.ndarray

    @classmethod
    def fit(cls, train_values: np.ndarray, train_presence: np.ndarray) -> AR1:
        """Least squares per field over consecutive observed pairs of the training windows."""
        pair = (train_presence[:, 1:] > 0) & (train_presence[:, :-1] > 0)
        x = np.where(pair, train_values[:, :-1], 0.0).astype(np.float64)
        y = np.where(pair, train_values[:, 1:], 0.0).astype(np.float64)
        n = pair.sum(axis=(0, 1)).astype(np.float64)
        sx, sy = x.sum(axis=(0, 1)), y.sum(axis=(0, 1))
        sxx, sxy = (x * x).sum(axis=(0, 1)), (x * y).sum(axis=(0, 1))
        spread = n * sxx - sx**2
        fitted = (n >= MIN_PAIRS) & (spread > 1e-9 * np.maximum(n, 1) ** 2)
        safe = np.where(fitted, spread, 1.0)
        b = np.where(fitted, (n * sxy - sx * sy) / safe, 1.0)
        a = np.where(fitted, (sy - b * sx) / np.maximum(n, 1), 0.0)
        return cls(a=a, b=b, fitted=fitted)

    def predict(self, values: np.ndarray, presence: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        """h-step forecast from the last visible value (closed form); 0 when none is visible."""
        x, h, found = last_visible(values, presence, hidden)
        power = self.b**h
        unit = np.isclose(self.b, 1.0)
        geometric = np.where(unit, h, (1.0 - power) / np.where(unit, 1.0, 1.0 - self.b))
        return np.where(found, self.a * geometric + power * x, 0.0).astype(np.float32)


def ar1(
    values: np.ndarray,
    presence: np.ndarray,
    hidden: np.ndarray,
    train_values: np.ndarray,
    train_presence: np.ndarray,
) -> np.ndarray:
    """AR(1) forecasts of the hidden cells, fitted on the training windows."""
    return AR1.fit(train_values, train_presence).predict(values, presence, hidden)


def panel_features(values: np.ndarray, presence: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """(N, T, 3F) regressors of each cell: every field's visible value at the step (0 when
    hidden or absent), whether it is visible, and its last visible value before the step."""
    visible = (presence > 0) & ~hidden
    same_step = np.where(visible, values, 0.0)
    shifted = np.concatenate([np.zeros_like(visible[:, :1]), visible[:, :-1]], axis=1)
    before = np.concatenate([np.zeros_like(values[:, :1]), values[:, :-1]], axis=1)
    earlier = last_visible(before, shifted, np.zeros_like(shifted))[0]
    return np.concatenate([same_step, visible, earlier], axis=-1).astype(np.float64)


@dataclass(frozen=True)
class Ridge:
    """Per field, ridge regression of a hidden cell on the panel around it
    (`panel_features`: the visible cross-section of its step and each field's last
    visible value before it), fitted on training windows hidden as the task hides them.
    `coef` (F, 3F + 1) holds the weights and, last, the intercept; a field without
    `MIN_PAIRS` training targets predicts 0 (the training mean). `penalty` is the one of
    `PENALTIES` that predicts the last `HOLDOUT` of the training windows best when fitted
    on the ones before them (chosen without the test period, then refitted on all)."""

    coef: np.ndarray
    fitted: np.ndarray
    penalty: float

    PENALTIES = (1.0, 10.0, 100.0, 1000.0, 10000.0)
    HOLDOUT = 0.2

    @classmethod
    def fit(
        cls,
        train_values: np.ndarray,
        train_presence: np.ndarray,
        hidden_masks: list[np.ndarray],
        penalty: float | None = None,
    ) -> Ridge:
        """Solve (X'X + penalty I) w = X'y per field over the hidden, present training
        cells of every mask (the intercept is not penalised)."""
        if penalty is None:
            cut = int(len(train_values) * (1 - cls.HOLDOUT))
            early = [m[:cut] for m in hidden_masks]
            late = [m[cut:] for m in hidden_masks]
            errors = [
                cls._fit(train_values[:cut], train_presence[:cut], early, p).error(
                    train_values[cut:], train_presence[cut:], late
                )
                for p in cls.PENALTIES
            ]
            penalty = (
                cls.PENALTIES[int(np.nanargmin(errors))] if np.isfinite(errors).any() else 10.0
            )
        return cls._fit(train_values, train_presence, hidden_masks, penalty)

    @classmethod
    def _fit(
        cls,
        values: np.ndarray,
        presence: np.ndarray,
        hidden_masks: list[np.ndarray],
        penalty: float,
    ) -> Ridge:
        F = values.shape[-1]
        k = 3 * F + 1
        gram = np.zeros((F, k, k))
        moment = np.zeros((F, k))
        count = np.zeros(F, dtype=np.int64)
        for hidden in hidden_masks:
            n, t, f = np.nonzero(hidden & (presence > 0))
            x = panel_features(values, presence, hidden)
            rows = np.concatenate([x[n, t], np.ones((len(n), 1))], axis=1)
            y = values[n, t, f].astype(np.float64)
            for field in np.unique(f):
                pick = f == field
                gram[field] += rows[pick].T @ rows[pick]
                moment[field] += rows[pick].T @ y[pick]
                count[field] += pick.sum()
        ridge = penalty * np.eye(k)
        ridge[-1, -1] = 0.0
        fitted = count >= MIN_PAIRS
        coef = np.zeros((F, k))
        for field in np.flatnonzero(fitted):
            coef[field] = np.linalg.solve(gram[field] + ridge, moment[field])
        return cls(coef=coef, fitted=fitted, penalty=penalty)

    def error(
        self, values: np.ndarray, presence: np.ndarray, hidden_masks: list[np.ndarray]
    ) -> float:
        """Mean squared error over the hidden, present cells of every mask (NaN: none)."""
        total, n = 0.0, 0
        for hidden in hidden_masks:
            target = hidden & (presence > 0)
            total += float(((self.predict(values, presence, hidden) - values)[target] ** 2).sum())
            n += int(target.sum())
        return total / n if n else float("nan")

    def predict(self, values: np.ndarray, presence: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        """Each cell's regression on its panel (0 for fields without a fit)."""
        x = panel_features(values, presence, hidden)
        out = np.einsum("ntk,fk->ntf", x, self.coef[:, :-1]) + self.coef[:, -1]
        return out.astype(np.float32)


@dataclass(frozen=True)
class Oracle:
    """The synthetic world's oracle: per field, least squares of a cell on the hidden
    factors of every step of its window up to the cell's (`factors`, (N, T, K) per
    window: known to the world, never to the model) and, like AR(1), the field's last
    visible value before the cell; fitted on the training windows' observed cells.
    `coef` (F, T * K + 3) ends with the lag weight, a found flag and the intercept."""

    coef: np.ndarray
    fitted: np.ndarray

    @classmethod
    def fit(
        cls, train_values: np.ndarray, train_presence: np.ndarray, train_factors: np.ndarray
    ) -> Oracle:
        """Normal equations per field over the observed cells (a 1e-9 jitter keeps a
        field with collinear regressors solvable)."""
        hidden = np.zeros(train_values.shape, dtype=bool)
        F = train_values.shape[-1]
        coef, fitted = [], np.zeros(F, dtype=bool)
        for f in range(F):
            x = cls._design(train_factors, train_values, train_presence, hidden, f)
            seen = train_presence[..., f] > 0
            k = x.shape[-1]
            coef.append(np.zeros(k))
            if seen.sum() < k:
                continue
            rows, y = x[seen], train_values[..., f][seen].astype(np.float64)
            coef[f] = np.linalg.solve(rows.T @ rows + _JITTER * np.eye(k), rows.T @ y)
            fitted[f] = True
        return cls(coef=np.stack(coef), fitted=fitted)

    @staticmethod
    def _design(
        factors: np.ndarray, values: np.ndarray, presence: np.ndarray, hidden: np.ndarray, f: int
    ) -> np.ndarray:
        """(N, T, T * K + 3) regressors of field f's cells: the factors at lags 0 .. T-1
        of the cell's step (a lag before the window repeats its first step), the field's
        last visible value strictly before the cell, whether there is one, and 1."""
        N, T, K = factors.shape
        lag = np.arange(T)[:, None] - np.arange(T)[None, :]  # (step, lag) -> source step
        lagged = factors[:, np.maximum(lag, 0)].reshape(N, T, T * K)
        visible = (presence[..., f] > 0) & ~hidden[..., f]
        shifted = np.concatenate([np.zeros((N, 1), dtype=bool), visible[:, :-1]], axis=1)
        before = np.concatenate([np.zeros((N, 1)), values[:, :-1, f]], axis=1)
        last, _, found = last_visible(
            before[..., None], shifted[..., None], np.zeros((N, T, 1), dtype=bool)
        )
        return np.concatenate(
            [lagged, last, found.astype(np.float64), np.ones((N, T, 1))], axis=-1
        ).astype(np.float64)

    def predictor(
        self, factors: np.ndarray
    ) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
        """The oracle as a baseline for the windows whose factors are `factors` (NaN for
        fields it could not fit)."""

        def predict(values: np.ndarray, presence: np.ndarray, hidden: np.ndarray) -> np.ndarray:
            out = np.full(values.shape, np.nan, dtype=np.float32)
            for f in np.flatnonzero(self.fitted):
                x = self._design(factors, values, presence, hidden, f)
                out[..., f] = x @ self.coef[f]
            return out

        return predict


def training_panel(
    values: np.ndarray, presence: np.ndarray, steps: np.ndarray | None = None
) -> np.ndarray:
    """(S, F) panel of the steps the windows cover, each cell the latest vintage; NaN absent.

    `steps` (N,) are the windows' end step numbers (consecutive when None).
    """
    N, T, F = values.shape
    steps = np.arange(N) if steps is None else np.asarray(steps, dtype=np.int64)
    n, j, f = np.nonzero(presence > 0)
    row = steps[n] - steps.min() + j
    order = np.lexsort((steps[n], row * F + f))  # by cell, then by window end
    key = (row * F + f)[order]
    last = np.r_[key[1:] != key[:-1], True]
    pick = order[last]
    panel = np.full((int(steps.max() - steps.min()) + T, F), np.nan)
    panel[row[pick], f[pick]] = values[n[pick], j[pick], f[pick]]
    return panel


@dataclass(frozen=True)
class DynamicFactor:
    """A fitted dynamic factor model over `fields`; NaN predictions when `reason` is set."""

    fields: np.ndarray
    k_factors: int
    reason: str | None = None
    design: np.ndarray | None = None  # (k, m)
    transition: np.ndarray | None = None  # (m, m)
    state_cov: np.ndarray | None = None  # (m, m) R Q R'
    obs_cov: np.ndarray | None = None  # (k, k)
    initial_cov: np.ndarray | None = None  # (m, m)

    @classmethod
    def fit(
        cls,
        train_values: np.ndarray,
        train_presence: np.ndarray,
        train_steps: np.ndarray | None = None,
        *,
        eligible: np.ndarray | None = None,
        k_factors: int = 2,
        max_fields: int = 20,
        min_coverage: float = 0.5,
        maxiter: int = 30,
    ) -> DynamicFactor:
        """Fit DynamicFactorMQ on the training panel (see the module doc).

        `eligible` (F,) bool restricts the fields (e.g. no latent or vector fields).
        `k_factors` (1 or 2) drops to 1 when fewer than 4 fields qualify.
        """
        if k_factors not in (1, 2):
            raise ValueError(f"k_factors must be 1 or 2, got {k_factors}")
        panel = training_panel(train_values, train_presence, train_steps)
        observed = np.isfinite(panel)
        count = observed.sum(axis=0)
        filled = np.where(observed, panel, 0.0)
        mean = filled.sum(axis=0) / np.maximum(count, 1)
        variance = (np.where(observed, filled - mean, 0.0) ** 2).sum(axis=0) / np.maximum(count, 1)
        coverage = count / len(panel)
        ok = (coverage >= min_coverage) & (count >= MIN_DFM_STEPS) & (variance > 1e-12)
        if eligible is not None:
            ok &= eligible
        fields = np.flatnonzero(ok)
        fields = np.sort(fields[np.argsort(-coverage[fields], kind="stable")][:max_fields])
        if len(fields) < 2:
            return cls(fields, k_factors, f"{len(fields)} field(s) cover >= {min_coverage:.0%}")
        k_factors = k_factors if len(fields) >= 4 else 1
        from statsmodels.tsa.statespace.dynamic_factor_mq import DynamicFactorMQ

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = DynamicFactorMQ(
                    panel[:, fields], factors=k_factors, factor_orders=1, standardize=False
                )
                result = model.fit(maxiter=maxiter, disp=False).filter_results
        except (np.linalg.LinAlgError, ValueError) as error:
            return cls(fields, k_factors, f"DynamicFactorMQ could not be fitted: {error}")
        selection, transition = result.selection[..., 0], result.transition[..., 0]
        state_cov = selection @ result.state_cov[..., 0] @ selection.T
        return cls(
            fields=fields,
            k_factors=k_factors,
            design=result.design[..., 0],
            transition=transition,
            state_cov=state_cov,
            obs_cov=result.obs_cov[..., 0],
            initial_cov=_initial_cov(transition, state_cov),
        )

    def describe(self, paths: list[str] | None = None) -> dict[str, object]:
        """What the model covers, or why it is not applicable."""
        fields = [paths[f] for f in self.fields] if paths else self.fields.tolist()
        return {"fields": fields, "k_factors": self.k_factors, "reason": self.reason}

    def predict(self, values: np.ndarray, presence: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        """Smoothed signal of each window from its visible cells; NaN off the covered fields."""
        return self.predictive(values, presence, hidden)[0]

    def predictive(
        self, values: np.ndarray, presence: np.ndarray, hidden: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) of each cell's predictive distribution given the window's visible
        cells: the smoothed signal, and sqrt(Z P Z' + H) on the diagonal with P the
        smoothed state covariance (a Gaussian); NaN off the covered fields."""
        mean = np.full(values.shape, np.nan, dtype=np.float32)
        std = np.full(values.shape, np.nan, dtype=np.float32)
        if self.reason is not None:
            return mean, std
        visible = (presence[..., self.fields] > 0) & ~hidden[..., self.fields]
        y = np.where(visible, values[..., self.fields], 0.0).astype(np.float64)
        signal, signal_var = self._smooth(y, visible)
        mean[..., self.fields] = signal
        std[..., self.fields] = np.sqrt(signal_var + np.diag(self.obs_cov))
        return mean, std

    def _smooth(self, y: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Kalman filter + RTS smoother batched over windows: (N, T, k) smoothed signal
        Z a_t and its variance diag(Z P_t Z')."""
        Z, A, Q, H = self.design, self.transition, self.state_cov, self.obs_cov
        N, T, k = y.shape
        m = A.shape[0]
        eye_k = np.eye(k)
        a = np.zeros((N, m))
        P = np.broadcast_to(self.initial_cov, (N, m, m)).copy()
        filtered, predicted = [], []
        for t in range(T):
            w = visible[:, t]
            Zt = Z[None] * w[..., None]  # a missing row carries no information
            both = w[:, :, None] & w[:, None, :]
            Ht = np.where(both, H, 0.0) + eye_k * (~w)[:, None, :] + _JITTER * eye_k
            PZ = P @ Zt.transpose(0, 2, 1)  # (N, m, k)
            F = Zt @ PZ + Ht
            gain = np.linalg.solve(F, PZ.transpose(0, 2, 1)).transpose(0, 2, 1)
            innovation = y[:, t] - np.einsum("nkm,nm->nk", Zt, a)
            predicted.append((a, P))
            a = a + np.einsum("nmk,nk->nm", gain, innovation)
            P = P - gain @ PZ.transpose(0, 2, 1)
            filtered.append((a, P))
            a, P = a @ A.T, A @ P @ A.T + Q
        smoothed, smoothed_cov = [filtered[-1][0]], [filtered[-1][1]]
        for t in range(T - 2, -1, -1):
            a_f, P_f = filtered[t]
            a_p, P_p = predicted[t + 1]
            P_p = P_p + _JITTER * np.eye(m)
            J = np.linalg.solve(P_p, A @ P_f).transpose(0, 2, 1)  # P_f A' P_p^-1
            smoothed.append(a_f + np.einsum("nij,nj->ni", J, smoothed[-1] - a_p))
            smoothed_cov.append(P_f + J @ (smoothed_cov[-1] - P_p) @ J.transpose(0, 2, 1))
        states = np.stack(smoothed[::-1], axis=1)  # (N, T, m)
        covs = np.stack(smoothed_cov[::-1], axis=1)  # (N, T, m, m)
        variance = np.einsum("km,ntml,kl->ntk", Z, covs, Z)
        return states @ Z.T, np.maximum(variance, 0.0)


def _initial_cov(transition: np.ndarray, state_cov: np.ndarray) -> np.ndarray:
    """Stationary state covariance; approximately diffuse when the fit is not stationary."""
    if np.abs(np.linalg.eigvals(transition)).max() >= 1.0:
        return np.eye(len(transition)) * DIFFUSE
    from scipy.linalg import solve_discrete_lyapunov

    return solve_discrete_lyapunov(transition, state_cov)


def dynamic_factor(
    values: np.ndarray,
    presence: np.ndarray,
    hidden: np.ndarray,
    train_values: np.ndarray,
    train_presence: np.ndarray,
    train_steps: np.ndarray | None = None,
    **options: object,
) -> np.ndarray:
    """Dynamic factor nowcasts of the hidden cells (NaN where not applicable)."""
    model = DynamicFactor.fit(train_values, train_presence, train_steps, **options)
    return model.predict(values, presence, hidden)
