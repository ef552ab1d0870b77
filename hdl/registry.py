"""Block registry shared by ``hdl.build`` and the block generators.

A generator module exposes ``BLOCK = Block(name, add_arguments, modules)``: ``add_arguments``
adds the block's own options to the ``python -m hdl.build`` parser, ``modules(args)`` checks
them (raising ``UsageError`` with a one-line message) and returns the ``Module`` list to emit.
Options shared by several blocks (the Huffman ones) are added by a helper here, once.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

__all__ = ["Block", "Module", "UsageError", "huffman_arguments", "non_negative", "positive",
           "width"]


@dataclass
class Module:
    """One generated Verilog module: its top name, the component, and manifest extras."""

    name: str
    component: object
    info: dict = field(default_factory=dict)


@dataclass
class Block:
    """A generator: ``add_arguments(parser)``, ``modules(args) -> list[Module]``."""

    name: str
    add_arguments: object
    modules: object


class UsageError(Exception):
    """A bad command line; the message is printed as one line."""


def positive(name):
    """An argparse type: a positive integer, worded with ``name`` in errors."""
    def parse(text):
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be a positive integer, not {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, not {value}")
        return value
    return parse


def non_negative(name):
    """An argparse type: an integer of at least 0, worded with ``name`` in errors."""
    def parse(text):
        try:
            value = int(text, 0)
        except ValueError:
            value = None
        if value is None or value < 0:
            raise argparse.ArgumentTypeError(
                f"{name} must be a non-negative integer, not {text!r}")
        return value
    return parse


def width(name, lo, hi):
    """An argparse type: an integer in ``lo..hi``."""
    def parse(text):
        value = positive(name)(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(
                f"{name} must be between {lo} and {hi}, not {value}")
        return value
    return parse


def huffman_arguments(parser):
    """Options shared by the Huffman encoder and decoder (added once per parser)."""
    if getattr(parser, "_huffman_arguments", False):
        return
    parser._huffman_arguments = True
    parser.add_argument("--symbol-width", type=width("Symbol width", 1, 8), default=8,
                        help="Huffman symbol width b in bits (default 8)")
    parser.add_argument("--max-len", type=width("Maximum code length", 1, 24), default=12,
                        help="longest Huffman code L in bits (default 12)")
    parser.add_argument("--word-width", type=int, choices=(8, 16, 32, 64), default=32,
                        help="bitstream word width W (default 32)")
    parser.add_argument("--groups", type=positive("Table group count"), default=1,
                        help="number of Huffman table groups (default 1)")
    parser.add_argument("--run-max", type=int, default=None, metavar="R",
                        help="longest zero-run symbol of the Huffman coders (run-length "
                             "mode, bitstream version 2): 0 (plain mode only) or a power of "
                             "two up to 256 (default: the baked tables', else 0); the "
                             "compressor and decompressor then have one coder per table "
                             "group, each group a tile of its own")
    parser.add_argument("--decoder-loop", choices=("shift", "map"), default="shift",
                        help="decode loop of the Huffman decoder: shift (default) or map "
                             "(faster, more LUTs; plain mode, one table group, L + b <= W)")
    parser.add_argument("--map-bits", type=int, default=None, metavar="D",
                        help="map decode loop: bit positions of a word decoded per cycle, a "
                             "power of two from 4 to W (default W; fewer LUTs, one symbol "
                             "per cycle while codes average at most D bits)")
    parser.add_argument("--table", default=None, metavar="FILE",
                        help="bake a golden table file into the Huffman blocks")
