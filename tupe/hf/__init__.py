"""TUPE in Hugging Face transformers. ``import tupe.hf`` registers every class with the Auto
API (``AutoConfig``, ``AutoModel``, ``AutoModelForMaskedLM``,
``AutoModelForSequenceClassification``, ``AutoModelForTokenClassification``,
``AutoModelForQuestionAnswering``, ``AutoTokenizer``) under ``model_type = "tupe"``::

    import tupe.hf
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    model = AutoModelForMaskedLM.from_pretrained("tupe-r-hf")     # tupe-convert CKPT tupe-r-hf --hf
    tok = AutoTokenizer.from_pretrained("tupe-r-hf")

Needs the ``hf`` extra: ``pip install 'tupe[hf]'``. ``import tupe`` works without it.
"""

try:
    import transformers  # noqa: F401
except ImportError as e:   # pragma: no cover - exercised only without the extra
    raise ImportError("tupe.hf needs Hugging Face transformers: pip install 'tupe[hf]' "
                      "(transformers, accelerate, peft, onnx, onnxruntime)") from e

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

from ..model.padding import PaddingError
from .configuration import TupeHfConfig
from .export import export_hf
from .modeling import (
    TupeForMaskedLM,
    TupeForQuestionAnswering,
    TupeForSequenceClassification,
    TupeForTokenClassification,
    TupeHfModel,
    TupePreTrainedModel,
)
from .tokenization import TupeTokenizer

#: Module names LoRA (peft) can target: the fused q/k/v projection, the attention output and the FFN.
LORA_TARGET_MODULES = ["in_proj", "out_proj", "fc1", "fc2"]


def _register() -> None:
    AutoConfig.register("tupe", TupeHfConfig, exist_ok=True)
    for auto, cls in ((AutoModel, TupeHfModel), (AutoModelForMaskedLM, TupeForMaskedLM),
                      (AutoModelForSequenceClassification, TupeForSequenceClassification),
                      (AutoModelForTokenClassification, TupeForTokenClassification),
                      (AutoModelForQuestionAnswering, TupeForQuestionAnswering)):
        auto.register(TupeHfConfig, cls, exist_ok=True)
    AutoTokenizer.register(TupeHfConfig, tokenizer_class=TupeTokenizer, exist_ok=True)


_register()

__all__ = ["LORA_TARGET_MODULES", "PaddingError", "TupeForMaskedLM", "TupeForQuestionAnswering",
           "TupeForSequenceClassification", "TupeForTokenClassification", "TupeHfConfig", "TupeHfModel",
           "TupePreTrainedModel", "TupeTokenizer", "export_hf"]
