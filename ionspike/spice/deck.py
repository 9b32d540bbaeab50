"""What may reach an ngspice deck: numbers, one-line comments and the writer's own lines.

ngspice runs commands from a deck: a ``.control`` ... ``.endc`` block (``shell`` runs any
program), a ``*#`` comment line (taken as a control line), a first line ``*ng_script``, and
it reads other files through ``.include`` / ``.lib``. So every string that goes into a deck
passes through here:

* :func:`number` writes a finite number (never text);
* :func:`comment` makes any text (a preset name, a title, a path) one ``* `` comment line of
  printable characters;
* :func:`check` is the last guard before a deck is written or run: every line must be one the
  netlist writer produces (:data:`VOCABULARY`), a comment line must start with ``"* "``, and
  no non-comment line may name ``.control``, ``.endc``, ``shell``, ``.include``, ``.lib`` or
  ``.exec``. A deck that fails is refused (:class:`SpiceError`), never repaired.
"""

from __future__ import annotations

import math
import re

from ionspike.errors import IonspikeError

COMMENT_MAX_CHARS = 200      # longer comment text is cut (with an ellipsis)
HEADER = "* ionspike"          # the first line of every deck the writer produces
FORBIDDEN = (".control", ".endc", "shell", ".include", ".lib", ".exec")
SUBCKT = "neuron1m1t1r"


class SpiceError(IonspikeError, ValueError):
    """Something that cannot be expressed in (or is not allowed into) an ngspice netlist."""


def number(x: float) -> str:
    """``x`` as an ngspice number (10 significant digits); refuses NaN and infinities."""
    value = float(x)
    if not math.isfinite(value):
        raise SpiceError(f"a netlist value is {value!r}: only finite numbers can be written to a netlist")
    return f"{value:.10g}"


def comment(text: object, *, limit: int = COMMENT_MAX_CHARS) -> str:
    """``text`` as one deck comment line ``"* ..."``.

    Keeps printable characters only (a newline, carriage return, tab, U+0085, U+2028, U+2029
    or any other control or separator becomes a space), collapses runs of spaces and cuts the
    text to ``limit`` characters.
    """
    kept = "".join(ch if ch.isprintable() else " " for ch in str(text))
    kept = " ".join(kept.split())
    if len(kept) > limit:
        kept = kept[: limit - 1] + "…"
    return f"* {kept}" if kept else "*"


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NAME = r"[a-z][a-z0-9_]*"
#: Every non-comment line the netlist writer produces, as full-match patterns (ASCII only).
VOCABULARY = tuple(re.compile(p, re.ASCII) for p in (
    r"",
    rf"\.param(?: {_NAME}={_NUM})+",
    rf"\+(?: {_NAME}={_NUM})+",
    r"\.func xb\(a,b\) \{min\(max\(a\+b,0\),1\)\}",
    rf"\.model nch nmos level=1 vto={_NUM} kp={_NUM} lambda={_NUM}",
    rf"\.subckt {SUBCKT} in vdd g d mu={_NUM}",
    rf"\.ends {SUBCKT}",
    rf"\.tran(?: {_NUM}){{2,4}}(?: uic)?",
    rf"\.options reltol={_NUM}",
    r"\.save(?: v\([a-z0-9_.]+\))+",
    r"\.end",
    # element lines: capacitor, behavioural source, resistor, MOSFET, voltage source, subcircuit;
    # expressions of numbers, names, v(node), + - * / ^ , ( ) { } < > = and spaces only
    r"[BCMRVX][A-Za-z0-9_]* [A-Za-z0-9_ .,(){}*/+\-^=<>]*",
))


def _is_comment(line: str) -> bool:
    return line == "*" or (line.startswith("* ") and line.isprintable())


def check(text: str) -> str:
    """Return ``text`` if it is a deck of the writer's vocabulary; otherwise raise :class:`SpiceError`.

    Lines are split on ``"\\n"`` only, so a carriage return or any other separator inside a
    line makes that line fail (ngspice and editors may split there).
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    if not lines or not _is_comment(lines[0]):
        raise SpiceError("the netlist must start with a '* ' comment line (ngspice takes the first line as the title)")
    for number_, line in enumerate(lines, start=1):
        if _is_comment(line):
            continue
        lowered = line.lower()
        word = next((w for w in FORBIDDEN if w in lowered), None)
        if word is not None:
            raise SpiceError(f"netlist line {number_} contains {word!r} ({_show(line)}): refused, ngspice would run or "
                             "read something outside the neuron")
        if not any(p.fullmatch(line) for p in VOCABULARY):
            raise SpiceError(f"netlist line {number_} ({_show(line)}) is not a line ionspike writes: refused "
                             "(only comments, the neuron's elements, parameters and the analysis may reach ngspice)")
    return text


def written_by_ionspike(path) -> bool:
    """Whether the file at ``path`` starts like a deck ionspike wrote (so it may be replaced)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(HEADER)) == HEADER.encode()
    except OSError:
        return False


def _show(line: str, limit: int = 80) -> str:
    shown = repr(line)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
