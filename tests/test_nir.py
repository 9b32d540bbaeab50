"""NIR export and import of trained networks: real `nir` files, read back by `nir.read` and by ionspike."""

from __future__ import annotations

import json
import math

import jax.numpy as jnp
import nir
import numpy as np
import pytest
from typer.testing import CliRunner

from ionspike.cli import app
from ionspike.errors import ParameterError
from ionspike.network import cells, nir_io
from ionspike.network import train as T
from ionspike.network.neuron import Bin

TINY = dict(task="mnist1d", hidden=16, epochs=2, n_train=192, n_test=120, batch=64)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("nir")
    out = {}
    for neuron in ("lif", "1m1t1r", "alif"):
        cfg = T.TrainConfig(neuron=neuron, **(TINY if neuron != "1m1t1r" else dict(TINY, epochs=1)))
        res = T.train(cfg, root / neuron)
        out[neuron] = (root / neuron, res)
    return root, out


def _cli(*args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    return r.exit_code, r.output


def test_lif_network_round_trip_through_a_nir_file_is_exact(trained):
    root, runs = trained
    folder, res = runs["lif"]
    code, text = _cli("export", "nir", folder, "-o", root / "lif.nir")
    assert code == 0, text
    graph = nir.read(str(root / "lif.nir"))                        # the real reader
    kinds = {k: type(v).__name__ for k, v in graph.nodes.items()}
    assert kinds == {"input": "Input", "w_in": "Affine", "hidden": "LIF", "w_rec": "Linear", "w_out": "Linear",
                     "readout": "LI", "output": "Output"}
    assert np.shape(graph.nodes["w_in"].weight) == (16, 1) and np.shape(graph.nodes["w_rec"].weight) == (16, 16)
    assert np.shape(graph.nodes["w_out"].weight) == (10, 16) and np.shape(graph.nodes["hidden"].tau) == (16,)
    assert ("w_rec", "hidden") in graph.edges and ("hidden", "w_rec") in graph.edges
    # NIR's continuous LIF with the input held per bin is ionspike's per-bin LIF: r (1 - e^{-T/tau}) = 1
    tau, r = float(graph.nodes["hidden"].tau[0]), float(graph.nodes["hidden"].r[0])
    assert r * (1 - math.exp(-float(graph.metadata["dt"]) / tau)) == pytest.approx(1.0, rel=1e-12)
    code, text = _cli("import", "nir", root / "lif.nir", "--out", root / "lif_back")
    assert code == 0, text
    back = json.loads((root / "lif_back" / "result.json").read_text())
    assert back["cell"]["name"] == "lif"
    assert back["test_accuracy"] == res["test_accuracy"]           # exactly, not approximately
    assert back["spikes_per_sample"] == pytest.approx(res["spikes_per_sample"], rel=1e-6)


def test_device_network_exports_as_a_fitted_lif_and_states_its_error(trained):
    root, runs = trained
    folder, res = runs["1m1t1r"]
    code, text = _cli("export", "nir", folder, "-o", root / "dev.nir")
    assert code == 0, text
    assert "warning: not exact" in text and "nearest NIR LIF" in text
    graph = nir.read(str(root / "dev.nir"))
    hidden = graph.nodes["hidden"]
    assert type(hidden).__name__ == "LIF" and hidden.metadata["approximates"] == "1M1T1R neuron"
    device = json.loads(str(hidden.metadata["device"]))
    assert device["params"]["memristor"]["mu"] > 0                  # the device travels with the graph
    report = json.loads(str(graph.metadata["report"]))
    assert report["exact"] is False and report["model_test_accuracy"] == res["test_accuracy"]
    fit = report["fit"]
    # the fit follows the device's response where it is monotone: silent at low drive, firing at high drive
    dev, lif = np.array(fit["device_count"]), np.array(fit["lif_count"])
    assert dev[0] == lif[0] == 0 and dev[-1] > 0 and lif[-1] > 0
    code, text = _cli("import", "nir", root / "dev.nir", "--out", root / "dev_back")
    assert code == 0, text
    back = json.loads((root / "dev_back" / "result.json").read_text())
    assert back["cell"]["name"] == "nir-lif"
    assert back["test_accuracy"] == report["nir_test_accuracy"]    # the stated approximation, reproduced


def test_alif_export_says_the_adaptation_is_dropped(trained):
    root, runs = trained
    graph, report = nir_io.to_graph(runs["alif"][0])
    assert report["exact"] is False and "adaptation" in report["dropped"][0]
    net, _, _ = nir_io.from_graph(graph)
    assert isinstance(net.cell, cells.LIFCell)


def test_nir_lif_cell_is_the_exact_solution_with_the_input_held():
    """tau dv/dt = (v_leak - v) + r I over one bin with I held, against the closed form."""
    T_bin, tau, r, v_leak = 2e-3, 7e-3, 3.0, -0.2
    cell = cells.NIRLIFCell(Bin(), (tau,), (r,), (v_leak,), (100.0,), (0.0,))
    v = jnp.asarray([[0.3]], jnp.float32)
    drive = 0.45
    v1, s = cell.step(v, jnp.asarray([[drive]], jnp.float32), None, {})
    target = v_leak + r * drive + (0.3 - v_leak - r * drive) * math.exp(-T_bin / tau)
    assert float(v1[0, 0]) == pytest.approx(target, rel=1e-6) and float(s[0, 0]) == 0.0
    # threshold and reset to v_reset (NIR's rule) or by subtraction (ionspike's LIF)
    to = cells.NIRLIFCell(Bin(), (tau,), (r,), (0.0,), (1.0,), (-0.5,), reset="to")
    sub = cells.NIRLIFCell(Bin(), (tau,), (r,), (0.0,), (1.0,), (-0.5,), reset="subtract")
    big = jnp.asarray([[5.0]], jnp.float32)
    (va, sa), (vb, sb) = to.step(jnp.zeros((1, 1)), big, None, {}), sub.step(jnp.zeros((1, 1)), big, None, {})
    v_pre = r * 5.0 * (1 - math.exp(-T_bin / tau))
    assert float(sa[0, 0]) == float(sb[0, 0]) == 1.0
    assert float(va[0, 0]) == pytest.approx(-0.5) and float(vb[0, 0]) == pytest.approx(v_pre - 1.0, rel=1e-6)


def test_bad_nir_input_is_refused_clearly(trained, tmp_path):
    root, _ = trained
    code, text = _cli("export", "nir", tmp_path, "-o", tmp_path / "x.nir")
    assert code == 2 and "RUN_DIR" in text and "holds no model.npz" in text
    assert not (tmp_path / "x.nir").exists()
    (tmp_path / "not.nir").write_text("hello")
    code, text = _cli("import", "nir", tmp_path / "not.nir", "--out", tmp_path / "o")
    assert code == 2 and "is not a readable NIR file" in text
    graph = nir.read(str(root / "lif.nir")) if (root / "lif.nir").exists() else nir_io.to_graph(root / "lif")[0]
    h = graph.nodes["hidden"]
    graph.nodes["hidden"] = nir.CubaLIF(tau_syn=h.tau, tau_mem=h.tau, r=h.r, v_leak=h.v_leak, v_threshold=h.v_threshold)
    with pytest.raises(ParameterError, match="hidden node is a CubaLIF: allowed LIF"):
        nir_io.from_graph(graph)
    with pytest.raises(ParameterError, match="tau = -1.0 s is out of range"):
        cells.NIRLIFCell(Bin(), (-1.0,), (1.0,), (0.0,), (1.0,), (0.0,))


def test_train_results_carry_synaptic_operations_in_neurobench_form(trained):
    _, runs = trained
    res = runs["lif"][1]
    ops, spikes, bins = res["synops"], res["spikes_per_sample"], 40 * 2
    assert ops["spikes_per_layer"]["hidden"] == spikes
    assert ops["effective_acs"] == pytest.approx(spikes * (16 + 10))            # each spike: 16 recurrent + 10 readout
    assert ops["effective_macs"] == bins * 1 * 16                              # the analog input crossbar, every bin
    assert ops["dense"] == bins * (1 * 16 + 16 * 16 + 16 * 10)
    assert ops["effective_acs"] < ops["dense"]
