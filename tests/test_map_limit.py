"""The guard that keeps a process under the kernel's limit on memory mappings (ionspike.map_limit)."""

import subprocess
import sys
import textwrap

import pytest

from ionspike import map_limit
from ionspike.errors import ParameterError

linux_only = pytest.mark.skipif(map_limit.mapping_count() is None, reason="needs /proc/self/maps (Linux)")


@linux_only
def test_compiled_programs_hold_mappings_and_the_guard_releases_them_only_past_its_threshold():
    # a fresh process (this worker's caches are the suite's business): 300 distinct jitted programs
    # each keep mappings of their own; the guard leaves them below its threshold, clears them above it
    script = textwrap.dedent("""
        import json, warnings
        import jax, jax.numpy as jnp
        from ionspike import map_limit
        start = map_limit.mapping_count()
        keep = [jax.jit(lambda x, i=i: jnp.sin(x) * i + jnp.exp(x)) for i in range(300)]
        for f in keep:
            f(jnp.ones(8)).block_until_ready()
        held = map_limit.mapping_count()
        limit = map_limit.mapping_limit()
        below = map_limit.release_if_near_limit(min(1.0, (held + 50) / limit))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            above = map_limit.release_if_near_limit((held - 50) / limit)
            after = map_limit.mapping_count()
            # what outlived the clearing is not JAX's to free: no second clearing until new programs
            # add an eighth of the limit
            again_at_once = map_limit.release_if_near_limit(after / limit / 2)
        again = [float(f(jnp.ones(8))[0]) for f in keep[:3]]    # the programs compile again
        print(json.dumps(dict(start=start, held=held, after=after, below=below, above=above, again=again,
                              again_at_once=again_at_once,
                              warnings=[str(w.message) for w in caught if w.category is RuntimeWarning])))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    import json

    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["held"] - r["start"] > 300                 # more than one mapping per compiled program
    assert r["below"] is False and r["above"] is True and r["again_at_once"] is False
    assert r["after"] < r["start"] + 0.2 * (r["held"] - r["start"])     # most of them released
    assert len(r["warnings"]) == 1 and "vm.max_map_count" in r["warnings"][0]
    e, sin1 = 2.718281828, 0.841470985                  # the recompiled programs still compute sin(1) i + e
    assert r["again"] == pytest.approx([e, sin1 + e, 2 * sin1 + e], rel=1e-6)


def test_the_guard_refuses_a_fraction_outside_0_1():
    for bad in (0, -0.5, 1.5, float("nan"), True, "half"):
        with pytest.raises(ParameterError, match=r"fraction = .* is out of range: allowed a number in \(0, 1\]"):
            map_limit.release_if_near_limit(bad)


def test_simulate_checks_the_count_when_it_compiles_a_new_program_only(monkeypatch):
    import ionspike as isp

    calls = []
    monkeypatch.setattr(map_limit, "release_if_near_limit", lambda *a, **k: calls.append(1) or False)
    pulses = isp.PulseTrain(amplitude=1.0, width=1e-3, period=2e-3)
    run = lambda: isp.simulate("paper", pulses, duration="3.71 ms", n=3, seed=1, signals=())   # noqa: E731
    run()
    assert calls == [1]          # a run length no other test uses: a new program, checked once
    run()
    assert calls == [1]          # the same program again: no check (reading the count costs milliseconds)


def test_the_guard_follows_what_outlived_a_clearing(monkeypatch):
    """The count that outlived a clearing (mappings that are not JAX's) sets when to clear again: an
    eighth of the limit above it, lowered when those mappings go, and never later than 15/16 of the
    limit (counts scripted; the limit 1000)."""
    import jax

    counts = iter([800, 700,        # past 3/4: cleared, 700 outlived it
                   790,             # under 700 + 125: no clearing
                   500,             # the others have gone: the mark falls to 500 ...
                   760, 900,        # ... so past 3/4 clears again (825 would not), 900 outlive it
                   940, 920])       # 900 + 125 is past the limit: cleared at 15/16 (937.5) all the same
    monkeypatch.setattr(map_limit, "mapping_count", lambda: next(counts))
    monkeypatch.setattr(map_limit, "mapping_limit", lambda: 1000)
    monkeypatch.setattr(map_limit, "_left_after_clearing", [None])
    cleared = []
    monkeypatch.setattr(jax, "clear_caches", lambda: cleared.append(1))
    got = [map_limit.release_if_near_limit(0.75, warn=False) for _ in range(5)]
    assert got == [True, False, False, True, True] and len(cleared) == 3
