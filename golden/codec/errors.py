"""Errors of the golden Huffman codec and the argument checks every codec module shares.

``ContainerError`` (corrupt files) lives with the container, ``golden.codec.container``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["AlphabetError", "CorruptStreamError", "HuffmanError", "WORD_BITS", "check_int",
           "check_word_bits"]

WORD_BITS = (8, 16, 32, 64)


class HuffmanError(ValueError):
    """Base class of every error the Huffman codec raises on bad data or parameters."""


class CorruptStreamError(HuffmanError):
    """A bitstream holds an invalid code, ends early, or has bits past its end."""


class AlphabetError(HuffmanError):
    """A value lies outside the table's alphabet, or has no code and the table has no escape."""



def check_int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")
    return int(value)


def check_word_bits(word_bits):
    if isinstance(word_bits, bool) or not isinstance(word_bits, (int, np.integer)):
        raise TypeError(f"Word width must be an integer, not {word_bits!r}")
    if word_bits not in WORD_BITS:
        raise ValueError(f"Word width must be one of 8, 16, 32, 64, not {word_bits}")
    return int(word_bits)

