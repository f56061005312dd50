"""A small CLIP tokenizer of our own: CLIP's byte-level BPE format with merges learned from captions.

The embedded default model cannot download SD1.5's tokenizer, so stage 0 builds one: the 256 byte symbols
and their end-of-word forms (as in CLIP, so any text tokenizes), plus BPE merges learned from a caption
corpus until every corpus word is a single token, plus ``<|startoftext|>`` / ``<|endoftext|>``. The result
is an ordinary `transformers.CLIPTokenizer` (same normalisation and word splitting as SD's), saved and
loaded with ``save_pretrained`` / ``from_pretrained``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from transformers import CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

END_OF_WORD = "</w>"
START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"


def base_vocabulary() -> dict[str, int]:
    """CLIP's first 512 entries: the byte symbols, then the same symbols closing a word."""
    symbols = list(bytes_to_unicode().values())
    vocabulary = {symbol: index for index, symbol in enumerate(symbols)}
    vocabulary.update({symbol + END_OF_WORD: index + len(symbols) for index, symbol in enumerate(symbols)})
    return vocabulary


def caption_words(captions: Iterable[str]) -> Counter[str]:
    """Word counts (byte-level symbols, after CLIP's normalisation and word split) of ``captions``."""
    splitter = CLIPTokenizer(vocab={**base_vocabulary(), START_TOKEN: 512, END_TOKEN: 513}, merges=[])
    backend = splitter.backend_tokenizer
    counts: Counter[str] = Counter()
    for caption in captions:
        normalized = backend.normalizer.normalize_str(caption)
        counts.update(piece for piece, _ in backend.pre_tokenizer.pre_tokenize_str(normalized))
    return counts


def learn_bpe_merges(word_counts: Counter[str], max_merges: int | None = None) -> list[tuple[str, str]]:
    """Classic BPE learning: repeatedly merge the most frequent adjacent symbol pair (ties: smallest pair).

    Words are split into symbols with the last one carrying ``</w>``; learning stops when every word is
    one symbol or after ``max_merges`` merges.
    """
    words: dict[tuple[str, ...], int] = {}
    for word, count in word_counts.items():
        if word:
            symbols = (*word[:-1], word[-1] + END_OF_WORD)
            words[symbols] = words.get(symbols, 0) + count
    merges: list[tuple[str, str]] = []
    while max_merges is None or len(merges) < max_merges:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, count in words.items():
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        words = {_merge(symbols, best): count for symbols, count in words.items()}
    return merges


def build_caption_tokenizer(
    captions: Iterable[str], max_length: int = 77, max_merges: int | None = None
) -> CLIPTokenizer:
    """A `CLIPTokenizer` whose merges make every word of ``captions`` a single token (within ``max_merges``)."""
    merges = learn_bpe_merges(caption_words(captions), max_merges)
    vocabulary = base_vocabulary()
    for first, second in merges:
        vocabulary.setdefault(first + second, len(vocabulary))
    vocabulary[START_TOKEN] = len(vocabulary)
    vocabulary[END_TOKEN] = len(vocabulary)
    return CLIPTokenizer(vocab=vocabulary, merges=merges, model_max_length=max_length)


def _merge(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    merged: list[str] = []
    index = 0
    while index < len(symbols):
        if index + 1 < len(symbols) and (symbols[index], symbols[index + 1]) == pair:
            merged.append(symbols[index] + symbols[index + 1])
            index += 2
        else:
            merged.append(symbols[index])
            index += 1
    return tuple(merged)
