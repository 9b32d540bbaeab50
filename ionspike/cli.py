"""Command line: parse, call the public API, show progress. No physics here."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ionspike.errors import IonspikeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="ionspike: simulate the 1M1T1R diffusive-memristor spiking neuron.")
err = Console(stderr=True, soft_wrap=True)


def _fail(exc: Exception) -> None:
    err.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


@app.command()
def simulate(
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (traces.nc, metrics.json, traces.png)."),
    preset: str = typer.Option("paper", help="Built-in preset name or a TOML file."),
    pulse: Optional[str] = typer.Option(None, help="Pulse train AMPLITUDE,WIDTH,PERIOD, e.g. 0.8V,1ms,2ms."),
    dc: Optional[str] = typer.Option(None, help="DC input instead of pulses, e.g. 0.8V."),
    duration: Optional[str] = typer.Option(None, help="Simulated time, e.g. 300ms (default: the preset's)."),
    set_: List[str] = typer.Option([], "--set", help="Override a parameter, e.g. --set Rc=250MOhm (repeatable)."),
    n: int = typer.Option(1, help="Number of neurons (trials) simulated at once."),
    seed: int = typer.Option(0, help="Seed of every random draw."),
    dt: Optional[str] = typer.Option(None, help="Time step, e.g. 2us (default: the preset's)."),
    deterministic: bool = typer.Option(False, "--deterministic", help="No noise, no spread."),
    engine: str = typer.Option("ionspike", help="ionspike (JAX) or ngspice (exported netlist, real ngspice)."),
):
    """Simulate N neurons on a pulse train or DC input and write traces, metrics and a figure."""
    import ionspike as isp
    from ionspike import io, metrics
    from ionspike.params import parse_assignments
    from ionspike.report import plot_traces

    try:
        out_dir = io.prepare_out_dir(out)
        p = isp.presets.load(preset, **parse_assignments(set_))
        stim = _stimulus(p, pulse, dc)
        dur = duration or p.defaults.get("duration", "300 ms")
        with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                      TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=err, transient=False) as bar:
            task = bar.add_task(f"simulating {n} neuron(s), {dur} ({engine})", total=1.0)
            if engine == "ionspike":
                ds = isp.simulate(p, stim, duration=dur, n=n, seed=seed, dt=dt, deterministic=deterministic,
                                  progress=lambda f: bar.update(task, completed=f))
            elif engine == "ngspice":
                ds = _ngspice_run(p, stim, dur, dt, n, seed, deterministic)
                bar.update(task, completed=1.0)
            else:
                raise isp.ParameterError(f"--engine {engine!r}: allowed 'ionspike' or 'ngspice'")
        summary = metrics.summarize(ds)
        io.write_netcdf(out_dir / "traces.nc", ds)
        io.write_json(out_dir / "metrics.json", summary)
        plot_traces(io.read_netcdf(out_dir / "traces.nc"), out_dir / "traces.png")
    except isp.IonspikeError as exc:
        _fail(exc)
    first = [f"{t * 1e3:.3f} ms" if t is not None else "none" for t in summary["first_spike_s"][:5]]
    eps = summary["energy_per_spike_J"]
    energy = f"energy/spike: {eps:.3g} J" if eps is not None else "no output spike, so no energy per spike"
    err.print(f"first spike: {', '.join(first)}{' …' if n > 5 else ''}; spikes: {sum(summary['spike_count'])}; {energy}")
    err.print(f"wrote {out_dir / 'traces.nc'}, {out_dir / 'metrics.json'}, {out_dir / 'traces.png'}")


def _ngspice_run(preset, stim, duration, dt, n, seed, deterministic):
    """Export the same neuron(s) and run them in ngspice (the spread is ionspike's draw for ``seed``)."""
    from ionspike import spice
    from ionspike.units import parse_quantity

    from ionspike.simulate import device_spread

    p = preset.params.deterministic() if deterministic else preset.params
    dur = parse_quantity(duration, "s", name="duration")
    step = parse_quantity(dt, "s", name="dt") if dt else (preset.dt or 2e-6)
    deck = spice.netlist(p, stim, duration=dur, dt=step, n=n, mu_scale=device_spread(p, n, seed),
                         title=f"preset {preset.name}, seed {seed}")
    import json

    return spice.run(deck, p, n=n, per_copy_input=stim.size() > 1,
                     attrs={"dt_s": step, "duration_s": dur, "seed": seed, "preset": preset.name,
                            "stimulus_json": json.dumps(stim.describe()), "deterministic": int(deterministic)})


def _stimulus(p, pulse, dc):
    import ionspike as isp
    from ionspike.stimulus import DC, from_defaults, parse_pulse
    from ionspike.units import parse_quantity

    if pulse and dc:
        raise isp.StimulusError("give either --pulse or --dc, not both")
    if dc:
        return DC(parse_quantity(dc, "V", name="--dc"))
    if pulse:
        return parse_pulse(pulse)
    return from_defaults(p.defaults, f"preset {p.name}: defaults")


export_app = typer.Typer(no_args_is_help=True, help="Export the neuron to other tools.")
validate_app = typer.Typer(no_args_is_help=True, help="Cross-check ionspike against other simulators.")
app.add_typer(export_app, name="export")
app.add_typer(validate_app, name="validate")


@export_app.command("spice")
def export_spice(
    output: Path = typer.Option(..., "-o", "--output", help="Netlist file to write (.cir)."),
    preset: str = typer.Option("paper", help="Built-in preset name or a TOML file."),
    pulse: Optional[str] = typer.Option(None, help="Pulse train AMPLITUDE,WIDTH,PERIOD, e.g. 0.8V,1ms,2ms."),
    dc: Optional[str] = typer.Option(None, help="DC input, e.g. 0.8V."),
    duration: Optional[str] = typer.Option(None, help="Transient length (default: the preset's)."),
    set_: List[str] = typer.Option([], "--set", help="Override a parameter, e.g. --set Rc=250MOhm."),
    n: int = typer.Option(1, help="Copies; with device spread each gets its own mu."),
    seed: int = typer.Option(0, help="Seed of the device-to-device draw."),
    dt: Optional[str] = typer.Option(None, help="Maximum time step (default: the preset's)."),
    model: str = typer.Option("mosfet", help="Transistor: mosfet (SPICE level 1) or behavioural (exact EKV)."),
):
    """Write an ngspice netlist of the same neuron, parameters and stimulus (deterministic)."""
    import ionspike as isp
    from ionspike import io, spice
    from ionspike.params import parse_assignments
    from ionspike.units import parse_quantity

    try:
        p = isp.presets.load(preset, **parse_assignments(set_))
        stim = _stimulus(p, pulse, dc)
        dur = parse_quantity(duration or p.defaults.get("duration", "300 ms"), "s", name="duration")
        step = parse_quantity(dt, "s", name="dt") if dt else (p.dt or 2e-6)
        params = p.params
        if float(params.noise.sigma_c2c_ln_mu) > 0 or float(params.noise.n_eff) < float("inf"):
            err.print("note: the noise (n_eff, cycle-to-cycle spread) has no ngspice form; exporting the deterministic "
                      "neuron (device-to-device spread is kept as per-copy mu)")
            params = isp.replace(params, N_eff=float("inf"), sigma_c2c=0.0)
        from ionspike.simulate import device_spread

        text = spice.netlist(params, stim, duration=dur, dt=step, n=n, model=model,
                             mu_scale=device_spread(params, n, seed),
                             title=f"preset {p.name}, seed {seed}, {n} copies")
        if output.exists() and output.is_dir():
            raise isp.ParameterError(f"-o {str(output)!r} is a directory: give a file name such as neuron.cir")
        io.atomic_write(output, lambda path: path.write_text(text))
    except isp.IonspikeError as exc:
        _fail(exc)
    err.print(f"wrote {output} ({n} neuron(s), {dur:g} s transient, max step {step:g} s)")


@validate_app.command("spice")
def validate_spice(
    preset: str = typer.Option("paper", help="Built-in preset name or a TOML file."),
    pulse: Optional[str] = typer.Option(None, help="Pulse train AMPLITUDE,WIDTH,PERIOD."),
    dc: Optional[str] = typer.Option(None, help="DC input."),
    duration: Optional[str] = typer.Option(None, help="Simulated time (default: the preset's)."),
    set_: List[str] = typer.Option([], "--set", help="Override a parameter."),
    n: int = typer.Option(1, help="Neurons (device spread draws differ per neuron)."),
    seed: int = typer.Option(0, help="Seed of the device-to-device draw."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write report.json here."),
):
    """Run ionspike and ngspice on the same neuron and input; report spike-time and V_g agreement."""
    import json

    import ionspike as isp
    from ionspike import io, spice
    from ionspike.params import parse_assignments

    try:
        p = isp.presets.load(preset, **parse_assignments(set_))
        stim = _stimulus(p, pulse, dc)
        report, _, _ = spice.validate(p, stim, duration=duration or p.defaults.get("duration", "300 ms"), n=n,
                                      seed=seed)
        if out is not None:
            io.write_json(io.prepare_out_dir(out) / "report.json", report)
    except isp.IonspikeError as exc:
        _fail(exc)
    typer.echo(json.dumps(report, indent=2))


@app.command()
def characterize(
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    preset: str = typer.Option("paper", help="Built-in preset name or a TOML file."),
    only: Optional[str] = typer.Option(None, help="Comma-separated subset, e.g. leaky,threshold,energy."),
    trials: Optional[int] = typer.Option(None, help="Stochastic trials (stochasticity, refractory)."),
    seed: int = typer.Option(0, help="Seed of every random draw."),
):
    """Measure the six characteristics and the energy per spike; write data, figures, metrics."""
    import time

    import ionspike as isp
    from ionspike import io, protocols
    from ionspike.report import characteristics as figs

    try:
        names = protocols.resolve_names(only.split(",") if only else None)
        if trials is not None and trials < 1:
            raise isp.ParameterError(f"--trials = {trials} is out of range: allowed integers >= 1")
        isp.presets.load(preset)  # fail early on an unknown preset
        out_dir = io.prepare_out_dir(out)
        results, datasets, timing = {}, {}, {}
        with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                      TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=err) as bar:
            for name in names:
                task = bar.add_task(f"{name:22s}", total=1.0)
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
    except isp.IonspikeError as exc:
        _fail(exc)
    err.print(f"wrote {len(names)} characteristic(s) to {out_dir} in {sum(timing.values()):.0f} s")


calibrate_app = typer.Typer(no_args_is_help=True, help="Fit the device model to measured data; write a preset.")
app.add_typer(calibrate_app, name="calibrate")


def _calibrate(kind: str, path: Path, out: Path, base: str, seed: int, quick: bool, fit_kwargs: dict) -> None:
    import shlex
    import sys

    import ionspike as isp
    from ionspike import calibrate, io
    from ionspike.report import calibration as figs

    try:
        isp.presets.load(base)  # fail early on an unknown base preset
        io.prepare_out_dir(out)
        options = calibrate.FitOptions(seed=seed, **({"steps": 10, "restarts": 1, "rounds": 1} if quick else {}))
        data = calibrate.load_dc_sweeps(path) if kind == "dc-sweeps" else calibrate.load_pulse_trials(path)
        fit_fn = calibrate.fit_dc_sweeps if kind == "dc-sweeps" else calibrate.fit_pulses
        n_noise = len(options.n_eff_grid) * len(options.sigma_c2c_grid or (calibrate.fit.SIGMA_C2C_GRID if kind ==
                                                                             "dc-sweeps" else calibrate.fit.SIGMA_C2C_GRID_PULSES))
        total = options.rounds * n_noise + options.steps * (options.restarts + options.rounds - 1)
        if kind == "dc-sweeps":
            fits = calibrate.fit.fits_needed(data, fit_kwargs["polarity"], fit_kwargs["per_polarity"])
            total = total * fits + (9 if fits == 2 else 0)   # + the shared-noise candidates
        with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                      TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=err) as bar:
            task = bar.add_task(f"calibrate {kind}", total=total)
            fit = fit_fn(data, base=base, options=options, progress=lambda: bar.advance(task), **fit_kwargs)
            bar.update(task, completed=total)
        preset = isp.presets.load(base)
        defaults = dict(preset.defaults, **({"dt": f"{preset.dt} s"} if preset.dt else {}))
        calibrate.write(fit, out, source=str(path), base=base, defaults=defaults,
                        command=" ".join(shlex.quote(a) for a in ["ionspike", *sys.argv[1:]]))
        figs.plot(out)
    except (isp.IonspikeError, FileNotFoundError) as exc:
        _fail(exc)
    ks = ", ".join(f"{k} {v:.3f}" for k, v in fit.ks.items())
    err.print(f"wrote {out}/preset.toml, fit.json and figures; KS distances: {ks}")


@calibrate_app.command("dc-sweeps")
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
    base: str = typer.Option("paper", help="Preset giving the parameters the fit holds (and the transistor, circuit)."),
    seed: int = typer.Option(0, help="Seed of every random draw."),
    quick: bool = typer.Option(False, "--quick", help="One round, one start, 10 Adam steps (a smoke run)."),
):
    """Fit v_h, mu (per polarity), r_on/r_off and the noise to quasi-static I-V sweeps with compliance."""
    from ionspike.units import parse_quantity

    try:
        kwargs = {"polarity": "symmetric" if symmetric else "asymmetric", "per_polarity": per_polarity,
                  "hold": parse_quantity(hold, "s", name="hold"),
                  "compliance": parse_quantity(compliance, "A", name="compliance") if compliance else None,
                  "i_on": parse_quantity(i_on, "A", name="i_on"), "i_off": parse_quantity(i_off, "A", name="i_off")}
    except IonspikeError as exc:
        _fail(exc)
    _calibrate("dc-sweeps", path, out, base, seed, quick, kwargs)


@calibrate_app.command("pulses")
def calibrate_pulses(
    path: Path = typer.Argument(..., help="Trials: .npz (time_s, voltage_V, current_A) or .csv (trial,time_s,voltage_V,current_A)."),
    series_resistance: str = typer.Option(..., "--series-resistance", help="Resistor in series with the device, e.g. 22kOhm."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (preset.toml, fit.json, figures)."),
    i_level: Optional[str] = typer.Option(None, help="Switching current level (default: midway OFF to ON)."),
    base: str = typer.Option("paper", help="Preset giving the parameters the fit holds (and the transistor, circuit)."),
    seed: int = typer.Option(0, help="Seed of every random draw."),
    quick: bool = typer.Option(False, "--quick", help="One round, one start, 10 Adam steps (a smoke run)."),
):
    """Fit mu, r_on/r_off and the noise to switching delays under a pulse through a series resistor."""
    from ionspike.units import parse_quantity

    try:
        kwargs = {"r_series": parse_quantity(series_resistance, "ohm", name="--series-resistance"),
                  "i_level": parse_quantity(i_level, "A", name="i_level") if i_level else None}
    except IonspikeError as exc:
        _fail(exc)
    _calibrate("pulses", path, out, base, seed, quick, kwargs)


def _epoch_bar(total: int, description: str):
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total} epochs"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=err)


@app.command()
def train(
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (checkpoint.npz, result.json, figures)."),
    task: str = typer.Option("mnist1d", help="mnist1d, digits or working_memory."),
    neuron: str = typer.Option("1m1t1r", help="1m1t1r (the device), lif or alif (baselines)."),
    variant: str = typer.Option("full", help="Ablation variant of the 1m1t1r neuron (see `ionspike ablate --help`)."),
    preset: str = typer.Option("paper", help="Device preset of the 1m1t1r neuron."),
    hidden: int = typer.Option(128, help="Hidden neurons."),
    epochs: int = typer.Option(15, help="Training epochs."),
    batch: int = typer.Option(64, help="Minibatch size."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate (Adam, cosine decay); default per neuron model."),
    seed: int = typer.Option(0, help="Seed of weights, device draws, batch order and noise."),
    n_train: Optional[int] = typer.Option(None, help="Use only the first N training samples."),
    n_test: Optional[int] = typer.Option(None, help="Use only the first N test samples."),
    bins_per_step: Optional[int] = typer.Option(None, help="Device bins (1 ms on / 1 ms off) per input step (default: the task's)."),
    substeps: str = typer.Option("16,8", help="Midpoint sub-steps of the 1M1T1R cell per pulse phase, ON,OFF."),
):
    """Train an RSNN by BPTT; checkpoints every epoch and resumes from DIR/checkpoint.npz."""
    import ionspike as isp
    from ionspike import io
    from ionspike.network import train as T
    from ionspike.report import network as figs

    try:
        try:
            on, off = (int(v) for v in substeps.split(","))
        except ValueError:
            raise isp.ParameterError(f"--substeps {substeps!r}: expected two integers ON,OFF, e.g. 16,8") from None
        config = T.TrainConfig(task=task, neuron=neuron, variant=variant, preset=preset, hidden=hidden, epochs=epochs,
                               batch=batch, lr=lr, seed=seed, n_train=n_train, n_test=n_test, bins_per_step=bins_per_step,
                               substeps_on=on, substeps_off=off)
        isp.presets.load(preset)
        io.prepare_out_dir(out)
        with _epoch_bar(epochs, "train") as bar:
            job = bar.add_task(f"train {task} {neuron} {variant}", total=epochs)
            result = T.train(config, out, progress=lambda e, n, row: bar.update(
                job, completed=e, description=f"train {task} {neuron} {variant}: test {row['test_accuracy']:.3f}"))
        summary = {k: result[k] for k in ("config", "neuron", "history", "test_accuracy", "spikes_per_sample",
                                          "firing_rate_per_bin")}
        io.write_json(Path(out) / "result.json", summary)
        figs.learning_curve(Path(out) / "result.json", Path(out) / "learning_curve.png")
    except IonspikeError as exc:
        _fail(exc)
    err.print(f"test accuracy {result['test_accuracy']:.4f}, {result['spikes_per_sample']:.1f} spikes per sample; "
              f"wrote {out}/result.json, checkpoint.npz, learning_curve.png")


@app.command()
def ablate(
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (results.json, results.csv, figures, runs/)."),
    task: List[str] = typer.Option(["mnist1d"], help="Task(s): mnist1d, digits, working_memory or all (repeatable)."),
    variants: str = typer.Option("all", help="Comma-separated variants or all: full, no_leak, no_ip, no_refractory, "
                                 "long_refractory, deterministic, high_noise, low_threshold, high_threshold, lif, alif."),
    seeds: int = typer.Option(3, help="Seeds per variant."),
    full: bool = typer.Option(False, "--full", help="Paper-grade settings (128 hidden, 30 epochs, all data): hours."),
    hidden: Optional[int] = typer.Option(None, help="Override the hidden size of the chosen settings."),
    epochs: Optional[int] = typer.Option(None, help="Override the epochs of the chosen settings."),
    n_train: Optional[int] = typer.Option(None, help="Override the training-set size of the chosen settings."),
    read_energy: str = typer.Option("1 fJ", help="Energy of one synapse read in the crossbars."),
):
    """Train every variant of the neuron (and LIF/ALIF) x seeds x tasks; accuracy, rate, energy, significance."""
    from ionspike.network import ablate as A
    from ionspike.report import network as figs

    try:
        mode = "full" if full else "quick"
        overrides = {k: v for k, v in {"hidden": hidden, "epochs": epochs, "n_train": n_train}.items() if v is not None}
        names = A.resolve_variants(variants.split(","))
        tasks_ = A.resolve_tasks(task)
        settings = {**A.SETTINGS[mode], **overrides}
        total = len(names) * seeds * len(tasks_) * settings["epochs"]
        with _epoch_bar(total, "ablate") as bar:
            job = bar.add_task("ablation", total=total)
            results = A.ablate(tasks_, names, seeds, mode=mode, out=out, overrides=overrides, read_energy=read_energy,
                               progress=lambda d, n, label: bar.update(job, completed=d, description=label))
        figs.plot_ablation(Path(out) / "results.json", Path(out))
    except IonspikeError as exc:
        _fail(exc)
    for t, entry in results["tasks"].items():
        err.print(f"[bold]{t}[/]")
        for v, s in entry["variants"].items():
            std = f" ± {s['accuracy_std']:.3f}" if s["accuracy_std"] is not None else ""
            p = f"  p = {s['p_value_vs_full']:.3g}" if s["p_value_vs_full"] is not None else ""
            err.print(f"  {v:16s} {s['accuracy_mean']:.3f}{std}  rate {s['firing_rate_per_bin']:.4f}/bin{p}")
    err.print(f"wrote {out}/results.json, results.csv and figures")


@app.command()
def reproduce(
    out: Path = typer.Option(Path("report"), "--out", "-o", help="Report folder (index.html, summary.json, stages/)."),
    quick: bool = typer.Option(True, "--quick/--full", help="Quick (minutes on a laptop) or paper-grade settings (hours)."),
    tiny: bool = typer.Option(False, "--tiny", hidden=True, help="Test scale (seconds per stage)."),
    measured: Optional[Path] = typer.Option(None, help="Folder of measured data in the shared/data layout (calibration)."),
    force: bool = typer.Option(False, "--force", help="Rerun finished stages instead of reusing them."),
):
    """The whole study: characteristics, energy, published vs ours, calibration, RSNN ablation -> one report."""
    from ionspike import reproduce as R

    mode = "tiny" if tiny else ("quick" if quick else "full")
    try:
        with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                      TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=err) as bar:
            jobs = {name: bar.add_task(f"{name:18s}", total=1.0) for name in R.STAGES}
            summary = R.run(out, mode=mode, measured=measured, force=force,
                            progress=lambda name, f: bar.update(jobs[name], completed=f))
    except IonspikeError as exc:
        _fail(exc)
    pub = summary["stages"]["published"]
    err.print(f"published numbers within tolerance: {pub['passed']}/{pub['total']}; wrote {out}/index.html and summary.json")


@app.command()
def presets(name: Optional[str] = typer.Argument(None, help="Show one preset's resolved parameters (SI).")):
    """List the built-in presets, or show one."""
    import json

    import ionspike as isp

    try:
        if name is None:
            for n in isp.presets.names():
                p = isp.presets.load(n)
                typer.echo(f"{n:12s} {p.description}")
            return
        p = isp.presets.load(name)
    except isp.IonspikeError as exc:
        _fail(exc)
    typer.echo(json.dumps({"name": p.name, "description": p.description, "dt_s": p.dt,
                           "defaults": p.defaults, "params": p.params.to_dict()}, indent=2))


if __name__ == "__main__":
    app()
