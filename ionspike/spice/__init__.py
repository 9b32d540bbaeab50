"""The 1M1T1R neuron as an ngspice netlist, run by the real ngspice, read back as a Dataset.

* :func:`netlist` writes the same circuit with the same parameters (behavioural sources for
  the memristor's F and R, a MOSFET model for the transistor, R_c, C_g, load, stimulus as
  PULSE/PWL sources), N copies with per-copy parameters for device spread.
* :func:`run` runs ``ngspice -b`` and returns the schema of :func:`ionspike.simulate`.
* :func:`validate` runs both engines on the same input and reports their agreement.
* :func:`exportable` is the export policy: the neuron ngspice can express and a note on what
  was dropped (the noise).

Every deck passes :func:`ionspike.spice.deck.check` (the writer's vocabulary only; strings
reach a deck only as one-line comments) before it is written or run.
"""

from ionspike.spice.deck import SpiceError
from ionspike.spice.netlist import exportable, netlist
from ionspike.spice.run import NgspiceError, NgspiceMissing, run, validate

__all__ = ["netlist", "exportable", "run", "validate", "SpiceError", "NgspiceError", "NgspiceMissing"]
