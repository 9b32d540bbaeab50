"""The study's report as one self-contained HTML page (figures embedded as data URIs, data
files linked relatively), drawn from ``summary.json`` and the stages' saved figures."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ionspike.io import atomic_write

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.7em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.pass{color:#1a7f37;font-weight:600}.fail{color:#c62828;font-weight:600}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}code,pre{background:#f6f8fa;padding:.1em .3em}
pre{padding:.8em;overflow-x:auto}nav a{margin-right:1em}
"""

SI = [(1e-18, "aJ"), (1e-15, "fJ"), (1e-12, "pJ"), (1e-9, "nJ"), (1e-6, "µJ"), (1e-3, "mJ"), (1.0, "J")]


def _e(x) -> str:
    return html.escape(str(x))


def energy(j) -> str:
    """An energy in J with an SI prefix from aJ to J."""
    if j is None:
        return "–"
    for scale, unit in SI:
        if abs(j) < scale * 1000 or unit == "J":
            return f"{j / scale:.3g} {unit}"
    return f"{j:.3g} J"


def _num(x, unit="") -> str:
    if x is None:
        return "–"
    if isinstance(x, (list, tuple)):
        return ", ".join(_num(v) for v in x)
    if isinstance(x, str):
        return _e(x)
    if unit == "J":
        return energy(x)
    if unit == "s":
        return f"{x * 1e3:.3g} ms"
    return f"{x:.3g}"


def _img(path: Path, alt: str) -> str:
    if not path.exists():
        return f"<p><em>missing figure {_e(path.name)}</em></p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}"><figcaption>{_e(alt)}</figcaption></figure>'


def _link(folder: Path, rel: str, text: str | None = None, prefix: str = "") -> str:
    """A link to ``folder/rel`` written relative to the report root as ``prefix + rel`` (empty if absent)."""
    return f'<a href="{_e(prefix + rel)}">{_e(text or rel)}</a>' if (folder / rel).exists() else ""


def _published(stage: dict) -> str:
    rows = "".join(
        f"<tr><td class=l>{_e(r.get('quantity', r.get('name')))}</td><td>{_num(r['paper'], r['unit'])}</td><td>{_num(r['ours'], r['unit'])}</td>"
        f"<td>{_e(r['tolerance'])}</td><td class={'pass' if r['pass'] else 'fail'}>{'pass' if r['pass'] else 'FAIL'}</td>"
        f"<td class=l>{_e(r['note'])}</td></tr>" for r in stage["rows"])
    return (f"<p>{stage['passed']} of {stage['total']} published numbers (docs/model.md §5.1) within their "
            "stated tolerance; misses stay listed.</p><table><tr><th class=l>quantity</th><th>paper</th><th>ours</th>"
            f"<th>tolerance</th><th>result</th><th class=l>note</th></tr>{rows}</table>")


def _published_fit(stage: dict | None) -> str:
    if not stage:
        return ""
    if stage.get("skipped"):
        return f"<h3>paper-fit preset</h3><p>{_e(stage['note'])}</p>"
    return (f"<h3>paper-fit preset</h3><p>The preset fitted by <code>ionspike design</code> to the published numbers "
            f"(docs/model.md §11.4).</p>{_published(stage)}")


def _energy_table(chars: dict) -> str:
    en = chars["metrics"]["energy"]
    names = sorted(en["energy_per_spike_J"], key=lambda n: -(en["energy_per_spike_J"][n] or 0))
    rows = "".join(f"<tr><td class=l>{_e(n)}</td><td>{energy(en['energy_per_spike_J'][n])}</td>"
                   f"<td>{energy(en['output_stage_energy_per_spike_J'][n])}</td><td>{energy(en['total_energy_per_spike_J'][n])}</td>"
                   f"<td>{en['c_g_F'][n]:.3g} F</td></tr>" for n in names)
    return ("<table><tr><th class=l>preset</th><th>neuron (input) per spike</th><th>output stage per spike</th>"
            f"<th>total per spike</th><th>C_g</th></tr>{rows}</table>"
            f"<p>Paper: ≈{energy(en['paper_65nm_J'])} (65 nm) and ≈{energy(en['paper_3nm_J'])} (3 nm projection).</p>")


def _interval(ci) -> str:
    return "" if not ci or ci[0] is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def _ablation(root: Path, stage: dict) -> str:
    parts = [f"<p>Settings: <code>{_e(json.dumps(stage['settings']))}</code>, {stage['seeds']} seeds per variant; "
             f"synapse read energy {energy(stage['read_energy_J'])}. {_e(stage.get('statistics', ''))}.</p>"]
    for task, table in stage["table"].items():
        presets = list(dict.fromkeys(p for s in table.values() for p in s["energy_J"]))   # as the study saved them
        rows = "".join(
            f"<tr><td class=l>{_e(v)}</td><td>{s['accuracy_mean']:.3f}{_interval(s.get('accuracy_ci95'))}</td>"
            f"<td>{_num(s['delta_vs_full'])}</td><td>{_num(s['p_value_vs_full'])}</td>"
            f"<td>{_num(s.get('p_holm_vs_full'))}</td><td>{s['firing_rate_per_bin']:.4f}</td>"
            f"<td>{s['spikes_per_sample']:.1f}</td>"
            + "".join(f"<td>{energy(s['energy_J'].get(p))}</td>" for p in presets)
            + f"<td class=l>{_e(s['note'])}</td></tr>" for v, s in table.items())
        heads = "".join(f"<th>energy/inference, {_e(p)}</th>" for p in presets)
        parts.append(f"<h3>{_e(task)}</h3><table><tr><th class=l>variant</th><th>test accuracy [95 % interval]</th>"
                     f"<th>Δ vs full</th><th>p (Welch)</th><th>p (Holm)</th><th>spikes/bin/neuron</th><th>spikes/sample</th>{heads}<th class=l>note</th></tr>"
                     f"{rows}</table>")
    for f in stage["figures"]:
        parts.append(_img(root / f, f.replace("_", " ").removesuffix(".png")))
    prefix = "stages/ablation/"
    parts.append(f"<p>Data: {_link(root, stage['csv'], prefix=prefix)} · {_link(root, 'results.json', prefix=prefix)}</p>")
    return "".join(parts)


def _calibration(root: Path, stage: dict) -> str:
    if stage.get("skipped"):
        return f"<p><em>{_e(stage['note'])}</em></p>"
    parts = []
    for kind, fit in stage["fits"].items():
        ks = ", ".join(f"{k} {v:.3f}" for k, v in fit["ks"].items())
        fitted = ", ".join(f"{k} = {v:.4g}" for k, v in fit["fitted"].items() if isinstance(v, (int, float)))
        parts.append(f"<h3>{_e(kind)} ({_e(fit['file'])})</h3><p>KS distances: {_e(ks)}</p><p>Fitted: {_e(fitted)}</p>")
        verdict = fit.get("verdict")
        if verdict is not None:
            passed = verdict["passed"]
            checks = "".join(f"<li class={'pass' if c['passed'] else 'fail'}>{_e(c['text'])}</li>"
                             for c in verdict["checks"])
            notes = "".join(f"<li>{_e(n)}</li>" for n in fit.get("notes", []) + verdict.get("notes", []))
            parts.append(f"<p>Verdict: <span class={'pass' if passed else 'fail'}>{'passed' if passed else 'FAILED'}"
                         f"</span></p><ul>{checks}{notes}</ul>")
        parts += [_img(root / f, f) for f in fit["figures"]]
        prefix = "stages/calibration/"
        parts.append(f"<p>{_link(root, kind + '/preset.toml', prefix=prefix)} · {_link(root, kind + '/fit.json', prefix=prefix)}</p>")
    return "".join(parts)


def write_report(root: Path, summary: dict) -> Path:
    """Write ``root/index.html`` from ``summary`` and the figures under ``root/stages``."""
    root = Path(root)
    st = summary["stages"]
    d = {n: root / "stages" / n for n in st}
    chars = st["characteristics"]
    char_figs = "".join(_img(d["characteristics"] / f, f.removesuffix(".png").replace("_", " ")) for f in chars["figures"])
    char_data = " · ".join(_link(root, f"stages/characteristics/{f.removesuffix('.png')}.nc")
                           for f in chars["figures"] if f != "summary.png")
    env = summary["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ionspike report</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head><body>
<h1>ionspike: the 1M1T1R neuron study</h1>
<p>ionspike {_e(summary['ionspike_version'])}, --{_e(summary['mode'])} settings. Command:</p><pre>{_e(summary['command'])}</pre>
<nav><a href="#characteristics">characteristics</a><a href="#energy">energy</a><a href="#published">published vs ours</a>
<a href="#calibration">calibration</a><a href="#ablation">RSNN ablation</a><a href="#parameters">parameters</a></nav>
<h2 id="characteristics">The six characteristics (paper preset)</h2>{char_figs}<p>Data: {char_data}</p>
<h3>Stochastic threshold of the <code>stochastic</code> preset</h3>{_img(d['stochastic_preset'] / 'stochasticity.png', 'stochasticity, stochastic preset')}
<h2 id="energy">Energy per spike, pJ to aJ</h2>{_energy_table(chars)}
<h2 id="published">Published numbers against ours</h2>{_published(st['published'])}{_published_fit(st.get('published_fit'))}
<h2 id="calibration">Calibration on measured data</h2>{_calibration(d['calibration'], st['calibration'])}
<h2 id="ablation">RSNN of 1M1T1R neurons: ablation of each characteristic</h2>{_ablation(d['ablation'], st['ablation'])}
<h2 id="parameters">Parameters and versions</h2>
<p>Python {_e(env['python'])} on {_e(env['platform'])}, {env['cpu_count']} CPU cores; {_e(versions)}.</p>
<p>Presets used (SI units):</p><pre>{_e(json.dumps(summary['parameters'], indent=1))}</pre>
<p>All results as data: {_link(root, 'summary.json')}.</p></body></html>"""
    return atomic_write(root / "index.html", lambda p: p.write_text(body, encoding="utf-8"))
