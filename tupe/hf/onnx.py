"""ONNX export of the transformers classes (``torch.onnx.export`` with the dynamo exporter; no
optimum). Batch and length stay dynamic, and the positional terms (TUPE's untied correlation,
the relative buckets) are computed inside the graph, so one file serves every length up to
``max_positions``::

    from tupe.hf.onnx import export_onnx
    export_onnx(AutoModelForSequenceClassification.from_pretrained("hf_dir"), "model.onnx")
    # onnxruntime: session.run(None, {"input_ids": ids, "attention_mask": mask}) -> [logits]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import torch
from torch import nn

from .modeling import TupePreTrainedModel

#: the first output of each class, by class name
OUTPUT_NAMES = {"TupeHfModel": ["last_hidden_state"], "TupeForMaskedLM": ["logits"],
                "TupeForSequenceClassification": ["logits"], "TupeForTokenClassification": ["logits"],
                "TupeForQuestionAnswering": ["start_logits", "end_logits"]}


class _Positional(nn.Module):
    """(input_ids, attention_mask) -> the model's output tensors (ONNX wants positional tensors)."""

    def __init__(self, model: TupePreTrainedModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        names = OUTPUT_NAMES[type(self.model).__name__]
        return tuple(out[n] for n in names)


def export_onnx(model: TupePreTrainedModel, path: Union[str, os.PathLike], opset: int = 18) -> Path:
    """Write ``path`` (inputs ``input_ids``, ``attention_mask``: int64 (batch, length))."""
    path = Path(path)
    name = type(model).__name__
    if name not in OUTPUT_NAMES:
        raise TypeError(f"export_onnx takes a tupe.hf model, got {name}")
    model = model.eval()
    T = min(8, model.config.max_positions)
    ids = torch.full((2, T), 7, dtype=torch.long)
    ids[:, 0], ids[:, -1] = model.config.bos_token_id, model.config.eos_token_id
    mask = torch.ones_like(ids)
    batch = torch.export.Dim("batch", max=4096)
    length = torch.export.Dim("length", max=model.config.max_positions)
    shapes = {"input_ids": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(_Positional(model).eval(), (ids, mask), str(path), dynamo=True, opset_version=opset,
                          input_names=["input_ids", "attention_mask"], output_names=OUTPUT_NAMES[name],
                          dynamic_shapes=shapes, verbose=False)
    return path
