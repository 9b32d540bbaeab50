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
import warnings

from ionspike.errors import ParameterError

DEFAULT_LIMIT = 65530      # Linux's default vm.max_map_count


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
        raise ParameterError(f"fraction = {fraction!r}: allowed a number in (0, 1]")
    count = mapping_count()
    limit = mapping_limit()
    if count is None or count <= fraction * limit:
        return False
    import jax

    jax.clear_caches()
    gc.collect()
    if warn:
        after = mapping_count()
        warnings.warn(f"this process held {count} memory mappings of the {limit} the kernel allows "
                      f"(vm.max_map_count), mostly compiled XLA programs; ionspike cleared JAX's compiled-"
                      f"program caches ({after} mappings now) so the next compile cannot crash the process. "
                      "Programs compile again on their next call.", RuntimeWarning, stacklevel=3)
    return True
