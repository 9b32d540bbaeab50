"""Render the parameter tables of docs/model.md §4 from the code, or check that they are current.

    python docs/tables.py            # rewrite the generated blocks of docs/model.md in place
    python docs/tables.py --check    # exit 1 (and name the block) if a block is out of date

Values come from the built-in preset files (``ionspike.presets``), units and allowed ranges
from the field metadata of ``ionspike.params``. Meanings, symbols and sources are written here,
because the code does not hold them; a preset that overrides a field with no source below makes
the script fail, so a changed preset file cannot leave the tables silently stale.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import tomllib
from importlib import resources
from pathlib import Path

from ionspike import presets
from ionspike.params import ALIASES, EKV, Circuit, Memristor, Noise, SquareLaw

MODEL_MD = Path(__file__).with_name("model.md")
PRESET_ORDER = ("paper", "stochastic", "si-exact", "65nm", "3nm", "paper-fit")
RECORDS = (("memristor", Memristor), ("transistor", EKV), ("transistor", SquareLaw), ("circuit", Circuit),
           ("noise", Noise))

SYMBOLS = {
    "memristor.mu": "μ", "memristor.v_h": "V_h", "memristor.alpha": "α", "memristor.beta": "β",
    "memristor.gamma1": "γ₁", "memristor.gamma2": "γ₂", "memristor.lam": "λ", "memristor.r_on": "R_on",
    "memristor.r_off": "R_off", "memristor.v_h_reverse_shift": "ΔV_h,rev", "memristor.mu_reverse_factor": "k_rev",
    "memristor.polarity": "–",
    "transistor.v_t0": "V_T0", "transistor.n": "n", "transistor.beta": "β_T", "transistor.lambda_clm": "λ_clm",
    "transistor.temperature": "T", "transistor.v_t": "V_T", "transistor.k": "K",
    "circuit.c_g": "C_g", "circuit.r_c": "R_c", "circuit.r_l": "R_l", "circuit.v_dd": "V_DD", "circuit.c_l": "C_l",
    "noise.n_eff": "N_eff", "noise.sigma_d2d_ln_mu": "σ_d2d", "noise.sigma_c2c_ln_mu": "σ_c2c",
}

MEANINGS = {
    "memristor.mu": "filament growth rate per volt of drive above the onset (§3.2)",
    "memristor.v_h": "drift-onset voltage: no growth below it (§3.2)",
    "memristor.alpha": "gap regulariser: the growth's field factor is 1/(α + \\|1 − x\\|) (§3.2)",
    "memristor.beta": "filament-to-residue transfer rate (§3.4)",
    "memristor.gamma1": "filament dissolution rate (§3.4)",
    "memristor.gamma2": "residue decay rate (§3.4)",
    "memristor.lam": "steepness of the resistance law (§3.5)",
    "memristor.r_on": "resistance of the bridged device (§3.5)",
    "memristor.r_off": "resistance with no Ag in the gap (§3.5); must exceed R_on",
    "memristor.v_h_reverse_shift": "symmetric device: onset for negative V_m is V_h + ΔV_h,rev (§3.3); 0 if asymmetric",
    "memristor.mu_reverse_factor": "symmetric device: growth rate for negative V_m is k_rev μ (§3.3); 1 if asymmetric",
    "memristor.polarity": "`asymmetric` (only V_m > 0 grows the filament) or `symmetric` (§3.3)",
    "transistor.v_t0": "EKV threshold voltage; the output spike threshold V_T (§3.7, §3.11)",
    "transistor.n": "EKV subthreshold slope factor",
    "transistor.beta": "EKV transfer parameter μC_ox W/L; strong-inversion K = β_T/(2n)",
    "transistor.lambda_clm": "channel-length modulation (both transistor models)",
    "transistor.temperature": "EKV temperature (sets U_T = k_B T/q)",
    "transistor.v_t": "square-law threshold voltage; the output spike threshold V_T",
    "transistor.k": "square-law factor K = kp/2: I_D = K (V_g − V_T)² in saturation",
    "circuit.c_g": "gate capacitance = membrane capacitance (§2.1)",
    "circuit.r_c": "control resistor, gate to ground: leak of V_g, refractory period (§2.1)",
    "circuit.r_l": "drain load resistor (§3.8)",
    "circuit.v_dd": "drain supply (§3.8)",
    "circuit.c_l": "drain load capacitance; 0 = quasi-static drain (§3.8)",
    "noise.n_eff": "effective number of Ag quanta of the chemical-Langevin noise; inf = none (§3.4)",
    "noise.sigma_d2d_ln_mu": "device-to-device standard deviation of ln μ, drawn once per neuron (§3.10)",
    "noise.sigma_c2c_ln_mu": "cycle-to-cycle standard deviation of ln μ, redrawn at every DM turn-on (§3.10)",
}

# where each preset's value comes from (tags of docs/model.md §1.2); derived presets list only
# the fields their file overrides, everything else is "as paper"
SOURCES = {
    "paper": {
        "memristor.mu": "[ionspike] fit to the [paper]'s Fig. 2e and 4d with V_h (SI Table 1: 150)",
        "memristor.v_h": "[ionspike] drift onset; removes the latch of the SI model (§3.2)",
        "memristor.alpha": "[SI] Table 1",
        "memristor.beta": "[SI] Table 1",
        "memristor.gamma1": "[SI] Table 1 (1/γ₁ ≈ 1.7 ms)",
        "memristor.gamma2": "[SI] Table 1 (1/γ₂ = 200 ms)",
        "memristor.lam": "[SI] Table 1",
        "memristor.r_on": "[SI] Table 1",
        "memristor.r_off": "[SI] Table 1 (measured HRS ≈ 0.7 TΩ)",
        "memristor.v_h_reverse_shift": "[ionspike] default (asymmetric device)",
        "memristor.mu_reverse_factor": "[ionspike] default (asymmetric device)",
        "memristor.polarity": "[SI] asymmetric diffusive memristor",
        "transistor.v_t0": "[SI] square law V_T = 0.22 V (datasheet: 0.20 V [lit])",
        "transistor.n": "[ionspike] assumed",
        "transistor.beta": "[ionspike] 2nK with [SI] K = 3.75×10⁻⁴ A/V²",
        "transistor.lambda_clm": "[ionspike] assumed",
        "transistor.temperature": "[ionspike] room temperature",
        "circuit.c_g": "[SI] Table 1",
        "circuit.r_c": "[SI] Table 1; the [paper] sweeps 50 MΩ–1 GΩ",
        "circuit.r_l": "[paper] measurement load",
        "circuit.v_dd": "[paper] Fig. 1l",
        "circuit.c_l": "[SI] Table 7",
        "noise.n_eff": "[ionspike] chemical-Langevin noise",
        "noise.sigma_d2d_ln_mu": "[ionspike] off",
        "noise.sigma_c2c_ln_mu": "[ionspike] off",
    },
    "stochastic": {
        "memristor.v_h": "[ionspike] grid search against the [paper]'s Fig. 3c,d",
        "noise.n_eff": "[ionspike] same grid search",
        "noise.sigma_c2c_ln_mu": "[ionspike] same grid search (trials of one device)",
    },
    "si-exact": {
        "memristor.mu": "[SI] Table 1",
        "memristor.v_h": "[SI] Note 4 has no onset",
        "noise.n_eff": "[ionspike] deterministic regression target",
    },
    "65nm": {
        "memristor.mu": "[ionspike] so that 0.45 V inputs fire (SI Table 7: 300)",
        "memristor.v_h": "[ionspike] onset near V_in − V_T for 0.45 V inputs",
        "circuit.r_c": "[SI] Table 7",
        "circuit.r_l": "[SI] Table 7",
        "circuit.c_l": "[SI] Table 7",
        "circuit.v_dd": "[ionspike] (not given in Table 7)",
    },
    "paper-fit": {
        "memristor.mu": "[ionspike] ionspike design, targets/paper.toml, paper-refine.toml, paper-ip.toml, paper-ip2.toml (§11.4)",
        "memristor.v_h": "[ionspike] ionspike design (§11.4)",
        "memristor.beta": "[ionspike] ionspike design (§11.4)",
        "memristor.gamma1": "[ionspike] ionspike design (§11.4)",
        "memristor.gamma2": "[ionspike] ionspike design (§11.4)",
        "noise.n_eff": "[ionspike] ionspike design (§11.4)",
        "noise.sigma_c2c_ln_mu": "[ionspike] ionspike design (§11.4)",
    },
    "3nm": {
        "memristor.mu": "[ionspike] paper's μ × 10⁵ (SI Table 8: 3×10⁷ = Table 7's × 10⁵)",
        "memristor.beta": "[SI] Table 8",
        "memristor.gamma1": "[SI] Table 8",
        "memristor.gamma2": "[SI] Table 8",
        "memristor.r_on": "[SI] Table 8",
        "memristor.r_off": "[SI] Table 8",
        "circuit.c_g": "[SI] Table 8 (3 nm FinFET gate)",
        "circuit.r_c": "[SI] Table 8 (R_c C_g = 1 µs)",
        "circuit.r_l": "[SI] Table 8",
        "circuit.c_l": "[SI] Table 8",
    },
}

UNIT_TEXT = {"": "–", "1/(s*V)": "s⁻¹V⁻¹", "1/s": "s⁻¹", "1/V": "V⁻¹", "ohm": "Ω", "A/V^2": "A/V²", "V": "V",
             "F": "F", "K": "K"}
PREFIXES = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"),
            (1e-12, "p"), (1e-15, "f"), (1e-18, "a")]


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def number(x: float) -> str:
    """4 significant digits; powers of ten outside [1e-3, 1e5) as ``3×10⁷``."""
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        exp = math.floor(math.log10(abs(x)))
        mant = f"{x / 10**exp:.4g}"
        power = "10" + str(exp).translate(SUPERSCRIPT)
        return power if mant == "1" else f"{mant}×{power}"
    return f"{x:.4g}".replace("-", "−")


def quantity(x: float, unit: str) -> str:
    """A value with an engineering prefix for F and Ω (volts stay in V, as the presets write them)."""
    text = UNIT_TEXT[unit]
    if unit in ("F", "ohm") and x != 0 and math.isfinite(x):
        for scale, prefix in PREFIXES:
            if abs(x) >= scale * 0.9999999:
                if scale == 1e12 and abs(x) >= 1e15:
                    break
                return f"{number(x / scale)} {prefix}{text}"
    return number(x) if unit == "" else f"{number(x)} {text}"


def allowed(meta: dict) -> str:
    lo = "(" if meta["lo_open"] else "["
    hi = ")" if meta["hi_open"] else "]"
    unit = UNIT_TEXT[meta["unit"]]
    top = "∞" if math.isinf(meta["hi"]) else number(meta["hi"])
    return f"{lo}{number(meta['lo'])}, {top}{hi}" + ("" if unit == "–" else f" {unit}")


def fields():
    """(dotted name, record class, field) for every parameter, transistor models apart."""
    for section, cls in RECORDS:
        for f in dataclasses.fields(cls):
            yield f"{section}.{f.name}", cls, f


def aliases(dotted: str) -> str:
    names = [a for a, path in ALIASES.items() if path == dotted]
    if dotted in ("transistor.v_t0", "transistor.v_t"):
        names += [a for a, path in ALIASES.items() if path == "transistor.threshold"]
    return ", ".join(f"`{a}`" for a in names)


def reference_block() -> str:
    out = []
    for section, cls in RECORDS:
        model = {EKV: '`model = "ekv"`, ', SquareLaw: '`model = "square"`, '}.get(cls, "")
        out += [f"**[{section}]** ({model}`ionspike.params.{cls.__name__}`)", "",
                "| field | symbol | unit | allowed | also accepted as | meaning |", "|---|---|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            dotted = f"{section}.{f.name}"
            if f.metadata:
                unit, rng = UNIT_TEXT[f.metadata["unit"]], allowed(f.metadata)
            else:
                unit, rng = "–", "`asymmetric`, `symmetric`"
            out.append(f"| `{f.name}` | {SYMBOLS[dotted]} | {unit} | {rng} | {aliases(dotted)} | {MEANINGS[dotted]} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def value_of(params, dotted: str):
    section, name = dotted.split(".")
    record = getattr(params, section)
    if not hasattr(record, name):
        return None
    return getattr(record, name)


def show(value, cls, name: str) -> str:
    if value is None:
        return "·"
    if isinstance(value, str):
        return f"`{value}`"
    return quantity(float(value), {f.name: f for f in dataclasses.fields(cls)}[name].metadata["unit"])


def overridden(name: str) -> set[str]:
    """Dotted fields a built-in preset file sets itself."""
    raw = tomllib.loads((resources.files("ionspike") / "presets" / f"{name}.toml").read_text())
    return {f"{section}.{k}" for section, body in raw.items() if isinstance(body, dict) and section != "defaults"
            for k in body if k != "model"}


def matrix_block() -> str:
    loaded = {n: presets.load(n) for n in PRESET_ORDER}
    missing = sorted(set(presets.names()) - set(PRESET_ORDER))
    if missing:
        raise SystemExit(f"docs/tables.py: built-in preset(s) {missing} are not documented; add them to PRESET_ORDER")
    out = ["| parameter | " + " | ".join(f"`{n}`" for n in PRESET_ORDER) + " |",
           "|---|" + "---|" * len(PRESET_ORDER)]
    for dotted, cls, f in fields():
        section = dotted.split(".")[0]
        vals = [value_of(loaded[n].params, dotted) if isinstance(getattr(loaded[n].params, section), cls) else None
                for n in PRESET_ORDER]
        if all(v is None for v in vals):
            continue
        cells = []
        for n, v in zip(PRESET_ORDER, vals):
            text = show(v, cls, f.name)
            cells.append(f"**{text}**" if n != "paper" and dotted in overridden(n) else text)
        out.append(f"| {SYMBOLS[dotted]} `{dotted}` | " + " | ".join(cells) + " |")
    out.append("| time step `dt` | " + " | ".join(_time(loaded[n].dt) for n in PRESET_ORDER) + " |")
    for key in ("pulse", "dc", "duration"):
        out.append(f"| default `{key}` | " + " | ".join(loaded[n].defaults.get(key, "·") for n in PRESET_ORDER) + " |")
    return "\n".join(out) + "\n"


def _time(seconds: float) -> str:
    for scale, prefix in PREFIXES:
        if seconds >= scale * 0.9999999:
            return f"{number(seconds / scale)} {prefix}s"
    return f"{number(seconds)} s"


def sources_block(name: str) -> str:
    pre = presets.load(name)
    table = SOURCES[name]
    listed = [d for d, _, _ in fields() if d in table] if name == "paper" else sorted(overridden(name))
    unknown = [d for d in listed if d not in table]
    if unknown:
        raise SystemExit(f"docs/tables.py: preset {name!r} sets {unknown} with no source in SOURCES; add one")
    out = ["| parameter | value | source |", "|---|---|---|"]
    for dotted, cls, f in fields():
        if dotted not in listed:
            continue
        section = dotted.split(".")[0]
        if section == "transistor" and not isinstance(pre.params.transistor, cls):
            continue
        out.append(f"| {SYMBOLS[dotted]} `{dotted}` | {show(value_of(pre.params, dotted), cls, f.name)} | {table[dotted]} |")
    return "\n".join(out) + "\n"


def blocks() -> dict[str, str]:
    out = {"reference": reference_block(), "presets": matrix_block()}
    for name in PRESET_ORDER:
        out[f"sources-{name}"] = sources_block(name)
    return out


BLOCK = re.compile(r"(<!-- generated:(?P<name>[\w-]+) \(python docs/tables.py\) -->\n)(?P<body>.*?)(<!-- end:(?P=name) -->)",
                   re.S)


def render(text: str) -> tuple[str, list[str]]:
    """The text with every generated block replaced; the names of blocks that changed."""
    new_blocks, changed, seen = blocks(), [], set()

    def sub(m):
        name = m.group("name")
        seen.add(name)
        if name not in new_blocks:
            raise SystemExit(f"docs/tables.py: unknown block {name!r} in {MODEL_MD}")
        if m.group("body") != new_blocks[name]:
            changed.append(name)
        return m.group(1) + new_blocks[name] + m.group(4)

    result = BLOCK.sub(sub, text)
    absent = sorted(set(new_blocks) - seen)
    if absent:
        raise SystemExit(f"docs/tables.py: {MODEL_MD} lacks the block(s) {absent}")
    return result, changed


def main(argv: list[str]) -> int:
    text = MODEL_MD.read_text(encoding="utf-8")
    result, changed = render(text)
    if "--check" in argv:
        if changed:
            print(f"docs/model.md: generated tables out of date: {', '.join(changed)}; run python docs/tables.py")
            return 1
        print("docs/model.md: generated tables are current")
        return 0
    if changed:
        MODEL_MD.write_text(result, encoding="utf-8")
    print(f"docs/model.md: {'rewrote ' + ', '.join(changed) if changed else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
