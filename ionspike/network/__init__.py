"""Recurrent spiking networks of 1M1T1R neurons (issue 6, in progress): so far the offline tasks."""

from ionspike.network.tasks import TASKS, Task, digits, load, mnist1d, working_memory

__all__ = ["TASKS", "Task", "digits", "load", "mnist1d", "working_memory"]
