"""Device laws: pure, stateless array functions of the memristor and the transistor."""

from ionspike.device.memristor import growth_rate, ionic_rates, resistance
from ionspike.device.transistor import drain_current, solve_drain

__all__ = ["growth_rate", "ionic_rates", "resistance", "drain_current", "solve_drain"]
