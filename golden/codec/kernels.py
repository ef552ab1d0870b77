"""Compiled inner loops of the golden Huffman codec (numba).

Only the bit-serial loops live here: packing codes into words, and walking a stream one code at
a time through a lookup table. Everything else (argument checks, tables, error messages) stays
in numpy and plain Python. Status codes report where a stream went wrong; the caller turns
them into the codec's ``CorruptStreamError`` messages.

numba is a dependency of the ``golden`` extra only: the light install that generates Verilog
never imports this module.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["ENDS", "INVALID", "OK", "OVERRUN", "pack", "walk"]

OK = 0
ENDS = 1      # the stream ends exactly where a further code should start
INVALID = 2   # no code starts at this position
OVERRUN = 3   # a code (or its escaped literal) runs past the end of the stream

_jit = numba.njit(cache=True, nogil=True)
_U64 = np.uint64


@_jit
def pack(codes, lens, out):
    """Write codes (MSB first, ``lens`` bits each, all > 0) back to back into the zeroed 64-bit
    words ``out``."""
    acc = _U64(0)
    free = 64
    w = 0
    for i in range(codes.size):
        c = codes[i]
        n = lens[i]
        if n < free:
            free -= n
            acc |= c << _U64(free)
        else:
            over = n - free
            out[w] = acc | (c >> _U64(over))
            w += 1
            free = 64 - over
            acc = (c << _U64(free)) if over else _U64(0)
    if free < 64:
        out[w] = acc


@_jit
def walk(big, n_pos, count, runs, col_table, same_next, lut, pair, shift, lim, first, base,
         symbols, max_len, esc, bits, half, out):
    """Decode codes from bit 0 of ``big`` (64-bit words ending in a zero guard word).

    Plain (``runs`` False): exactly ``count`` codes, the i-th with table
    ``col_table[i % len(col_table)]``. Run-length (``runs`` True, one table): codes up to bit
    ``n_pos``; an entry above ``2**b`` is a run of zeros (``out`` comes zeroed). Values, signed
    where ``half[t]`` > 0, go to ``out`` while they fit. Table t's arrays are row t of the
    stacked lookup arrays; an escape and its raw literal count as one code. ``pair[t]`` gives
    two short codes at once (``n1 | n2 << 8 | v1 << 16 | v2 << 32``, 0 where not), taken when
    column ``j + 1`` has the same table (``same_next[j]``) and both codes are wanted and end
    inside the stream; everything else goes one code at a time. Everything is inline: a call
    per code costs more than the decode itself.

    Returns (status, codes decoded, bit position, values coded).
    """
    k = col_table.size
    n_lit = 1 << bits[0]
    p = 0
    codes = 0
    total = 0
    j = 0
    win = _U64(0)  # the stream from bit p on, MSB first
    have = 0       # how many bits of win are the stream's (the rest are zeros)
    while True:
        if runs:
            if p >= n_pos:
                break
        elif codes == count:
            break
        elif p >= n_pos:
            return ENDS, codes, p, total
        if have < 32:  # a code and its escaped literal take at most 24 + 8 bits
            w = p >> 6
            s = _U64(p & 63)
            win = (big[w] << s) | ((big[w + 1] >> _U64(1)) >> (_U64(63) - s))
            have = 64
        t = col_table[j]
        e2 = pair[t, win >> _U64(shift[t])]
        m = 1
        if e2 and same_next[j] and (runs or codes + 2 <= count):
            n = (e2 & 0xFF) + ((e2 >> 8) & 0xFF)
            if p + n <= n_pos:
                m = 2
                v = (e2 >> 16) & 0xFFFF
                v2 = e2 >> 32
        j = j + 1 if j + 1 < k else 0
        if m == 2:
            j = j + 1 if j + 1 < k else 0
        else:
            e = lut[t, win >> _U64(shift[t])]
            n = e >> 16
            v = e & 0xFFFF
            v2 = 0
            if n == 0:  # longer than the lookup: canonical search over the left-justified limits
                L = max_len[t]
                x = win >> _U64(64 - L)
                n = 1
                while x >= lim[t, n - 1]:
                    if n == L:
                        return INVALID, codes, p, total
                    n += 1
                v = symbols[t, base[t, n] + np.int64(x >> _U64(L - n)) - first[t, n]]
            if v == esc[t]:
                b = bits[t]
                v = np.int64((win << _U64(n)) >> _U64(64 - b))
                n += b
            if p + n > n_pos:
                return OVERRUN, codes, p, total
        p += n
        win <<= _U64(n)
        have -= n
        codes += m
        h = half[t]
        for q in range(m):
            if q:
                v = v2
            if runs and v > n_lit:
                total += v - n_lit
                continue
            if h and v >= h:
                v -= 2 * h
            if total < out.size:
                out[total] = v
            total += 1
    return OK, codes, p, total
