"""How hard a fit works (:class:`FitOptions`) and the noise grids it searches."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ionspike.errors import ParameterError

N_EFF_GRID = (3.0, 5.0, 10.0, 20.0, 40.0, 100.0, 300.0, 1000.0, math.inf)
SIGMA_C2C_GRID = (0.0, 0.1, 0.2, 0.35)                                 # DC sweeps
SIGMA_C2C_GRID_PULSES = (0.0, 0.35, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0)    # delays scatter over decades
POLISH_STEPS = 4  # final re-centring steps on the medians after the grid


@dataclass(frozen=True)
class FitOptions:
    """How hard to fit. ``n_grad``: trials in the gradient batch; ``steps``: Adam steps per start;
    ``restarts``: starts in the first round (later rounds start from the best); ``rounds``:
    alternations of the two stages; ``lr``: Adam learning rate (unconstrained coordinates);
    ``n_sim``: trials per grid point (None: as many as measured, at least 50); ``n_report``:
    trials in the final polish and the reported comparison, the latter drawn afresh (None: as
    many as measured, at least 400, so that the medians are centred, and the KS distances
    measure the model, more than its sampling); ``seed``: every random draw."""

    n_grad: int | None = None   # None: 16 sweeps (DC), 128 pulse trials
    steps: int = 25
    restarts: int = 3
    rounds: int = 2
    lr: float = 0.25
    n_sim: int | None = None
    n_report: int | None = None   # trials in the polish and the reported comparison (None: max(measured, 400))
    seed: int = 0
    n_eff_grid: tuple = N_EFF_GRID
    sigma_c2c_grid: tuple | None = None   # None: the default grid of the fit

    def __post_init__(self):
        for name in ("n_grad", "steps", "restarts", "rounds"):
            v = getattr(self, name)
            if name == "n_grad" and v is None:
                continue
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ParameterError(f"{name} = {v!r} is out of range: allowed integers >= 1")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ParameterError(f"lr = {self.lr!r} is out of range: allowed (0, inf)")
        for name in ("n_sim", "n_report"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 2):
                raise ParameterError(f"{name} = {v!r} is out of range: allowed integers >= 2")
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed < 2**32):
            raise ParameterError(f"seed = {self.seed!r} is out of range: allowed integers in [0, 2**32)")
        for name in ("n_eff_grid", "sigma_c2c_grid"):
            grid = getattr(self, name)
            if grid is None and name == "sigma_c2c_grid":
                continue
            try:
                values = [float(v) for v in grid]
            except (TypeError, ValueError):
                raise ParameterError(f"{name} = {grid!r}: allowed a non-empty tuple of numbers") from None
            ok = (lambda v: v > 0) if name == "n_eff_grid" else (lambda v: 0 <= v <= 5)
            if not values or not all(ok(v) and not math.isnan(v) for v in values):
                allowed = "(0, inf]" if name == "n_eff_grid" else "[0, 5]"
                raise ParameterError(f"{name} = {grid!r}: allowed a non-empty tuple of numbers in {allowed}")
            object.__setattr__(self, name, tuple(values))

    def sigmas(self, default: tuple) -> tuple:
        """The cycle-to-cycle grid of ``ln mu``: the option's, or the fit's ``default``."""
        return self.sigma_c2c_grid if self.sigma_c2c_grid is not None else default
