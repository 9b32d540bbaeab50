"""Exceptions raised by ionspike.

Every error names the offending field or argument, the value it received and the
range it accepts, so that a user can fix the input without reading the source.
"""

from __future__ import annotations


class IonspikeError(Exception):
    """Base class of every ionspike error."""


class UnitError(IonspikeError, ValueError):
    """A unit string could not be parsed or has the wrong dimension."""


class ParameterError(IonspikeError, ValueError):
    """A parameter is outside its allowed range, unknown, or malformed."""


class StimulusError(IonspikeError, ValueError):
    """A stimulus is malformed (NaN samples, negative widths, width > period, ...)."""


class PresetError(IonspikeError, ValueError):
    """An unknown preset name or a preset file that cannot be read."""


class SolverError(IonspikeError, RuntimeError):
    """The solver produced a non-finite state.

    Attributes:
        neuron: index of the first neuron (in batch order) that failed.
        time_s: simulated time at which it first became non-finite, in s.
    """

    def __init__(self, message: str, *, neuron: int, time_s: float):
        super().__init__(message)
        self.neuron = neuron
        self.time_s = time_s


class CheckpointError(IonspikeError, ValueError):
    """A training checkpoint that cannot be read or does not belong to the run resuming it."""
