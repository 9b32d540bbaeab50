"""Command line: parse, call the public API, show progress. No physics here.

Every command runs under :func:`_guarded`: an ionspike error (bad input) ends in one clear line and
exit code 2, an unexpected one (a full disk, a library's error) in one line and exit code 1,
Ctrl-C in "interrupted" and exit code 130; never a traceback (``IONSPIKE_DEBUG=1`` re-raises).
Every command that writes a folder does so under :class:`ionspike.io.OutputFolder` (one output
policy: foreign folders refused unless ``--force``, atomic writes, no links followed, a failed
run's leftovers removed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ionspike.errors import IonspikeError, ParameterError

#: Defaults the commands share (one place; a preset's own ``defaults`` and ``dt`` come first).
DEFAULTS = {
    "preset": "paper",        # device preset of every command
    "duration": "300 ms",     # simulated time when the preset names none
    "dt": "2 us",             # time step when the preset names none
    "seed": 0,                # seed of every random draw
    "n": 1,                   # neurons simulated / copies exported
}
SEED_MAX = 2**63 - 1          # seeds are integers 0..SEED_MAX (JAX keys and NumPy generators take them all)
DEBUG_ENV = "IONSPIKE_DEBUG"  # set to 1: exceptions propagate with their traceback
EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130
FORCE_HELP = "Write into a non-empty folder that ionspike did not write (its files are kept unless overwritten)."

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="ionspike: simulate the 1M1T1R diffusive-memristor spiking neuron.")
err = Console(stderr=True, soft_wrap=True)


def _say(text: str) -> None:
    """Print plain text (never read as Rich markup: a name with ``[/]`` prints as it is)."""
    err.print(escape(text), highlight=False)


def _error(text: str) -> None:
    err.print(f"[bold red]error:[/] {escape(text)}", highlight=False)


def _one_line(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _guarded(*, resumable: bool = False):
    """Run a command so that it ends in a clear line and an exit code, never a traceback."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            import click

            try:
                return fn(*args, **kwargs)
            except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
                raise
            except BaseException as exc:  # every way out of a command goes through here
                if os.environ.get(DEBUG_ENV, "") not in ("", "0") or isinstance(exc, (SystemExit, GeneratorExit)):
                    raise
                if isinstance(exc, KeyboardInterrupt):
                    _say("interrupted; rerun the same command to resume" if resumable else "interrupted")
                    raise typer.Exit(EXIT_INTERRUPTED) from None
                if isinstance(exc, IonspikeError):
                    _error(str(exc))
                    raise typer.Exit(EXIT_BAD_INPUT) from None
                if isinstance(exc, FloatingPointError):      # training diverged (network.train): said as it is
                    _error(_one_line(exc))
                    raise typer.Exit(EXIT_FAILED) from None
                if isinstance(exc, OSError):
                    where = f" ({exc.filename!r})" if exc.filename else ""
                    _error(f"{exc.strerror or _one_line(exc)}{where}")
                elif isinstance(exc, MemoryError):
                    _error("out of memory: try fewer neurons (--n) or a shorter --duration")
                else:
                    _error(f"unexpected {type(exc).__name__}: {_one_line(exc)} (set {DEBUG_ENV}=1 to see the traceback)")
                raise typer.Exit(EXIT_FAILED) from None

        return run

    return wrap


@contextlib.contextmanager
def _option(name: str):
    """An ionspike error raised while reading option ``name`` names it (unless its message already does)."""
    try:
        yield
    except IonspikeError as exc:
        text = str(exc)
        if name not in text and name.lstrip("-").replace("-", "_") not in text:
            exc.args = (f"{name}: {text}", *exc.args[1:])
        raise


def _preset(preset: str, assignments: list[str]):
    """``--preset`` loaded, then the ``--set`` overrides applied (each option's errors name it)."""
    import ionspike as isp
    from ionspike.params import parse_assignments

    with _option("--preset"):
        p = isp.presets.load(preset)
    if assignments:
        with _option("--set"):
            p = dataclasses.replace(p, params=isp.replace(p.params, **parse_assignments(assignments)))
    return p


class _Progress(Progress):
    """rich's live bar on a terminal. Anywhere else (output redirected to a log file, a batch job,
    CI), where a live bar shows nothing until it ends, the bar is off and each task's progress is
    written as a plain line instead: its first update, then at most one line every
    :attr:`LOG_EVERY_S` seconds, and its last; so a run of hours logged to a file shows where it is."""

    LOG_EVERY_S = 30.0

    def __init__(self, *columns, console: Console, unit: str = ""):
        super().__init__(*columns, console=console, disable=not console.is_terminal)
        self.unit = unit
        self._last_line: dict = {}     # task id -> (monotonic time, text) of its last line

    def update(self, task_id, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._log(task_id)

    def advance(self, task_id, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log(task_id)

    def _log(self, task_id) -> None:
        if not self.disable:
            return
        task = self._tasks[task_id]
        if task.total == 1.0:            # a fraction
            amount = f"{100.0 * task.completed:.0f} %"
        else:
            amount = f"{task.completed:g}/{task.total:g}" + (f" {self.unit}" if self.unit else "")
        extra = "".join(f", {v}" for v in task.fields.values() if v not in (None, ""))
        text = f"{task.description.rstrip()}: {amount}{extra}"
        now = time.monotonic()
        last = self._last_line.get(task_id)
        if last is not None and (text == last[1] or (now - last[0] < self.LOG_EVERY_S and not task.finished)):
            return
        self._last_line[task_id] = (now, text)
        elapsed = int(task.elapsed or 0.0)
        self.console.print(f"{text} ({elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d} elapsed)",
                           highlight=False, emoji=False)   # descriptions arrive markup-escaped; no :codes: either


def _bar(*columns, unit: str = "") -> Progress:
    """A progress display (:class:`_Progress`); ``unit`` names what a task counts in the plain lines
    written when the output is not a terminal (tasks of total 1 are fractions, written in %)."""
    return _Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), *columns,
                     TimeElapsedColumn(), console=err, unit=unit)


def _dt(preset, dt: str | None) -> float:
    """The time step, s: ``--dt``, else the preset's, else :data:`DEFAULTS`."""
    from ionspike.units import parse_quantity

    if dt:
        return parse_quantity(dt, "s", name="--dt")
    return preset.dt or parse_quantity(DEFAULTS["dt"], "s", name="dt")


def _duration(preset, duration: str | None) -> float:
    """The simulated time, s: ``--duration``, else the preset's default, else :data:`DEFAULTS`."""
    from ionspike.units import parse_quantity

    return parse_quantity(duration or preset.defaults.get("duration", DEFAULTS["duration"]), "s", name="--duration")


def _positive(text: str | None, unit: str, option: str) -> float | None:
    """Option ``text`` as a finite quantity > 0 in ``unit`` (None stays None)."""
    import math

    from ionspike.units import parse_quantity

    if text is None:
        return None
    value = parse_quantity(text, unit, name=option)
    if not (math.isfinite(value) and value > 0):
        raise ParameterError(f"{option} = {text!r} is out of range: allowed a finite quantity > 0 {unit}")
    return value


def _copies(n: int, option: str = "--n") -> int:
    from ionspike.spice.netlist import check_copies

    return check_copies(n, option)


@app.command()
@_guarded()
def simulate(
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (traces.nc, metrics.json, traces.png)."),
    preset: str = typer.Option(DEFAULTS["preset"], help="Built-in preset name or a TOML file."),
    pulse: Optional[str] = typer.Option(None, help="Pulse train AMPLITUDE,WIDTH,PERIOD, e.g. 0.8V,1ms,2ms."),
    dc: Optional[str] = typer.Option(None, help="DC input instead of pulses, e.g. 0.8V."),
    duration: Optional[str] = typer.Option(None, help="Simulated time, e.g. 300ms (default: the preset's)."),
    set_: List[str] = typer.Option([], "--set", help="Override a parameter, e.g. --set Rc=250MOhm (repeatable)."),
    n: int = typer.Option(DEFAULTS["n"], help="Number of neurons (trials) simulated at once."),
    seed: int = typer.Option(DEFAULTS["seed"], min=0, max=SEED_MAX, help="Seed of every random draw."),
    dt: Optional[str] = typer.Option(None, help="Time step, e.g. 2us (default: the preset's)."),
    deterministic: bool = typer.Option(False, "--deterministic", help="No noise, no spread."),
    rtol: Optional[float] = typer.Option(None, help="Adaptive stepping: relative tolerance in (0, 1), e.g. 1e-4 "
                                                   "(--dt then sets the record grid only)."),
    atol: Optional[float] = typer.Option(None, help="Adaptive stepping: absolute tolerance in (0, 1), e.g. 1e-7."),
    max_step: Optional[str] = typer.Option(None, help="Adaptive stepping: the longest step, e.g. 100us."),
    precision: str = typer.Option("float64", help="Arithmetic of the run: float64, or float32 for large "
                                                  "stochastic batches (docs/model.md §6.11)."),
    engine: str = typer.Option("ionspike", help="ionspike (JAX) or ngspice (exported netlist, real ngspice)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    """Simulate N neurons on a pulse train or DC input and write traces, metrics and a figure.

    Fixed steps of --dt by default; --rtol/--atol switch to error-controlled adaptive steps per neuron."""
    import ionspike as isp
    from ionspike import io, metrics
    from ionspike.report import plot_traces

    if engine not in ("ionspike", "ngspice"):
        raise ParameterError(f"--engine {engine!r}: allowed 'ionspike' or 'ngspice'")
    p = _preset(preset, set_)
    stim = _stimulus(p, pulse, dc)
    dur, step = _duration(p, duration), _dt(p, dt)
    with _option("--precision"):
        from ionspike.precision import check as check_precision
        check_precision(precision)
    if engine == "ngspice":
        _copies(n)
        if rtol is not None or atol is not None or max_step is not None:
            raise ParameterError("--rtol/--atol/--max-step apply to --engine ionspike (ngspice chooses its own steps)")
        if precision != "float64":
            raise ParameterError(f"--precision {precision}: ngspice computes in double precision (allowed: float64)")
    adaptive = {"rtol": rtol, "atol": atol, "max_step": max_step}
    if rtol is not None or atol is not None:
        from ionspike.simulate import _controller

        with _option("--rtol/--atol/--max-step"):
            _controller(rtol, atol, max_step)       # refuse bad tolerances before the folder is made
    with io.OutputFolder(out, "simulate", force=force) as out_dir, \
            _bar(TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn()) as bar:
        task = bar.add_task(escape(f"simulating {n} neuron(s), {dur:g} s ({engine})"), total=1.0)
        if engine == "ionspike":
            ds = isp.simulate(p, stim, duration=dur, n=n, seed=seed, dt=step, deterministic=deterministic,
                              progress=lambda f: bar.update(task, completed=f), precision=precision, **adaptive)
        else:
            ds = _ngspice_run(p, stim, dur, step, n, seed, deterministic)
            bar.update(task, completed=1.0)
        summary = metrics.summarize(ds)
        io.write_netcdf(out_dir / "traces.nc", ds)
        io.write_json(out_dir / "metrics.json", summary)
        plot_traces(io.read_netcdf(out_dir / "traces.nc"), out_dir / "traces.png")
    first = [f"{t * 1e3:.3f} ms" if t is not None else "none" for t in summary["first_spike_s"][:5]]
    eps = summary["energy_per_spike_J"]
    energy = f"energy/spike: {eps:.3g} J" if eps is not None else "no output spike, so no energy per spike"
    _say(f"first spike: {', '.join(first)}{' …' if n > 5 else ''}; spikes: {sum(summary['spike_count'])}; {energy}")
    _say(f"wrote {out_dir / 'traces.nc'}, {out_dir / 'metrics.json'}, {out_dir / 'traces.png'}")


def _ngspice_run(preset, stim, duration: float, dt: float, n: int, seed: int, deterministic: bool):
    """Export the same neuron(s) and run them in ngspice (the spread is ionspike's draw for ``seed``)."""
    import json

    from ionspike import spice
    from ionspike.simulate import device_spread

    p = preset.params.deterministic() if deterministic else preset.params
    deck = spice.netlist(p, stim, duration=duration, dt=dt, n=n, mu_scale=device_spread(p, n, seed),
                         title=f"preset {preset.name}, seed {seed}")
    return spice.run(deck, p, n=n, per_copy_input=stim.size() > 1,
                     attrs={"dt_s": dt, "duration_s": duration, "seed": seed, "preset": preset.name,
                            "stimulus_json": json.dumps(stim.describe()), "deterministic": int(deterministic)})


def _stimulus(p, pulse, dc):
    import ionspike as isp
    from ionspike.stimulus import DC, from_defaults, parse_pulse
    from ionspike.units import parse_quantity

    if pulse and dc:
        raise isp.StimulusError("give either --pulse or --dc, not both")
    if dc:
        with _option("--dc"):
            return DC(parse_quantity(dc, "V", name="--dc"))
    if pulse:
        with _option("--pulse"):
            return parse_pulse(pulse)
    return from_defaults(p.defaults, f"preset {p.name}: defaults")


export_app = typer.Typer(no_args_is_help=True, help="Export the neuron to other tools.")
validate_app = typer.Typer(no_args_is_help=True, help="Cross-check ionspike against other simulators.")
app.add_typer(export_app, name="export")
app.add_typer(validate_app, name="validate")


@export_app.command("spice")
@_guarded()
def export_spice(
    output: Path = typer.Option(..., "-o", "--output", help="Netlist file to write (.cir) in an existing folder."),
    preset: str = typer.Option(DEFAULTS["preset"], help="Built-in preset name or a TOML file."),
    pulse: Optional[str] = typer.Option(None, help="Pulse train AMPLITUDE,WIDTH,PERIOD, e.g. 0.8V,1ms,2ms."),
    dc: Optional[str] = typer.Option(None, help="DC input, e.g. 0.8V."),
    duration: Optional[str] = typer.Option(None, help="Transient length (default: the preset's)."),
    set_: List[str] = typer.Option([], "--set", help="Override a parameter, e.g. --set Rc=250MOhm."),
    n: int = typer.Option(DEFAULTS["n"], help="Copies; with device spread each gets its own mu."),
    seed: int = typer.Option(DEFAULTS["seed"], min=0, max=SEED_MAX, help="Seed of the device-to-device draw."),
    dt: Optional[str] = typer.Option(None, help="Maximum time step (default: the preset's)."),
    model: str = typer.Option("mosfet", help="Transistor: mosfet (SPICE level 1) or behavioural (exact EKV)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file that is not an ionspike netlist."),
):
    """Write an ngspice netlist of the same neuron, parameters and stimulus (deterministic)."""
    from ionspike import io, spice
    from ionspike.simulate import device_spread
    from ionspike.spice.deck import written_by_ionspike

    target = io.check_out_file(output, option="-o", force=force, ours=written_by_ionspike)
    n = _copies(n)
    p = _preset(preset, set_)
    stim = _stimulus(p, pulse, dc)
    dur, step = _duration(p, duration), _dt(p, dt)
    params, note = spice.exportable(p.params)
    if note:
        _say(f"note: {note}")
    text = spice.netlist(params, stim, duration=dur, dt=step, n=n, model=model, mu_scale=device_spread(params, n, seed),
                         title=f"preset {p.name}, seed {seed}, {n} copies")
    io.atomic_write(target, lambda path: path.write_text(text, encoding="utf-8"))
    _say(f"wrote {target} ({n} neuron(s), {dur:g} s transient, max step {step:g} s)")


@export_app.command("verilog-a")
@_guarded()
def export_verilog_a(
    output: Path = typer.Option(..., "-o", "--output", help="Verilog-A file to write (.va) in an existing folder; "
                                "the 1M1T1R subcircuit goes next to it (NAME_1m1t1r.cir)."),
    preset: str = typer.Option(DEFAULTS["preset"], help="Built-in preset name or a TOML file (e.g. a calibration's "
                               "preset.toml)."),
    set_: List[str] = typer.Option([], "--set", help="Override a parameter, e.g. --set mu=300."),
    force: bool = typer.Option(False, "--force", help="Replace existing files that ionspike did not write."),
):
    """Write the diffusive memristor as a Verilog-A compact model (OpenVAF, Spectre, Xyce, ngspice-OSDI)
    and an ngspice subcircuit of the 1M1T1R neuron that uses it."""
    from ionspike import io
    from ionspike.spice import verilog_a

    target = io.check_out_file(output, option="-o", force=force, ours=verilog_a.written_by_ionspike)
    sub = io.check_out_file(target.with_name(target.stem + "_1m1t1r.cir"), option="-o", force=force,
                            ours=verilog_a.written_by_ionspike)
    p = _preset(preset, set_)
    model = verilog_a.export(p.params, title=f"preset {p.name}", va_file=target.name)
    for note in model.notes:
        _say(f"note: {note}")
    io.atomic_write(target, lambda path: path.write_text(model.source, encoding="utf-8"))
    io.atomic_write(sub, lambda path: path.write_text(model.subcircuit, encoding="utf-8"))
    _say(f"wrote {target} (module {verilog_a.MODULE}) and {sub} (subcircuit {verilog_a.SUBCKT_VA})")


@export_app.command("nir")
@_guarded()
def export_nir(
    run_dir: Path = typer.Argument(..., help="A trained model folder (the --out of `ionspike train`)."),
    output: Path = typer.Option(..., "-o", "--output", help="NIR file to write (.nir) in an existing folder."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file that is not an NIR file."),
):
    """Write a trained network as an NIR graph (Norse, snnTorch, Rockpool, Sinabs, Lava-DL read it).
    LIF exports exactly; a 1M1T1R population as its nearest LIF, with the approximation's error."""
    import json

    from ionspike import io
    from ionspike.network import nir_io

    def is_nir(path):
        try:
            with open(path, "rb") as fh:
                return fh.read(8) == b"\x89HDF\r\n\x1a\n"
        except OSError:
            return False

    target = io.check_out_file(output, option="-o", force=force, ours=is_nir)
    graph, report = nir_io.to_graph(run_dir)
    nir_io.write(graph, target)
    for name, shape in report["nodes"].items():
        _say(f"  {name}: {shape}")
    for note in report["dropped"]:
        _say(f"warning: not exact: {note}")
    _say(f"test accuracy: model {report['model_test_accuracy']:.4f}, NIR graph read back {report['nir_test_accuracy']:.4f}; "
         f"hidden spikes per sample {report['spikes_per_sample']['model']:.1f} vs "
         f"{report['spikes_per_sample']['nir']:.1f} (mean |difference| {100 * report['count_rel_error']:.1f} %)")
    _say(f"wrote {target} ({'exact' if report['exact'] else 'approximate'}); report: "
         + json.dumps({k: report[k] for k in ("exact", "model_test_accuracy", "nir_test_accuracy")}))


import_app = typer.Typer(no_args_is_help=True, help="Read networks from other tools' formats.")
app.add_typer(import_app, name="import")


@import_app.command("nir")
@_guarded()
def import_nir(
    file: Path = typer.Argument(..., help="An NIR file of a recurrent network (as `ionspike export nir` writes)."),
    out: Path = typer.Option(..., "--out", help="Folder for result.json (test accuracy of the network read back)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    """Read an NIR graph into ionspike's cells and evaluate it on the task its metadata names."""
    from ionspike import io
    from ionspike.network import nir_io

    graph = nir_io.read(file)
    result = nir_io.evaluate_graph(graph)
    with io.OutputFolder(out, "import-nir", force=force) as folder:
        io.write_json(folder / "result.json", result)
    _say(f"test accuracy {result['test_accuracy']:.4f} on {result['task']} ({result['cell']['name']} cell; "
         f"stated in the file: {result['stated_test_accuracy']})")


@validate_app.command("spice")
@_guarded()
def validate_spice(
    preset: str = typer.Option(DEFAULTS["preset"], help="Built-in preset name or a TOML file."),
    pulse: Optional[str] = typer.Option(None, help="Pulse train AMPLITUDE,WIDTH,PERIOD."),
    dc: Optional[str] = typer.Option(None, help="DC input."),
    duration: Optional[str] = typer.Option(None, help="Simulated time (default: the preset's)."),
    set_: List[str] = typer.Option([], "--set", help="Override a parameter."),
    n: int = typer.Option(DEFAULTS["n"], help="Neurons (device spread draws differ per neuron)."),
    seed: int = typer.Option(DEFAULTS["seed"], min=0, max=SEED_MAX, help="Seed of the device-to-device draw."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write report.json into this folder."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    """Run ionspike and ngspice on the same neuron and input; report spike-time and V_g agreement."""
    import contextlib
    import json

    from ionspike import io, spice

    n = _copies(n)
    p = _preset(preset, set_)
    stim = _stimulus(p, pulse, dc)
    dur, step = _duration(p, duration), _dt(p, dt=None)
    folder = io.OutputFolder(out, "validate-spice", force=force) if out is not None else contextlib.nullcontext()
    with folder as out_dir:
        report, _, _ = spice.validate(p, stim, duration=dur, dt=step, n=n, seed=seed)
        if out_dir is not None:
            io.write_json(out_dir / "report.json", report)
    typer.echo(json.dumps(report, indent=2))


@app.command()
@_guarded()
def characterize(
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    preset: str = typer.Option(DEFAULTS["preset"], help="Built-in preset name or a TOML file."),
    only: Optional[str] = typer.Option(None, help="Comma-separated subset, e.g. leaky,threshold,energy."),
    trials: Optional[int] = typer.Option(None, help="Stochastic trials (stochasticity, refractory)."),
    seed: int = typer.Option(DEFAULTS["seed"], min=0, max=SEED_MAX, help="Seed of every random draw."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    """Measure the six characteristics and the energy per spike; write data, figures, metrics."""
    import ionspike as isp
    from ionspike import io, protocols
    from ionspike.report import characteristics as figs

    with _option("--only"):
        names = protocols.resolve_names(only.split(",") if only else None)
    if trials is not None and trials < 1:
        raise ParameterError(f"--trials = {trials} is out of range: allowed integers >= 1")
    isp.presets.load(preset)  # fail early on an unknown preset
    results, datasets, timing = {}, {}, {}
    with io.OutputFolder(out, "characterize", force=force) as out_dir, \
            _bar(TextColumn("{task.percentage:>3.0f}%")) as bar:
        for name in names:
            task = bar.add_task(escape(f"{name:22s}"), total=1.0)
            t0 = time.perf_counter()
            ds, metrics = protocols.run(name, preset, trials=trials, seed=seed,
                                        progress=lambda f, task=task: bar.update(task, completed=f))
            timing[name] = time.perf_counter() - t0
            bar.update(task, completed=1.0)
            io.write_netcdf(out_dir / f"{name}.nc", ds)
            datasets[name] = io.read_netcdf(out_dir / f"{name}.nc")
            figs.plot(name, datasets[name], out_dir / name)
            results[name] = metrics
        figs.summary(datasets, out_dir / "summary.png")
        results["run"] = {"preset": preset, "seed": seed, "trials": trials, "seconds": timing,
                          "ionspike_version": isp.__version__}
        io.write_json(out_dir / "metrics.json", results)   # written last: its presence marks a complete run
    _say(f"wrote {len(names)} characteristic(s) to {out_dir} in {sum(timing.values()):.0f} s")


@app.command()
@_guarded()
def published(
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (published.json, published.csv)."),
    preset: str = typer.Option(DEFAULTS["preset"], help="Built-in preset name or a TOML file."),
    stochastic_preset: str = typer.Option(
        "auto", "--stochastic-preset",
        help="A second preset whose P(fire) rows join the table: 'auto' (the stochastic preset when --preset "
             "is paper, as in reproduce), 'none', or a preset name or TOML file."),
    trials: Optional[int] = typer.Option(None, help="Stochastic trials (stochasticity, refractory)."),
    seed: int = typer.Option(DEFAULTS["seed"], min=0, max=SEED_MAX, help="Seed of every random draw."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    """The published-vs-ours table for one preset: each of the paper's numbers, ours, the tolerance, pass."""
    import csv
    import io as _stdio

    import ionspike as isp
    from ionspike import io
    from ionspike import published as pub

    if trials is not None and trials < 1:
        raise ParameterError(f"--trials = {trials} is out of range: allowed integers >= 1")
    second = None if stochastic_preset.strip().lower() == "none" else stochastic_preset
    isp.presets.load(preset)                           # fail early: unknown presets write nothing
    if second not in (None, "auto"):
        isp.presets.load(second)
    with io.OutputFolder(out, "published", force=force) as out_dir, _bar(TextColumn("{task.percentage:>3.0f}%")) as bar:
        task = bar.add_task(escape(f"published ({preset})"), total=1.0)
        table = pub.measure(preset, stochastic_preset=second, trials=trials, seed=seed,
                            progress=lambda f: bar.update(task, completed=f))
        buf = _stdio.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["name", "paper", "ours", "unit", "tolerance", "pass", "note"])
        writer.writeheader()
        writer.writerows(table["rows"])
        io.atomic_write(out_dir / "published.csv", lambda tmp: tmp.write_text(buf.getvalue()))
        io.write_json(out_dir / "published.json", table)   # written last: its presence marks a complete run
    for r in table["rows"]:
        _say(f"{'PASS' if r['pass'] else 'MISS'}  {r['name']}: paper {r['paper']}, ours {r['ours']} ({r['tolerance']})")
    _say(f"{table['passed']}/{table['total']} published numbers within tolerance; wrote {out_dir}/published.json")


@app.command()
@_guarded()
def design(
    targets: Path = typer.Argument(..., help="The targets file (TOML: variables with bounds, targets; see "
                                             "examples/design_100hz.toml)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (design.json, preset.toml, "
                                                     "sensitivity.csv, design.png)."),
    spice: bool = typer.Option(False, "--spice", help="Also check the chosen design on its exported deck with the "
                                                      "real ngspice."),
    workers: Optional[int] = typer.Option(None, help="Measure each generation's candidates on a local Dask cluster "
                                          "of this many workers (default: in this process, one batch)."),
    scheduler: Optional[str] = typer.Option(None, help="Measure them on a running Dask scheduler "
                                            "(tcp://HOST:PORT)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    """Inverse design: the circuit and device values that meet measurable targets, with the verdict per target."""
    import contextlib
    import shlex
    import sys

    from ionspike import io
    from ionspike.design import output, search
    from ionspike.design import spec as design_spec

    spec = design_spec.load(targets)                # every error in the file before a folder is made
    if spice:
        from ionspike.spice.run import executable

        executable()                                # ngspice missing: say so now, not after the search
    from ionspike.runner import Runner

    distributed = workers is not None or scheduler is not None
    with io.OutputFolder(out, "design", force=force) as out_dir, \
            (Runner(scheduler=scheduler, workers=workers) if distributed else contextlib.nullcontext()) as runner, \
            _bar(TextColumn("{task.fields[info]}")) as bar:
        if runner is not None and runner.dashboard:
            _say(f"Dask dashboard: {runner.dashboard}")
        task = bar.add_task(escape(f"design {spec.name}"), total=spec.generations + 1, info="")
        result = search.run(spec, spice=spice, runner=runner, progress=lambda g, G, best: bar.update(
            task, completed=min(g + 1, G + 1), info=f"best loss {best:.3g}"))
        output.write(spec, result, out_dir, command=shlex.join(["ionspike", *sys.argv[1:]]))
    for t in result["targets"]:
        extra = "" if t.get("ngspice") is None else f", ngspice {t['ngspice']:.4g}"
        got = "none" if t["achieved"] is None else f"{t['achieved']:.4g}"
        _say(f"{'PASS' if t['pass'] else 'MISS'}  {t['target']}: wanted {t['wanted']}, achieved {got}{extra}"
             + ("" if t["pass"] else f" ({t['note']})"))
    _say(", ".join(f"{v['name']} = {v['value']:.4g} {v['unit']}" for v in result["variables"]))
    fp = result["footprint"]
    _say(f"footprint ({fp['node']}, assumptions in design.json): {fp['total_m2'] * 1e12:.3g} um^2, mostly "
         f"{fp['dominant']} (transistor {fp['transistor_m2'] * 1e12:.3g}, C_g {fp['capacitor_m2'] * 1e12:.3g}, R_c "
         f"{fp['resistor_m2'] * 1e12:.3g} um^2)")
    _say(f"{result['passed']}/{result['total']} targets met; wrote {out_dir}/design.json and preset.toml")


calibrate_app = typer.Typer(no_args_is_help=True, help="Fit the device model to measured data; write a preset.")
app.add_typer(calibrate_app, name="calibrate")


def _calibrate(kind: str, path: Path, out: Path, base: str, seed: int, quick: bool, fit_kwargs: dict,
               force: bool) -> None:
    import shlex
    import sys

    import ionspike as isp
    from ionspike import calibrate, io
    from ionspike.report import calibration as figs

    isp.presets.load(base)  # fail early on an unknown base preset
    options = calibrate.FitOptions(seed=seed, **({"steps": 10, "restarts": 1, "rounds": 1} if quick else {}))
    try:
        data = calibrate.load_dc_sweeps(path) if kind == "dc-sweeps" else calibrate.load_pulse_trials(path)
    except FileNotFoundError as exc:
        raise ParameterError(f"PATH {str(path)!r}: {exc.strerror}: allowed an existing .npz or .csv file") from None
    fit_fn = calibrate.fit_dc_sweeps if kind == "dc-sweeps" else calibrate.fit_pulses
    total = calibrate.progress_total(kind, data, options, **fit_kwargs)
    with io.OutputFolder(out, f"calibrate-{kind}", force=force) as out_dir:
        with _bar(TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn()) as bar:
            task = bar.add_task(f"calibrate {kind}", total=total)
            fit = fit_fn(data, base=base, options=options, progress=lambda: bar.advance(task), **fit_kwargs)
            bar.update(task, completed=total)
        preset = isp.presets.load(base)
        defaults = dict(preset.defaults, **({"dt": f"{preset.dt} s"} if preset.dt else {}))
        calibrate.write(fit, out_dir, source=str(path), base=base, defaults=defaults,
                        command=" ".join(shlex.quote(a) for a in ["ionspike", *sys.argv[1:]]))
        figs.plot(out_dir)
    ks = ", ".join(f"{k} {v:.3f}" for k, v in fit.ks.items())
    _say(f"wrote {out_dir}/preset.toml, fit.json and figures; KS distances: {ks}")
    for line in fit.verdict_lines():          # does the fit reproduce the data: pass/fail with reasons, notes
        _say(line)


@calibrate_app.command("dc-sweeps")
@_guarded()
def calibrate_dc_sweeps(
    path: Path = typer.Argument(..., help="Sweeps: .npz (voltage_V, current_A) or .csv (sweep,voltage_V,current_A)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (preset.toml, fit.json, figures)."),
    symmetric: bool = typer.Option(True, "--symmetric/--asymmetric", help="Device switches on |V| or only V > 0."),
    per_polarity: bool = typer.Option(True, "--per-polarity/--pooled",
                                      help="Symmetric device: fit each polarity's onset and rate apart (or pool them)."),
    hold: str = typer.Option("10 ms", help="Time per sweep point (not in the data: an assumption to state)."),
    compliance: Optional[str] = typer.Option(None, help="Current compliance, e.g. 1uA (default: detected)."),
    i_on: str = typer.Option("10 nA", help="Threshold current level of the rising branch."),
    i_off: str = typer.Option("10 pA", help="Hold current level of the falling branch."),
    base: str = typer.Option(DEFAULTS["preset"], help="Preset giving the parameters the fit holds (and the transistor, circuit)."),
    seed: int = typer.Option(DEFAULTS["seed"], min=0, max=SEED_MAX, help="Seed of every random draw."),
    quick: bool = typer.Option(False, "--quick", help="One round, one start, 10 Adam steps (a smoke run)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    """Fit v_h, mu (per polarity), r_on/r_off and the noise to quasi-static I-V sweeps with compliance."""
    kwargs = {"polarity": "symmetric" if symmetric else "asymmetric", "per_polarity": per_polarity,
              "hold": _positive(hold, "s", "--hold"), "compliance": _positive(compliance, "A", "--compliance"),
              "i_on": _positive(i_on, "A", "--i-on"), "i_off": _positive(i_off, "A", "--i-off")}
    _calibrate("dc-sweeps", path, out, base, seed, quick, kwargs, force)


@calibrate_app.command("pulses")
@_guarded()
def calibrate_pulses(
    path: Path = typer.Argument(..., help="Trials: .npz (time_s, voltage_V, current_A) or .csv (trial,time_s,voltage_V,current_A)."),
    series_resistance: str = typer.Option(..., "--series-resistance", help="Resistor in series with the device, e.g. 22kOhm."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (preset.toml, fit.json, figures)."),
    i_level: Optional[str] = typer.Option(None, help="Switching current level (default: midway OFF to ON)."),
    base: str = typer.Option(DEFAULTS["preset"], help="Preset giving the parameters the fit holds (and the transistor, circuit)."),
    seed: int = typer.Option(DEFAULTS["seed"], min=0, max=SEED_MAX, help="Seed of every random draw."),
    quick: bool = typer.Option(False, "--quick", help="One round, one start, 10 Adam steps (a smoke run)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    """Fit mu, r_on/r_off and the noise to switching delays under a pulse through a series resistor."""
    kwargs = {"r_series": _positive(series_resistance, "ohm", "--series-resistance"),
              "i_level": _positive(i_level, "A", "--i-level")}
    _calibrate("pulses", path, out, base, seed, quick, kwargs, force)


def _epoch_bar() -> Progress:
    return _bar(TextColumn("{task.completed}/{task.total} epochs"), TimeRemainingColumn(), unit="epochs")


@app.command()
@_guarded(resumable=True)
def train(
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (checkpoint.npz, model.npz, result.json, figure)."),
    task: str = typer.Option("mnist1d", help="mnist1d, digits or working_memory."),
    neuron: str = typer.Option("1m1t1r", help="1m1t1r (the device), lif or alif (baselines)."),
    variant: str = typer.Option("full", help="Ablation variant of the 1m1t1r neuron (see `ionspike ablate --help`)."),
    preset: str = typer.Option(DEFAULTS["preset"], help="Device preset of the 1m1t1r neuron."),
    hidden: int = typer.Option(128, help="Hidden neurons."),
    epochs: int = typer.Option(30, help="Training epochs (the best validation epoch is kept)."),
    batch: int = typer.Option(64, help="Minibatch size."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate (Adam, cosine decay); default per neuron model."),
    readout: str = typer.Option("li", help="li (leaky integrator, max over time), li-mean or count (spike count)."),
    seed: int = typer.Option(DEFAULTS["seed"], min=0, max=2**31 - 1, help="Seed of weights, device draws, batch order and noise."),
    n_train: Optional[int] = typer.Option(None, help="Use only the first N training samples."),
    n_test: Optional[int] = typer.Option(None, help="Use only the first N test samples."),
    val_fraction: float = typer.Option(0.1, help="Share of the training set held out to select the best epoch."),
    patience: Optional[int] = typer.Option(None, help="Stop after N epochs without a better validation accuracy."),
    bins_per_step: Optional[int] = typer.Option(None, help="Device bins (pulse periods) per input step (default: the task's)."),
    substeps: int = typer.Option(4, min=1, max=64, help="Midpoint sub-steps of the 1M1T1R cell per input pulse (1..64)."),
    train_sigma: Optional[float] = typer.Option(None, help="Variability-aware training: device-to-device spread of "
                                                "ln mu drawn afresh for every batch (1m1t1r)."),
    input_map: str = typer.Option("sigmoid", help="How the 1m1t1r cell turns a drive into a pulse amplitude: "
                                  "sigmoid (1.2 V sigmoid(d)) or linear (0.6 V + 0.3 V d, clipped to 0-1.2 V)."),
    ready_width: Optional[float] = typer.Option(None, help="1m1t1r: scale the spike's surrogate derivative by "
                                                "sigmoid((V_T - V_g)/W) of the gate at each bin's start, W in V "
                                                "(default 0.02 for 1m1t1r, measured best on digits; 0 turns it off)."),
    tau_out: Optional[str] = typer.Option(None, help="Time constant of the leaky-integrator readout, e.g. "
                                          "'100 ms' (default: the task's, 20 ms; 100 ms for digits)."),
    floor_weight: Optional[float] = typer.Option(None, help="Weight of the lower-rate penalty on hidden neurons "
                                                 "firing below 0.02 spikes per bin (default 0: off; 3000 "
                                                 "revives the silent 1m1t1r neurons)."),
    rate_weight: Optional[float] = typer.Option(None, help="Weight of the upper-rate penalty on hidden neurons "
                                                "firing above 0.05 spikes per bin (default: 30 for 1m1t1r, 0 for "
                                                "lif/alif; 300 keeps a fast-firing device from running away)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    """Train an RSNN by BPTT; checkpoints every epoch and resumes from DIR/checkpoint.npz."""
    import ionspike as isp
    from ionspike import io
    from ionspike.network import train as T
    from ionspike.report import network as figs

    config = T.TrainConfig(task=task, neuron=neuron, variant=variant, preset=preset, hidden=hidden, epochs=epochs,
                           batch=batch, lr=lr, seed=seed, n_train=n_train, n_test=n_test, bins_per_step=bins_per_step,
                           substeps_on=substeps, readout=readout, val_fraction=val_fraction, patience=patience,
                           train_sigma_d2d=train_sigma, input_map=input_map, ready_width=ready_width,
                           tau_out=_positive(tau_out, "s", "--tau-out"), floor_weight=floor_weight,
                           rate_weight=rate_weight)
    with _option("--preset"):
        isp.presets.load(preset)
    with io.OutputFolder(out, "train", force=force, resumable=True) as out_dir, _epoch_bar() as bar:
        label = escape(f"train {task} {neuron} {variant}")
        job = bar.add_task(label, total=epochs)
        result = T.train(config, out_dir, progress=lambda e, n, row: bar.update(
            job, completed=e, description=f"{label}: val {row['val_accuracy'] if row['val_accuracy'] is not None else float('nan'):.3f}"))
        bar.update(job, completed=epochs)
        io.write_json(out_dir / "result.json", T.result_summary(result))
        figs.learning_curve(out_dir / "result.json", out_dir / "learning_curve.png")
    val = result["val_accuracy"]
    _say(f"test accuracy {result['test_accuracy']:.4f} (epoch {result['best_epoch']}, validation "
         f"{'n/a' if val is None else f'{val:.4f}'}), {result['spikes_per_sample']:.1f} spikes per sample; "
         f"wrote {out_dir}/result.json, model.npz, checkpoint.npz, learning_curve.png")


@app.command()
@_guarded()
def robustness(
    model: List[Path] = typer.Option(..., "--model", "-m", help="A trained 1m1t1r model folder (`ionspike train --out`); repeatable."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (robustness.json, .csv, .png)."),
    sigmas: str = typer.Option("0,0.1,0.2,0.3,0.5", help="Test-time device-to-device spreads of ln mu, comma-separated."),
    chips: int = typer.Option(10, help="Fresh device draws ('chips') per spread."),
    seed: int = typer.Option(DEFAULTS["seed"], min=0, max=2**31 - 1, help="Seed of the device draws and noise."),
    n_test: Optional[int] = typer.Option(None, help="Use only the first N test samples."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    """Test accuracy of trained 1M1T1R networks against device variability (fresh chips per spread)."""
    from ionspike import io
    from ionspike.network import robustness as Rb
    from ionspike.report import network as figs

    with _option("--sigmas"):
        try:
            values = [float(v) for v in sigmas.split(",") if v.strip()]
        except ValueError:
            raise ParameterError(f"--sigmas {sigmas!r}: expected numbers separated by commas, e.g. 0,0.1,0.2") from None
        values = Rb.check_sigmas(values)
    if chips < 1:
        raise ParameterError(f"--chips = {chips} is out of range: allowed integers >= 1")
    if n_test is not None and n_test < 1:
        raise ParameterError(f"--n-test = {n_test} is out of range: allowed integers >= 1")
    with _option("--model"):
        from ionspike.network.train import load_model

        for m in model:
            load_model(m)                  # every model readable before any evaluation
    with io.OutputFolder(out, "robustness", force=force) as out_dir, _bar(TextColumn("{task.completed}/{task.total}"),
                                                                           TimeElapsedColumn()) as bar:
        job = bar.add_task("robustness", total=len(model) * len(values) * chips)
        results = Rb.robustness(model, out_dir, values, chips, seed, n_test,
                                progress=lambda k, d, n: bar.update(job, completed=k * n + d))
        figs.robustness(out_dir / "robustness.json", out_dir / "robustness.png")
    for entry in results["models"]:
        row = " ".join(f"{r['sigma_d2d_ln_mu']:g}:{r['mean']:.3f}" for r in entry["rows"])
        _say(f"{entry['model']} (trained at sigma {entry['trained_sigma_d2d']}): {row}")
    _say(f"wrote {out_dir}/robustness.json, robustness.csv, robustness.png")


@app.command()
@_guarded(resumable=True)
def ablate(
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (results.json, results.csv, figures, runs/)."),
    task: Optional[List[str]] = typer.Option(None, help="Task(s): mnist1d, digits, working_memory or all (repeatable; "
                                             "default mnist1d, with --full mnist1d and working_memory)."),
    variants: str = typer.Option("all", help="Comma-separated variants or all: full, no_leak, no_ip, short_ip, no_refractory, "
                                 "long_refractory, deterministic, high_noise, low_threshold, high_threshold, lif, alif."),
    seeds: int = typer.Option(3, help="Seeds per variant."),
    full: bool = typer.Option(False, "--full", help="Converged settings (128 hidden, up to 80 epochs with best-epoch "
                              "selection and no early stop, all data; tasks mnist1d and working_memory unless "
                              "--task): hours (MNIST-1D: ~10 h of training, ~5 h on 2 workers); resumable."),
    hidden: Optional[int] = typer.Option(None, help="Override the hidden size of the chosen settings."),
    epochs: Optional[int] = typer.Option(None, help="Override the epochs of the chosen settings."),
    patience: Optional[int] = typer.Option(None, help="Override the early stop of the chosen settings: stop after N "
                                           "epochs without a better validation accuracy (default: none)."),
    n_train: Optional[int] = typer.Option(None, help="Override the training-set size of the chosen settings."),
    read_energy: str = typer.Option("1 fJ", help="Energy of one synapse read in the crossbars."),
    preset: str = typer.Option(DEFAULTS["preset"], help="Device preset of the 1m1t1r runs: a built-in name or a TOML "
                               "file (e.g. examples/no_residue_1ms_gate.toml); the variants change it as they change "
                               "the paper's device. LIF/ALIF do not use it."),
    rate_weight: Optional[float] = typer.Option(None, help="Weight of the upper-rate penalty of the 1m1t1r runs "
                                                "(default: the neuron's); LIF/ALIF keep their own."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate of the 1m1t1r runs (default: the neuron's, "
                                       "5e-3; the example no_residue_* devices are trained at 3e-3); LIF/ALIF keep theirs."),
    workers: Optional[int] = typer.Option(None, help="Train the runs on a local Dask cluster of this many worker "
                                          "processes (default: one run after the other in this process)."),
    scheduler: Optional[str] = typer.Option(None, help="Train the runs on a running Dask scheduler, e.g. "
                                            "tcp://127.0.0.1:8786 (shared filesystem for --out)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    """Train every variant of the neuron (and LIF/ALIF) x seeds x tasks; accuracy, rate, energy, significance."""
    from ionspike import io
    from ionspike.network import ablate as A
    from ionspike.network import energy as E
    from ionspike.report import network as figs

    # every option is checked before any training starts
    mode = "full" if full else "quick"
    if seeds < 1:
        raise ParameterError(f"--seeds = {seeds} is out of range: allowed integers >= 1")
    from ionspike.units import parse_quantity

    read_energy_J = E.read_energy(parse_quantity(read_energy, "J", name="--read-energy"))
    overrides = {k: v for k, v in {"hidden": hidden, "epochs": epochs, "n_train": n_train,
                                   "patience": patience}.items() if v is not None}
    with _option("--variants"):
        names = A.resolve_variants(variants.split(","))
    with _option("--preset"):
        from ionspike import presets as P

        P.params(preset)                             # an unknown preset is the --preset's error ...
    with _option("--variants"):
        skipped = A.left_out(names, preset)          # ... a request of copies of the full neuron the --variants'
    for v, why in skipped.items():
        _say(f"{v}: left out, it would be the full neuron of this preset: {why}")
    kept = [v for v in names if v not in skipped]    # ablate() leaves the same ones out and records why
    with _option("--task"):
        tasks_ = A.resolve_tasks(task or (list(A.FULL_TASKS) if full else ["mnist1d"]))
    settings = {**A.SETTINGS[mode], **overrides}
    device = {k: v for k, v in {"rate_weight": rate_weight, "lr": lr}.items() if v is not None}
    for t in tasks_:
        for v in kept:
            A.run_config(t, v, 0, settings, preset, device)   # validates hidden, epochs, n_train, rate_weight, lr
    if preset != DEFAULTS["preset"]:      # a preset of its own: its variants must re-fit
        from ionspike import presets as P
        from ionspike.network import variants as V
        from ionspike.network.train import device_bin

        with _option("--preset"):
            base = P.params(preset)
            spec = device_bin(A.run_config(tasks_[0], "full", 0, settings, preset, device))
            for v in kept:                        # the re-fits of mu run before any training, and fail here
                if v not in A.BASELINES:
                    V.make(v, base, spec)
    total = len(kept) * seeds * len(tasks_) * settings["epochs"]
    from ionspike.runner import Runner

    distributed = workers is not None or scheduler is not None
    with io.OutputFolder(out, "ablate", force=force, resumable=True) as out_dir, \
            (Runner(scheduler=scheduler, workers=workers) if distributed else contextlib.nullcontext()) as runner, \
            _epoch_bar() as bar:
        if runner is not None and runner.dashboard:
            _say(f"Dask dashboard: {runner.dashboard}")
        job = bar.add_task("ablation", total=total)
        results = A.ablate(tasks_, names, seeds, mode=mode, out=out_dir, overrides=overrides, read_energy=read_energy_J,
                           preset=preset, device_overrides=device,
                           progress=lambda d, n, label: bar.update(job, completed=d, description=escape(label)),
                           runner=runner)
        figs.plot_ablation(out_dir / "results.json", out_dir)
    for t, entry in results["tasks"].items():
        err.print(f"[bold]{escape(t)}[/]")
        for v, s in entry["variants"].items():
            ci = s["accuracy_ci95"]
            interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
            p = f"  p_Holm = {s['p_holm_vs_full']:.3g}" if s["p_holm_vs_full"] is not None else ""
            _say(f"  {v:16s} {s['accuracy_mean']:.3f}{interval}  rate {s['firing_rate_per_bin']:.4f}/bin{p}")
    for run in results["diverged_runs"]:
        _say(f"diverged, left out: {run['task']} {run['variant']} seed {run['seed']}: "
             f"{run['error']}")
    _say(f"wrote {out_dir}/results.json, results.csv and figures ({results['wall_time_s'] / 60:.1f} min)")


SWEEP_HELP = """A grid or Monte Carlo study over parameters and stimuli, run on Dask, into one Zarr store.

STUDY is a TOML file (all keys optional but [axes]; SI values or unit strings):

\b
    preset = "paper"              # built-in name or preset file (relative to STUDY)
    duration = "40 ms"
    n = 50                        # devices per grid point
    seed = 0
    deterministic = false
    metrics = ["first_spike_s", "spike_count", "fired", "energy_per_spike_J"]
    task_size = 2048              # neurons per task (memory per worker)
    [stimulus]
    kind = "pulse"                # or "dc" (amplitude only)
    amplitude = "0.8 V"
    width = "1 ms"
    period = "2 ms"
    [axes]                        # parameter names (see `ionspike presets paper`) or stimulus fields
    Rc = ["50 MOhm", "250 MOhm", "500 MOhm"]
    amplitude = "0.6..1.2 V in 13 steps"        # or "A..B UNIT in N log steps"
    sigma_d2d = [0, 0.1, 0.2]

Metrics (per device): first_spike_s, spike_count, isi_mean_s, isi_cv, fired (its mean is P(fire)),
switch_delay_s, energy_per_spike_J. OUT/sweep.zarr opens with xarray.open_zarr; figures land next
to it. A rerun of the same study resumes (finished tasks are kept); runs on a local cluster of one
worker per core, or on --scheduler / DASK_SCHEDULER_ADDRESS."""


@app.command(help=SWEEP_HELP)
@_guarded(resumable=True)
def sweep(
    study_file: Path = typer.Argument(..., metavar="STUDY", help="The study (TOML)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (sweep.zarr, figures)."),
    scheduler: Optional[str] = typer.Option(None, help="A running Dask scheduler, e.g. tcp://127.0.0.1:8786 "
                                            "(default: DASK_SCHEDULER_ADDRESS, else a local cluster)."),
    workers: Optional[int] = typer.Option(None, help="Local cluster size (default: one worker per core)."),
    force: bool = typer.Option(False, "--force", help="Start afresh in a folder that holds another study or "
                                                      "something else."),
):
    from ionspike import io
    from ionspike import study as S
    from ionspike import sweep as W

    st = S.load(study_file)
    with io.OutputFolder(out, "sweep", force=force, resumable=True, identity=W.identity(st)) as root, \
            _bar(TextColumn("{task.completed}/{task.total} tasks"), TimeRemainingColumn(), unit="tasks") as bar:
        job = bar.add_task("sweep", total=len(S.tasks(st)))

        def started(total, pending, dashboard):
            bar.update(job, completed=total - pending)
            if pending < total:
                _say(f"resuming: {total - pending} of {total} tasks already in the store, computing {pending}")
            if dashboard:
                _say(f"Dask dashboard: {dashboard}")

        summary = W.run(st, root, scheduler=scheduler, workers=workers, on_start=started,
                        on_task=lambda: bar.advance(job))
    for f in summary["failed"]:
        _error(f"task {f['task']} at {f['grid_point']} failed: {f['error']}")
    _say(f"wrote {summary['store']} ({summary['computed']} tasks computed, {summary['done_before']} reused, "
         f"{len(summary['failed'])} failed) and figures")
    if summary["failed"]:
        _say("rerun the same command to retry the failed tasks (see errors.json)")
        raise typer.Exit(EXIT_FAILED)


@app.command()
@_guarded(resumable=True)
def reproduce(
    out: Path = typer.Option(Path("report"), "--out", "-o", help="Report folder (index.html, summary.json, stages/)."),
    quick: bool = typer.Option(True, "--quick/--full", help="Quick (minutes on a laptop) or paper-grade settings (hours)."),
    tiny: bool = typer.Option(False, "--tiny", hidden=True, help="Test scale (seconds per stage)."),
    measured: Optional[Path] = typer.Option(None, help="Folder of measured data in the shared/data layout (calibration)."),
    force: bool = typer.Option(False, "--force", help="Rerun every stage (finished ones too) and write into a folder "
                                                      "that holds something else."),
    workers: Optional[int] = typer.Option(None, help="Run the protocols and training runs on a local Dask cluster of "
                                          "this many workers (default: in this process)."),
    scheduler: Optional[str] = typer.Option(None, help="Run them on a running Dask scheduler (tcp://HOST:PORT)."),
):
    """The whole study: characteristics, energy, published vs ours, calibration, RSNN ablation -> one report."""
    from ionspike import io
    from ionspike import reproduce as R

    mode = "tiny" if tiny else ("quick" if quick else "full")
    from ionspike.runner import Runner

    distributed = workers is not None or scheduler is not None
    with (Runner(scheduler=scheduler, workers=workers) if distributed else contextlib.nullcontext()) as runner, \
            _bar(TextColumn("{task.percentage:>3.0f}%")) as bar:
        jobs = {name: bar.add_task(f"{name:18s}", total=1.0) for name in R.STAGES}
        summary = R.run(out, mode=mode, measured=measured, force=force,
                        progress=lambda name, f: bar.update(jobs[name], completed=f), runner=runner)
    pub = summary["stages"]["published"]
    root = io.normalize(out)
    _say(f"published numbers within tolerance: {pub['passed']}/{pub['total']}; wrote {root}/index.html and summary.json")


@app.command()
@_guarded()
def presets(name: Optional[str] = typer.Argument(None, help="Show one preset's resolved parameters (SI).")):
    """List the built-in presets, or show one."""
    import json

    import ionspike as isp

    if name is None:
        for n in isp.presets.names():
            p = isp.presets.load(n)
            typer.echo(f"{n:12s} {p.description}")
        return
    p = isp.presets.load(name)
    typer.echo(json.dumps({"name": p.name, "description": p.description, "dt_s": p.dt,
                           "defaults": p.defaults, "params": p.params.to_dict()}, indent=2))


if __name__ == "__main__":
    app()
