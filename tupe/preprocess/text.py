"""Per-line text transforms of the original preprocessing scripts (docs/formats.md section 6).

Each function takes and returns ``str``; the pipelines in ``pretrain.py`` and ``glue.py``
chain them. Moses normalisation and tokenisation come from sacremoses, sentence
segmentation from sentencex (rule-based, no model download).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import regex  # sacremoses depends on it; supports \p{C}
from sentencex import segment

PROTECTED = ("<url>", "<unk>", "<email>", "<file>", "</s>", "<mask>")


# --------------------------------------------------------------------------- step 1
def decode_utf8(raw: bytes) -> tuple[str, int]:
    """Decode, dropping bytes that are not valid UTF-8 (``iconv -c``); returns (text, dropped)."""
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="ignore")
        return text, len(raw) - len(text.encode("utf-8"))


# Hostile input: a "word" of this many characters or more is no word of any language (sacremoses'
# and the placeholder regexes take quadratic time on one): it becomes ``<unk>``, counted.
MAX_WORD_CHARS = 1000
_LONG_WORD = re.compile(r"\S{%d,}" % MAX_WORD_CHARS)


def cap_long_words(text: str) -> tuple[str, int]:
    """Replace every whitespace-delimited run of >= MAX_WORD_CHARS characters with ``<unk>``."""
    if len(text) < MAX_WORD_CHARS:
        return text, 0
    return _LONG_WORD.subn(" <unk> ", text)


def decode_row(raw: bytes, counts: dict, first: bool = False) -> str:
    """One input line as text, repaired and counted in ``counts``: line end (LF or CRLF) and a
    leading byte-order mark removed; invalid UTF-8 bytes dropped (``iconv -c``, as the original
    pipeline) and NUL bytes removed; overlong words replaced by ``<unk>``."""
    raw = raw.rstrip(b"\r\n")
    if first and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if b"\x00" in raw:
        counts["nul_bytes"] = counts.get("nul_bytes", 0) + raw.count(b"\x00")
        raw = raw.replace(b"\x00", b"")
    text, bad = decode_utf8(raw)
    if bad:
        counts["invalid_utf8_bytes"] = counts.get("invalid_utf8_bytes", 0) + bad
    text, n = cap_long_words(text)
    if n:
        counts["overlong_words"] = counts.get("overlong_words", 0) + n
    return text


def describe_repairs(counts: dict) -> str:
    """``"3 invalid UTF-8 bytes dropped, 1 overlong word -> <unk>"`` (empty if nothing was repaired)."""
    words = {"invalid_utf8_bytes": "invalid UTF-8 bytes dropped", "nul_bytes": "NUL bytes removed",
             "overlong_words": f"words of >= {MAX_WORD_CHARS} characters replaced by <unk>"}
    return ", ".join(f"{counts[k]} {w}" for k, w in words.items() if counts.get(k))


# --------------------------------------------------------------------------- step 2
_PRE_CLEANUP = [
    (re.compile(r"\s+"), " "),                 # tabs to spaces, collapse whitespace
    (re.compile(r"\.{4,}"), "..."),
    (re.compile(r"<<"), "«"),
    (re.compile(r">>"), "»"),
    (re.compile(r",,"), ","),
    (re.compile(r",\."), "."),
    (re.compile(r"(^|\s)\*(?=\S)"), r"\1"),    # an asterisk that starts a word
]


def pre_cleanup(text: str) -> str:
    for pattern, repl in _PRE_CLEANUP:
        text = pattern.sub(repl, text)
    return text.strip()


# --------------------------------------------------------------------------- step 3
@lru_cache(maxsize=None)
def _punct_normalizer():
    from sacremoses import MosesPunctNormalizer  # heavy import (~0.3 s): only when text is processed
    return MosesPunctNormalizer(lang="en", perl_parity=True)


# remove-non-printing-char.perl: s/\p{C}/ /g (control, format, unassigned, private use).
_NON_PRINTING = regex.compile(r"\p{C}")


def normalize_punctuation(text: str) -> str:
    return _NON_PRINTING.sub(" ", _punct_normalizer().normalize(text)).strip()


# --------------------------------------------------------------------------- step 4
def should_join(previous: str, line: str) -> bool:
    """Join ``line`` to ``previous`` when that ends in a letter, digit or comma and this one
    starts with a lower-case letter (a paragraph broken by a hard wrap)."""
    if not previous or not line:
        return False
    last = previous[-1]
    return (last.isalnum() or last == ",") and line[0].islower()


@dataclass
class LineFilter:
    min_chars: int = 50
    max_chars: int = 1_000_000
    min_letters: int = 50
    min_letter_ratio: float = 0.7
    max_backslash_ratio: float = 0.05
    max_pipe_ratio: float = 0.05

    def reason(self, line: str) -> str | None:
        """Why ``line`` is dropped, or None to keep it."""
        n = len(line)
        if n < self.min_chars:
            return "too_short"
        if n > self.max_chars:
            return "too_long"
        letters = sum(1 for c in line if ("a" <= c <= "z") or ("A" <= c <= "Z"))
        if letters < self.min_letters or letters < self.min_letter_ratio * n:
            return "few_letters"
        if line.count("\\") > self.max_backslash_ratio * n:
            return "backslashes"
        if line.startswith("|") or line.count("|") > self.max_pipe_ratio * n:
            return "pipes"
        return None


_ELLIPSIS = re.compile(r"(\.\.\.?)")
_TRAILING = re.compile(r"""(?<=[^\s.,;:!?"'()\[\]{}])([.,;:!?"')\]}]+)(?=\s|$)""")
_LEADING = re.compile(r"""(?:(?<=\s)|^)([("'\[{]+)(?=[^\s])""")


def split_punctuation(text: str) -> str:
    """Split punctuation off the ends of words; ``...`` and ``..`` become separate tokens."""
    text = _ELLIPSIS.sub(r" \1 ", text)
    text = _TRAILING.sub(r" \1", text)
    text = _LEADING.sub(r"\1 ", text)
    return " ".join(text.split())


# --------------------------------------------------------------------------- step 5
_URL = re.compile(r"(?:(?:https?|ftp)://|www\.)[^\s<>\"]*[^\s<>\".,;:!?)\]}']", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_FILE = re.compile(
    r"\b[\w-]+\.(?:jpe?g|png|gif|bmp|svg|tiff?|pdf|docx?|xlsx?|pptx?|txt|csv|zip|gz|tar|rar|7z|exe|"
    r"dll|mp3|mp4|wav|avi|mov|mkv|flac|ogg|iso|html?|xml|json|py|js|css|php)\b", re.IGNORECASE)
_HYPHEN = re.compile(r"(?<=\w)-(?=\w)")


def substitute_placeholders(text: str) -> str:
    """URLs, e-mail addresses and file names -> ``<url>``, ``<email>``, ``<file>``; split
    words at hyphens."""
    text = _URL.sub(" <url> ", text)
    text = _EMAIL.sub(" <email> ", text)
    text = _FILE.sub(" <file> ", text)
    text = _HYPHEN.sub(" - ", text)
    return " ".join(text.split())


# --------------------------------------------------------------------------- step 9
@lru_cache(maxsize=None)
def _moses_tokenizer():
    from sacremoses import MosesTokenizer  # heavy import (~0.3 s): only when text is processed
    return MosesTokenizer(lang="en")


_PROTECTED_PATTERNS = [re.escape(p) for p in PROTECTED]


def moses_tokenize(text: str, max_protected: int = 500) -> str:
    """Moses tokenisation without escaping, protecting the placeholders. sacremoses refuses a
    text with more than 1000 protected matches: such a text is tokenised in pieces cut at
    whitespace (Moses' rules do not cross whitespace)."""
    if not text:
        return text
    tok = _moses_tokenizer()
    if text.count("<") <= max_protected:
        return tok.tokenize(text, escape=False, return_str=True, protected_patterns=_PROTECTED_PATTERNS)
    pieces, current = [], []
    for word in text.split():
        current.append(word)
        # cut after a word without a final period: Moses splits a period only at the very end
        if len(current) >= max_protected and not word.endswith("."):
            pieces.append(" ".join(current))
            current = []
    if current:
        pieces.append(" ".join(current))
    return " ".join(tok.tokenize(p, escape=False, return_str=True, protected_patterns=_PROTECTED_PATTERNS)
                    for p in pieces)


def split_sentences(paragraph: str) -> list[str]:
    return [s.strip() for s in segment("en", paragraph) if s.strip()]


# --------------------------------------------------------------------------- step 10
def merge_short_sentences(sentences: list[str], min_words: int = 5, max_chars: int = 250) -> list[str]:
    """Merge a sentence of fewer than ``min_words`` words with a neighbour in the same
    document, preferring the neighbour that gives the shortest result, if it stays within
    ``max_chars`` characters."""
    out = list(sentences)
    i = 0
    while i < len(out):
        if len(out[i].split()) >= min_words:
            i += 1
            continue
        candidates = []
        if i > 0:
            candidates.append((len(out[i - 1]) + 1 + len(out[i]), i - 1))
        if i + 1 < len(out):
            candidates.append((len(out[i]) + 1 + len(out[i + 1]), i))
        candidates = [c for c in candidates if c[0] <= max_chars]
        if not candidates:
            i += 1
            continue
        _, left = min(candidates)
        out[left: left + 2] = [out[left] + " " + out[left + 1]]
        i = left   # the merged sentence may still be short
    return out


# --------------------------------------------------------------------------- GLUE
def glue_clean(text: str, lowercase: bool = True) -> str:
    """The per-row transform of ``preprocess/glue/process.sh`` (before BPE)."""
    text = normalize_punctuation(pre_cleanup(cap_long_words(text)[0]))
    if lowercase:
        text = text.lower()
    text = substitute_placeholders(split_punctuation(text))
    text = moses_tokenize(text.replace("\\", " "))
    return text.lower() if lowercase else text
