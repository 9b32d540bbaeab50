"""The 1M1T1R neuron as an ngspice netlist, run by the real ngspice, read back as a Dataset.

* :func:`netlist` writes the same circuit with the same parameters (behavioural sources for
  the memristor's F and R, a MOSFET model for the transistor, R_c, C_g, load, stimulus as
  PULSE/PWL sources), N copies with per-copy parameters for device spread.
* :func:`run` runs ``ngspice -b`` and returns the schema of :func:`ionspike.simulate`.
* :func:`validate` runs both engines on the same input and reports their agreement.
"""

from ionspike.spice.netlist import SpiceError, netlist
from ionspike.spice.run import NgspiceError, NgspiceMissing, run, validate

__all__ = ["netlist", "run", "validate", "SpiceError", "NgspiceError", "NgspiceMissing"]
