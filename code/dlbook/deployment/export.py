"""Exporting a model (chapter ``deployment``): ``torch.export`` and ONNX,
an ONNX Runtime session pinned to one thread, a latency measurement, and a
model card (Mitchell et al., 2019).
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch

__all__ = ["export_program", "export_onnx", "onnx_session", "median_latency",
           "ModelCard"]


def export_program(model: torch.nn.Module, example: torch.Tensor,
                   dynamic_batch: bool = True) -> torch.export.ExportedProgram:
    """Trace ``model`` on ``example (B, ...)`` into an ``ExportedProgram``
    (an ATen graph with its weights), the batch dimension left symbolic."""
    if example.ndim < 1 or len(example) < 2:
        raise ValueError("example needs a batch dimension of size >= 2")
    shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    return torch.export.export(model.eval(), (example,), dynamic_shapes=shapes)


def export_onnx(model: torch.nn.Module, example: torch.Tensor,
                path: str | Path) -> Path:
    """Write ``model`` as ONNX to ``path`` (input ``x``, output ``logits``, a
    symbolic batch) and check the file with the ``onnx`` checker."""
    import onnx  # optional dependency, imported when used

    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"path must end in .onnx, got {path}")
    torch.onnx.export(model.eval(), (example,), str(path), input_names=["x"],
                      output_names=["logits"], dynamo=True,
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    onnx.checker.check_model(onnx.load(str(path)))
    return path


def onnx_session(path: str | Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU inference session with ``threads`` intra-op
    threads and one inter-op thread."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), opts,
                                providers=["CPUExecutionProvider"])


def median_latency(fn: Callable[[], Any], repeats: int = 50,
                   warmup: int = 5) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls after
    ``warmup`` calls (the median resists the noise of a shared machine)."""
    if repeats < 1 or warmup < 0:
        raise ValueError("need repeats >= 1 and warmup >= 0")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """A model card in the sections of Mitchell et al. (2019); ``metrics``
    and ``factors`` map a name to an already formatted, computed value."""

    name: str
    details: str
    intended_use: str
    factors: dict[str, str]
    metrics: dict[str, str]
    data: str
    ethics: str
    caveats: tuple[str, ...]

    def to_markdown(self) -> str:
        """The card as Markdown: a heading, prose sections and tables."""
        def table(d: dict[str, str]) -> list[str]:
            return ["| quantity | value |", "| --- | --- |",
                    *[f"| {k} | {v} |" for k, v in d.items()]]

        lines = [f"**Model card: {self.name}**", "",
                 f"*Model details.* {self.details}", "",
                 f"*Intended use.* {self.intended_use}", "",
                 f"*Training and evaluation data.* {self.data}", "",
                 "*Metrics.*", "", *table(self.metrics), "",
                 "*Factors (disaggregated).*", "", *table(self.factors), "",
                 f"*Ethical considerations.* {self.ethics}", "",
                 "*Caveats and recommendations.*", "",
                 *[f"- {c}" for c in self.caveats]]
        return "\n".join(lines)
