"""How hard a fit works (:class:`FitOptions`) and the noise grids it searches."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ionspike import checks
from ionspike.errors import ParameterError

N_EFF_GRID = (3.0, 5.0, 10.0, 20.0, 40.0, 100.0, 300.0, 1000.0, math.inf)
SIGMA_C2C_GRID = (0.0, 0.1, 0.2, 0.35)                                 # DC sweeps
SIGMA_C2C_GRID_PULSES = (0.0, 0.35, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0)    # delays scatter over decades
POLISH_STEPS = 4  # final re-centring steps on the medians after the grid
SEED_OFFSETS = 8  # a fit draws with seeds seed + 1 .. seed + 4 (room kept)


def _grid(name: str, values, lo: float, hi: float, lo_open: bool = False) -> tuple:
    """A non-empty tuple of floats in the interval (inf allowed where ``hi`` is inf)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ParameterError(f"{name} = {values!r}: expected a non-empty tuple of numbers")
    out = tuple(checks.real(f"{name}[{i}]", v, lo, hi, lo_open=lo_open, allow_inf=math.isinf(hi))
                for i, v in enumerate(values))
    if not out:
        raise ParameterError(f"{name} = {values!r}: expected a non-empty tuple of numbers")
    return out


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
            if not (name == "n_grad" and self.n_grad is None):
                checks.integer(name, getattr(self, name), 1)
        checks.positive("lr", self.lr)
        for name in ("n_sim", "n_report"):
            if getattr(self, name) is not None:
                checks.integer(name, getattr(self, name), 2)
        # the fit draws with seed + 1 .. seed + SEED_OFFSETS
        checks.integer("seed", self.seed, 0, checks.SEED_MAX - SEED_OFFSETS)
        object.__setattr__(self, "n_eff_grid", _grid("n_eff_grid", self.n_eff_grid, 0.0, math.inf, lo_open=True))
        if self.sigma_c2c_grid is not None:
            object.__setattr__(self, "sigma_c2c_grid", _grid("sigma_c2c_grid", self.sigma_c2c_grid, 0.0, 5.0))

    def sigmas(self, default: tuple) -> tuple:
        """The cycle-to-cycle grid of ``ln mu``: the option's, or the fit's ``default``."""
        return self.sigma_c2c_grid if self.sigma_c2c_grid is not None else default
