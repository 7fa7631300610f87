"""``TupeTokenizer``: the project's text pipeline as a transformers tokenizer.

Per text it does exactly what ``tupe-preprocess glue`` does to a row (and ``TupeHub.encode``):
the GLUE cleaning (pre-cleanup, Moses punctuation normalisation, lower-casing unless
``cased``, punctuation splitting, ``<url>``/``<email>``/``<file>`` placeholders, Moses
tokenisation), then the fastBPE codes (``bpe-code``) and the ``dict.txt`` ids. Inputs are laid
out as the finetuning data: ``<s> A </s>`` and ``<s> A </s> </s> B </s>``; ``<mask>`` is the
last id (appended by the masked-LM task), padding id 1 on the right.

Not supported: ``return_offsets_mapping`` (a slow, Python tokenizer in transformers' terms;
Moses normalisation also rewrites characters, so offsets into the raw text are not defined)
and ``token_type_ids`` (TUPE has no segment embeddings).
"""

from __future__ import annotations

import os
import shutil
from typing import Optional

from transformers import PreTrainedTokenizer

from ..data.bpe import BPE
from ..data.dictionary import MASK, Dictionary
from ..preprocess.text import glue_clean

VOCAB_FILES_NAMES = {"dict_file": "dict.txt", "bpe_file": "bpe-code"}


class TupeTokenizer(PreTrainedTokenizer):
    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]
    padding_side = "right"

    def __init__(self, dict_file: str, bpe_file: str, cased: bool = False, bos_token: str = "<s>",
                 eos_token: str = "</s>", sep_token: str = "</s>", cls_token: str = "<s>",
                 unk_token: str = "<unk>", pad_token: str = "<pad>", mask_token: str = MASK, **kwargs):
        self.dictionary = Dictionary.load(dict_file)
        self.bpe = BPE.from_file(bpe_file)
        self.dict_file, self.bpe_file = dict_file, bpe_file
        self.cased = cased
        # <mask> is appended after the dictionary by the masked-LM task (V = len(dict) + 1).
        self.mask_id = self.dictionary.index(MASK) if MASK in self.dictionary else len(self.dictionary)
        kwargs.setdefault("model_max_length", 512)
        kwargs["padding_side"] = kwargs.get("padding_side", "right")
        super().__init__(bos_token=bos_token, eos_token=eos_token, sep_token=sep_token, cls_token=cls_token,
                         unk_token=unk_token, pad_token=pad_token, mask_token=mask_token, cased=cased, **kwargs)

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        return len(self.dictionary) + (0 if MASK in self.dictionary else 1)

    def get_vocab(self) -> dict[str, int]:
        vocab = {sym: i for i, sym in enumerate(self.dictionary.symbols)}
        vocab[MASK] = self.mask_id
        return vocab

    def _convert_token_to_id(self, token: str) -> int:
        return self.mask_id if token == MASK else self.dictionary.index(token)

    def _convert_id_to_token(self, index: int) -> str:
        return MASK if index == self.mask_id else self.dictionary[index]

    # ------------------------------------------------------------------ text
    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return self.bpe.apply_line(glue_clean(text, lowercase=not self.cased)).split()

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return (" ".join(tokens) + " ").replace("@@ ", "").strip()

    def build_inputs_with_special_tokens(self, token_ids_0: list[int],
                                         token_ids_1: Optional[list[int]] = None) -> list[int]:
        """``<s> A </s>`` or ``<s> A </s> </s> B </s>``, as the finetuning data."""
        bos, eos = self.dictionary.bos(), self.dictionary.eos()
        ids = [bos] + token_ids_0 + [eos]
        return ids if token_ids_1 is None else ids + [eos] + token_ids_1 + [eos]

    def get_special_tokens_mask(self, token_ids_0: list[int], token_ids_1: Optional[list[int]] = None,
                                already_has_special_tokens: bool = False) -> list[int]:
        if already_has_special_tokens:
            special = {self.dictionary.bos(), self.dictionary.eos(), self.dictionary.pad()}
            return [int(i in special) for i in token_ids_0]
        mask = [1] + [0] * len(token_ids_0) + [1]
        return mask if token_ids_1 is None else mask + [1] + [0] * len(token_ids_1) + [1]

    def create_token_type_ids_from_sequences(self, token_ids_0: list[int],
                                             token_ids_1: Optional[list[int]] = None) -> list[int]:
        return [0] * len(self.build_inputs_with_special_tokens(token_ids_0, token_ids_1))

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 4 if pair else 2

    def _encode_plus(self, *args, return_offsets_mapping: bool = False, **kwargs):
        if return_offsets_mapping:
            raise NotImplementedError(
                "TupeTokenizer cannot return offsets: Moses normalisation rewrites the text before BPE, "
                "so token offsets into the raw string are not defined")
        return super()._encode_plus(*args, **kwargs)

    # ------------------------------------------------------------------ files
    def save_vocabulary(self, save_directory: str, filename_prefix: Optional[str] = None) -> tuple[str, str]:
        """``dict.txt`` and ``bpe-code``, byte for byte the files the tokenizer was built from."""
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        out = []
        for key, src in (("dict_file", self.dict_file), ("bpe_file", self.bpe_file)):
            dest = os.path.join(save_directory, prefix + VOCAB_FILES_NAMES[key])
            if os.path.abspath(src) != os.path.abspath(dest):
                shutil.copyfile(src, dest)
            out.append(dest)
        return tuple(out)
