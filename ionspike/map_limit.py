"""Keep a long-lived process under the kernel's limit on memory mappings.

Every program XLA:CPU compiles is loaded kernel by kernel, each kernel in mappings of its own
(measured: ~620 mappings for one fixed-step `simulate` program, ~3 for a tiny jitted function), and
the mappings live as long as JAX's caches hold the program. Linux refuses new mappings past
``vm.max_map_count`` (65 530 by default), and XLA does not survive the refusal: the process dies with
SIGSEGV or SIGABRT inside a compile or a (de)serialisation. A process that compiles many distinct
programs (a notebook trying many shapes, a test worker, a Dask worker serving many kinds of task) can
get there. :func:`release_if_near_limit` drops JAX's compiled programs when the count nears the limit:
later calls recompile (or read the persistent compilation cache) instead of crashing.

Only Linux exposes the count (``/proc/self/maps``); elsewhere the check does nothing.
"""

from __future__ import annotations

import gc
import threading
import warnings

from ionspike.errors import ParameterError

DEFAULT_LIMIT = 65530      # Linux's default vm.max_map_count
_left_after_clearing: list = [None]   # mappings that outlived the last clearing (None: none yet)
_lock = threading.Lock()              # one check-and-clear at a time (threads of a notebook or a Dask worker)


def mapping_count() -> int | None:
    """Number of memory mappings of this process, or None where ``/proc/self/maps`` is absent."""
    try:
        with open("/proc/self/maps", "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return None


def mapping_limit() -> int:
    """The kernel's per-process limit on memory mappings (``vm.max_map_count``)."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):
        return DEFAULT_LIMIT


def release_if_near_limit(fraction: float = 0.75, *, warn: bool = True) -> bool:
    """Clear JAX's caches of compiled programs if this process holds more than ``fraction`` of the
    mappings the kernel allows; return whether it did.

    ``fraction`` in (0, 1]. The default leaves a quarter of the limit (~16 000 mappings, some 25
    simulation programs) for the compile that follows. With ``warn`` a RuntimeWarning names the
    counts, since every jitted function of the process, the caller's included, recompiles on its next
    call."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ParameterError(f"fraction = {fraction!r} is out of range: allowed a number in (0, 1]")
    with _lock:
        count = mapping_count()
        if count is None:
            return False
        limit = mapping_limit()
        left = _left_after_clearing[0]
        if left is not None and count < left:    # what outlived the last clearing has gone since
            left = _left_after_clearing[0] = count
        # mappings that are not JAX's (memory-mapped arrays, other libraries) survive a clearing: clear
        # again only once new programs have added an eighth of the limit, not on every call; never
        # later than at 15/16 of the limit, where a compile may already fail
        floor = fraction * limit if left is None else min(max(fraction * limit, left + limit / 8), 15 * limit / 16)
        if count <= floor:
            return False
        import jax

        jax.clear_caches()
        gc.collect()
        after = mapping_count() or 0
        _left_after_clearing[0] = after
    if warn:
        whose = ("mostly compiled XLA programs" if after < 0.5 * count else
                 "most of them not JAX's: clearing its caches freed few")
        warnings.warn(f"this process held {count} memory mappings of the {limit} the kernel allows "
                      f"(vm.max_map_count), {whose}; ionspike cleared JAX's compiled-program caches "
                      f"({after} mappings now) so that a compile cannot crash the process. Programs compile "
                      "again on their next call.", RuntimeWarning, stacklevel=3)
    return True
