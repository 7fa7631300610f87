"""Data formats: fairseq dictionary, memory-mapped binarized datasets, BPE."""

from .dictionary import MASK, SPECIALS, Dictionary, DictionaryError

__all__ = ["MASK", "SPECIALS", "Dictionary", "DictionaryError"]
