"""Recurrent spiking networks of 1M1T1R neurons (issue 6, in progress): the offline tasks and a
first bin-stepped neuron layer (:mod:`ionspike.network.neuron`, see its status note) and a first
BPTT-trained RSNN (:mod:`ionspike.network.rsnn`)."""

from ionspike.network.tasks import TASKS, Task, digits, load, mnist1d, working_memory

__all__ = ["TASKS", "Task", "digits", "load", "mnist1d", "working_memory"]
