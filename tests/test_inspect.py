"""lstmkit.inspect: the step-by-step recomputation reproduces the layers, contributions per token,
the heatmap PNG, the CLI. Tiny untrained runs from tests.test_bundle (no data set)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from test_bundle import make_run

from lstmkit.bundle import load
from lstmkit.cli import main
from lstmkit.inspect import inspect_text, plot_inspection, summarize, trace_recurrent

TEXT = "a good film, great plot but xyz boring acting rare"
PNG_HEADER = b"\x89PNG\r\n\x1a\n"

ARCHS: dict[str, dict[str, Any]] = {
    "lstm": {},
    "lstm-2x-bidir": {"num_layers": 2, "bidirectional": True, "pooling": "mean"},
    "lstm-peephole-ln-proj": {
        "cell_options": {"peephole": True, "layer_norm": True, "proj_size": 4},
        "pooling": "max",
    },
    "gru-2x": {"cell": "gru", "num_layers": 2},
    "gru-reset-before-bidir": {
        "cell": "gru",
        "bidirectional": True,
        "cell_options": {"reset_after": False},
    },
    "rnn": {"cell": "rnn", "pooling": "attention"},
}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_recomputed_states_reproduce_the_layer(arch: str, tmp_path: Path) -> None:
    predictor = load(make_run(tmp_path / "run", seed=3, init="torch", **ARCHS[arch]))
    model = predictor.model
    ids = predictor.encode([TEXT])[0]
    with torch.no_grad():
        feats, _ = model.features(torch.tensor([ids]))
        out, state = model.rnn(feats)
    traces = trace_recurrent(model, feats)
    rnn = model.rnn
    assert len(traces) == rnn.num_layers * rnn.num_directions
    top = torch.cat([t.h for t in traces[-rnn.num_directions :]], -1)
    assert (top - out[0]).abs().max().item() <= 1e-5
    # final states of every layer and direction: h_n (and c_n for LSTM)
    h_n = state[0] if isinstance(state, tuple) else state
    for k, tr in enumerate(traces):
        last = tr.h[-1] if tr.direction == "forward" else tr.h[0]
        assert (last - h_n[k, 0]).abs().max().item() <= 1e-5
        if tr.c is not None:
            assert isinstance(state, tuple)
            c_last = tr.c[-1] if tr.direction == "forward" else tr.c[0]
            assert (c_last - state[1][k, 0]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("arch", ["lstm", "lstm-2x-bidir", "gru-2x", "rnn"])
def test_inspect_text_shapes_and_prediction(arch: str, tmp_path: Path) -> None:
    predictor = load(make_run(tmp_path / "run", **ARCHS[arch]))
    result = inspect_text(predictor, TEXT)
    n = len(predictor.encode([TEXT])[0])
    assert len(result["tokens"]) == len(result["words"]) == len(result["ids"]) == n
    assert len(result["contributions"]) == n
    assert result["tokens"][0] == "<start>" and result["words"][0] == "<start>"
    assert result["tokens"][1] == "<oov>" and result["words"][1] == "a"  # unknown word
    assert result["tokens"][-1] == "<oov>" and result["words"][-1] == "rare"  # beyond embedding
    assert result["tokens"][2] == "good"
    assert result["contributions"][1] == 0.0  # replacing OOV by OOV changes nothing
    expected = predictor.predict([TEXT])[0]
    assert result["label"] == expected["label"]
    for label, p in expected["scores"].items():
        assert result["scores"][label] == pytest.approx(p, abs=1e-6)
    assert result["probability"] == pytest.approx(result["scores"][result["label"]])
    gates = {"lstm": {"input", "forget", "output"}, "gru": {"reset", "update"}, "rnn": set()}
    cell = predictor.model.config.cell
    assert result["cell"] == cell and result["contribution_method"] == "occlusion"
    rnn = predictor.model.rnn
    assert len(result["layers"]) == rnn.num_layers * rnn.num_directions
    for layer in result["layers"]:
        assert set(layer["gates"]) == gates[cell]
        for values in layer["gates"].values():
            assert len(values) == n and all(0.0 <= v <= 1.0 for v in values)
        assert len(layer["hidden_norm"]) == n
        assert (layer["cell_norm"] is not None) == (cell == "lstm")


def test_contribution_is_the_occlusion_drop(tmp_path: Path) -> None:
    predictor = load(make_run(tmp_path / "run", seed=1, init="torch"))
    result = inspect_text(predictor, "good film boring plot")
    label = result["label"]
    # replace token 3 ("boring") by an unknown word: the same ids as occluding it
    occluded = predictor.predict(["good film qqqq plot"])[0]["scores"][label]
    assert result["contributions"][3] == pytest.approx(result["probability"] - occluded, abs=1e-6)


def test_conv_models_are_refused(tmp_path: Path) -> None:
    predictor = load(make_run(tmp_path / "run", conv_filters=4, conv_kernel=2, pool_size=2))
    with pytest.raises(ValueError, match="Conv1D"):
        inspect_text(predictor, TEXT)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    predictor = load(make_run(tmp_path / "run", num_layers=2, bidirectional=True))
    result = inspect_text(predictor, TEXT)
    path = plot_inspection(result, tmp_path / "out" / "inspect.png")
    assert path.read_bytes()[:8] == PNG_HEADER


def test_plot_cuts_long_texts(tmp_path: Path) -> None:
    predictor = load(make_run(tmp_path / "run", cell="gru"))
    predictor.maxlen = None  # no truncation: 301 tokens
    result = inspect_text(predictor, " ".join(["good film"] * 150))
    assert len(result["tokens"]) == 301
    path = plot_inspection(result, tmp_path / "long.png", max_tokens=50)
    assert path.read_bytes()[:8] == PNG_HEADER


def test_summary_lists_label_tokens_and_forget_gates(tmp_path: Path) -> None:
    predictor = load(make_run(tmp_path / "run", num_layers=2))
    text = summarize(inspect_text(predictor, TEXT))
    assert text.startswith("label: ")
    assert "top 5 tokens: " in text
    assert "layer 0 forward: mean forget gate" in text
    assert "layer 1 forward: mean forget gate" in text


def test_cli_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "run")
    out = tmp_path / "heat.png"
    assert main(["inspect", str(run), TEXT, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "label: " in printed and "mean forget gate" in printed and str(out) in printed
    assert out.read_bytes()[:8] == PNG_HEADER


def test_cli_inspect_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "run")
    assert main(["inspect", str(run), "   "]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing"), TEXT]) == 2
    assert "lstmkit inspect: error:" in capsys.readouterr().err


def test_units_are_bounded_to_the_first_tokens() -> None:
    """unit_rows: H rows of at most MAX_UNIT_TOKENS values, rounded to UNIT_DIGITS decimals."""
    from lstmkit.inspect import MAX_UNIT_TOKENS, UNIT_DIGITS, unit_rows

    gate = torch.rand(MAX_UNIT_TOKENS + 40, 3, generator=torch.Generator().manual_seed(0))
    rows = unit_rows(gate, min(gate.shape[0], MAX_UNIT_TOKENS))
    assert len(rows) == 3 and {len(r) for r in rows} == {MAX_UNIT_TOKENS}
    for u, row in enumerate(rows):
        assert row == [round(v, UNIT_DIGITS) for v in gate[:MAX_UNIT_TOKENS, u].tolist()]


def test_inspect_text_units_match_the_trace_of_every_direction(tmp_path: Path) -> None:
    predictor = load(make_run(tmp_path / "run", seed=3, **ARCHS["lstm-2x-bidir"]))
    result = inspect_text(predictor, TEXT)
    ids = predictor.encode([TEXT])[0]
    with torch.no_grad():
        feats, _ = predictor.model.features(torch.tensor([ids], dtype=torch.long))
        traces = trace_recurrent(predictor.model, feats)
    assert result["unit_tokens"] == len(ids)
    assert len(result["layers"]) == len(traces) == 4
    for layer, trace in zip(result["layers"], traces, strict=True):
        assert (layer["layer"], layer["direction"]) == (trace.layer, trace.direction)
        for gate, rows in layer["units"].items():
            assert torch.tensor(rows) == pytest.approx(trace.gates[gate].T, abs=5.1e-5)
    gru = inspect_text(load(make_run(tmp_path / "gru", cell="gru")), TEXT)
    assert set(gru["layers"][0]["units"]) == {"reset", "update"}
    rnn = inspect_text(load(make_run(tmp_path / "rnn", cell="rnn")), TEXT)
    assert rnn["layers"][0]["units"] == {}
