"""Recurrent spiking networks of 1M1T1R neurons.

* :mod:`~ionspike.network.tasks`: offline temporal tasks (MNIST-1D, sequential digits, working memory);
* :mod:`~ionspike.network.neuron`: the 1M1T1R neuron stepped one input pulse (a *bin*) at a time with
  the circuit's laws, its noise, a spike and a designed surrogate gradient;
* :mod:`~ionspike.network.cells`: neuron models behind one interface (the device, LIF, ALIF);
* :mod:`~ionspike.network.rsnn`: the recurrent network and its readouts (leaky integrator, spike count);
* :mod:`~ionspike.network.train`: BPTT with a validation split, checkpoints and resume;
* :mod:`~ionspike.network.variants`, :mod:`~ionspike.network.ablate`: the ablation study;
* :mod:`~ionspike.network.robustness`: accuracy against device variability;
* :mod:`~ionspike.network.energy`: energy per inference.
"""

from ionspike.network.tasks import TASKS, Task, digits, load, mnist1d, working_memory

__all__ = ["TASKS", "Task", "digits", "load", "mnist1d", "working_memory"]
