"""ONNX export of a :class:`~lstmkit.models.SequenceClassifier`.

The exported graph takes ``tokens`` int64 ``(B, T)`` (post-padded with 0, as
:func:`lstmkit.data.batching.collate_tokens` makes them) and ``lengths`` int64 ``(B,)``
(``1 <= lengths <= T``), both with dynamic ``B`` and ``T``, and returns ``probabilities``
float32 ``(B, C)`` — what :meth:`SequenceClassifier.predict_proba` returns (``C = 2`` for the
sigmoid head: ``[1 - p, p]``).

How: torch's TorchScript exporter (``torch.onnx.export(..., dynamo=False)``) maps the fused
recurrent op (``aten::lstm`` / ``aten::gru`` / ``aten::rnn_*``) to ONNX's LSTM / GRU / RNN op,
whose loop over time is dynamic. (The dynamo exporter traces ``torch.export``, which unrolls the
recurrence over the example's length, so its graph is fixed to one ``T``.) The model's own
variable-length path (``pack_padded_sequence`` / the 'split' strategy) does not trace, so the
export runs an equivalent, trace-friendly computation (:class:`lstmkit.models.PaddedClassifier`,
also the inference forward of serving):

- every layer and every direction is one fused call over the whole post-padded batch, without
  packing. For the forward direction the output at a real step ``t < lengths[b]`` depends on real
  tokens only, so it is exact; the padded steps hold garbage that nothing reads.
- the reverse direction runs forward over each row's real tokens reversed in place (pads stay
  at the end), then is reversed back — the same trick as the layer's 'split' strategy — so its
  outputs at real steps are exact too.
- pooling 'last' gathers the last layer's output at ``lengths - 1`` (forward direction; the
  reverse direction's final state is its output at step 0); the other poolings run the model's
  own :meth:`SequenceClassifier.pool` with the lengths mask, which only reads real steps.

Refused, with a ``ValueError`` naming the option: real-valued input (``vocab_size=None``),
``conv_filters > 0``, recurrent layers the fused op cannot run in eval mode (peephole,
layer_norm, zoneout, non-default activations, ... — see ``Recurrent.fused_blockers``),
``proj_size`` (ONNX's LSTM has no projection), and ``padding='pre'`` layers.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

from lstmkit.errors import ExportError
from lstmkit.extras import needs
from lstmkit.models import PaddedClassifier, SequenceClassifier
from lstmkit.models import padded_blockers as export_blockers
from lstmkit.runs import load_run

INPUT_NAMES = ("tokens", "lengths")
OUTPUT_NAMES = ("probabilities",)
DEFAULT_OPSET = 17


def check_exportable(model: SequenceClassifier) -> None:
    """Raise :class:`ExportError` naming every option :func:`export_onnx` cannot export."""
    if not isinstance(model, SequenceClassifier):
        raise TypeError(f"expected a SequenceClassifier, got {type(model).__name__}")
    blockers = export_blockers(model)
    if blockers:
        raise ExportError(
            f"cannot export this model to ONNX exactly: {'; '.join(blockers)} "
            "is not supported by lstmkit.export"
        )


def _example_inputs(model: SequenceClassifier) -> tuple[Tensor, Tensor]:
    """A small post-padded batch (B=3, T=7) with distinct lengths for tracing."""
    vocab = int(model.config.vocab_size or 2)
    lengths = torch.tensor([7, 4, 1], dtype=torch.int64)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, vocab, (3, 7), generator=gen, dtype=torch.int64)
    tokens = tokens * (torch.arange(7)[None, :] < lengths[:, None])
    return tokens, lengths


def export_onnx(
    model: SequenceClassifier, path: str | os.PathLike[str], *, opset: int | None = None
) -> Path:
    """Export ``model`` to an ONNX file at ``path`` (written atomically) and return the path.

    Inputs ``tokens`` int64 (B, T), post-padded with 0, and ``lengths`` int64 (B,) with
    ``1 <= lengths <= T``; output ``probabilities`` float32 (B, C). ``B`` and ``T`` are dynamic.
    The graph is checked with ``onnx.checker`` before it replaces ``path``.

    Args:
        model: the classifier; exported in eval mode on CPU in float32 (a copy: ``model`` is
            left as it was).
        path: destination ``.onnx`` file; its directory is created.
        opset: ONNX opset version (default :data:`DEFAULT_OPSET`).

    Raises:
        ExportError: (a ``ValueError``) naming the options that cannot be exported exactly
            (see :func:`export_blockers`).
    """
    check_exportable(model)
    with needs("export", "the ONNX export"):
        import onnx  # optional dependency: pip install 'lstmkit[export]'

    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    graph = PaddedClassifier(copy.deepcopy(model).float().cpu().eval()).eval()
    example = _example_inputs(model)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TorchScript-exporter deprecation / tracer notes
            torch.onnx.export(
                graph,
                example,
                str(tmp),
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={
                    "tokens": {0: "batch", 1: "length"},
                    "lengths": {0: "batch"},
                    "probabilities": {0: "batch"},
                },
                opset_version=opset or DEFAULT_OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
        onnx.checker.check_model(onnx.load(str(tmp)), full_check=True)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return dest


def export_run_onnx(
    run_dir: str | os.PathLike[str], path: str | os.PathLike[str], *, opset: int | None = None
) -> Path:
    """Export the model of a finished run directory (see :func:`lstmkit.runs.load_run`)."""
    model, _, _ = load_run(Path(run_dir))
    return export_onnx(model, path, opset=opset)
