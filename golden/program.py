"""Network programs: the bytes that configure run-time-shape hardware for each layer in turn.

``golden calibrate`` writes one artifact per compression point (``NN_<point>.npz``); a
run-time-shape compressor and decompressor (``python -m hdl.build --max-channels CMAX --max-k
KMAX``) take any of those layers after loading its descriptor, weights and tables. A program
packs every layer into one versioned file (``pack_program``); ``layer_streams`` turns a layer
back into the beats each top's configuration ports take. The layout is normative in
``docs/program.md``: little-endian integers, a CRC-32 (zlib's) after every layer record and at
the end of the file. Parsing checks sizes, CRCs, magic and version before allocating anything
sized by the file, so a corrupt or truncated program raises ``ProgramError`` and never hangs
or returns wrong arrays.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from golden.codec.container import parse_table
from golden.codec.errors import HuffmanError

__all__ = ["MAGIC", "VERSION", "Program", "ProgramError", "ProgramLayer", "check_maxima",
           "layer_streams", "load_artifacts", "mac_cfg_beats", "pack_program",
           "unpack_program"]

MAGIC = b"ACHP"
VERSION = 1
MODE_PLAIN, MODE_RUN_LENGTH = 1, 2
_HEAD = struct.Struct("<4sBBHHHBBHBBBBBB")
# magic, version, flags, layers, max C, max K, max groups, max coefficient bits, max run,
# in_bits, out_bits, w_bits, bias_bits, mult_bits, relu
_DESC = struct.Struct("<HHBBBB")      # C, K, G, mode, reserved, reserved
_MAX_LAYERS = 4096


class ProgramError(HuffmanError):
    """A program is corrupt, truncated, of an unknown version, or does not fit the hardware."""


def _nbytes(bits: int) -> int:
    return (int(bits) + 7) // 8


def _pack_values(a, nbytes: int) -> bytes:
    """Little-endian two's complement, ``nbytes`` per value."""
    a = np.ascontiguousarray(np.asarray(a, dtype="<i8").ravel())
    return a.view(np.uint8).reshape(-1, 8)[:, :nbytes].tobytes()


def _unpack_values(data: bytes, off: int, count: int, nbytes: int, signed: bool):
    end = off + count * nbytes
    if end > len(data):
        raise ProgramError("Program ends inside a layer's values")
    raw = np.frombuffer(data, dtype=np.uint8, count=count * nbytes, offset=off)
    raw = raw.reshape(count, nbytes).astype(np.int64)
    v = np.zeros(count, dtype=np.int64)
    for i in range(nbytes):
        v |= raw[:, i] << (8 * i)
    if signed:
        top = 1 << (8 * nbytes - 1)
        v = (v ^ top) - top
    return v, end


@dataclass
class ProgramLayer:
    """One layer of a program: what its descriptor, values and tables say."""

    name: str
    channels: int
    k: int
    group_bounds: list
    group_bits: list
    mode: int
    fwd: dict                      # weight (K, C), bias, mult, shift (K,)
    inv: dict                      # weight (C, K), bias, mult, shift (C,)
    tables: list                   # HuffmanTable per group
    raw: bytes = field(repr=False, default=b"")   # the record's body

    @property
    def groups(self) -> int:
        return len(self.group_bits)


@dataclass
class Program:
    """A parsed program: the widths every layer shares, the maxima, the layers."""

    in_bits: int
    out_bits: int
    w_bits: int
    bias_bits: int
    mult_bits: int
    relu: bool
    max_channels: int
    max_k: int
    max_groups: int
    max_coef_bits: int
    max_run: int
    layers: list

    def summary(self) -> list[str]:
        """One line per layer and the totals."""
        lines = [f"{i:3d} {lay.name:24s} C={lay.channels:4d} K={lay.k:3d} G={lay.groups} "
                 f"bits={','.join(map(str, lay.group_bits))} "
                 f"{'run-length' if lay.mode == MODE_RUN_LENGTH else 'plain'} "
                 f"{len(lay.raw) + 8} bytes"
                 for i, lay in enumerate(self.layers)]
        return lines


def _widths(art) -> tuple:
    return (int(art.in_bits), int(art.out_bits), int(art.w_bits), int(art.bias_bits),
            int(art.mult_bits), bool(art.relu))


def _record(art) -> bytes:
    bounds = [int(x) for x in art.group_bounds]
    bits = [int(x) for x in art.group_bits]
    tables = art.tables.tables
    run = any(t.run_max for t in tables)
    if run and not all(t.run_max for t in tables):
        raise ProgramError(f"Layer {art.name}: tables must be all plain or all run-length")
    body = [_DESC.pack(int(art.channels), int(art.k), len(bits),
                       MODE_RUN_LENGTH if run else MODE_PLAIN, 0, 0),
            struct.pack(f"<{len(bounds)}H", *bounds), bytes(bits)]
    for pre in ("fwd_", "inv_"):
        body += [_pack_values(getattr(art, pre + "weight"), _nbytes(art.w_bits)),
                 _pack_values(getattr(art, pre + "bias"), _nbytes(art.bias_bits)),
                 _pack_values(getattr(art, pre + "mult"), _nbytes(art.mult_bits)),
                 _pack_values(getattr(art, pre + "shift"), 1)]
    for t in tables:
        raw = t.serialize()
        body += [struct.pack("<H", len(raw)), raw]
    body = b"".join(body)
    return struct.pack("<I", len(body)) + body + struct.pack("<I", zlib.crc32(body))


def pack_program(artifacts) -> bytes:
    """Pack ``LayerArtifact``s, in order, into a program (``docs/program.md``).

    Raises
    ------
    ProgramError
        No layer, more than 4096, or layers whose activation, weight, bias, multiplier
        widths or ReLU differ (one build has one of each: calibrate with one setting, e.g.
        ``--unsigned off`` keeps every point signed at ``--in-bits``).
    """
    arts = list(artifacts)
    if not arts:
        raise ProgramError("A program needs at least one layer")
    if len(arts) > _MAX_LAYERS:
        raise ProgramError(f"A program holds at most {_MAX_LAYERS} layers, not {len(arts)}")
    first = _widths(arts[0])
    names = ("activation bits", "output bits", "weight bits", "bias bits", "multiplier bits",
             "ReLU")
    for art in arts[1:]:
        for what, a, b in zip(names, first, _widths(art)):
            if a != b:
                raise ProgramError(f"Layer {art.name} has {what} {b}, layer {arts[0].name} "
                                   f"{a}: one program, one setting (calibrate every point "
                                   f"alike, e.g. --unsigned off)")
    in_bits, out_bits, w_bits, bias_bits, mult_bits, relu = first
    max_run = max(t.run_max for a in arts for t in a.tables.tables)
    head = _HEAD.pack(MAGIC, VERSION, 0, len(arts), max(int(a.channels) for a in arts),
                      max(int(a.k) for a in arts), max(len(a.group_bits) for a in arts),
                      max(int(max(a.group_bits)) for a in arts), max_run, in_bits, out_bits,
                      w_bits, bias_bits, mult_bits, int(relu))
    names_raw = b""
    for a in arts:
        raw = str(a.name).encode()[:255]
        names_raw += bytes([len(raw)]) + raw
    data = head + names_raw + b"".join(_record(a) for a in arts)
    return data + struct.pack("<I", zlib.crc32(data))


def _parse_record(body: bytes, name: str, widths: dict) -> ProgramLayer:
    if len(body) < _DESC.size:
        raise ProgramError(f"Layer {name}: record too short for its descriptor")
    c, k, g, mode, r0, r1 = _DESC.unpack_from(body, 0)
    if not (1 <= k <= c <= 4096) or not 1 <= g <= k or mode not in (1, 2) or r0 or r1:
        raise ProgramError(f"Layer {name}: bad descriptor C={c} K={k} G={g} mode={mode}")
    off = _DESC.size
    if off + 2 * (g + 1) + g > len(body):
        raise ProgramError(f"Layer {name}: record ends inside its groups")
    bounds = list(struct.unpack_from(f"<{g + 1}H", body, off))
    off += 2 * (g + 1)
    bits = list(body[off:off + g])
    off += g
    if bounds[0] != 0 or bounds[-1] != k or any(a >= b for a, b in zip(bounds, bounds[1:])):
        raise ProgramError(f"Layer {name}: group bounds {bounds} do not rise from 0 to {k}")
    if any(not 1 <= b <= 8 for b in bits):
        raise ProgramError(f"Layer {name}: group widths {bits} not between 1 and 8")
    # Every value's size is known now: check the whole record before allocating.
    wb, bb, mb = (_nbytes(widths[x]) for x in ("w_bits", "bias_bits", "mult_bits"))
    need = off + 2 * c * k * wb + (c + k) * (bb + mb + 1)
    if need > len(body):
        raise ProgramError(f"Layer {name}: record ends inside its values")
    arrays = {}
    for pre, rows, cols in (("fwd", k, c), ("inv", c, k)):
        w, off = _unpack_values(body, off, rows * cols, wb, True)
        bias, off = _unpack_values(body, off, rows, bb, True)
        mult, off = _unpack_values(body, off, rows, mb, False)
        shift, off = _unpack_values(body, off, rows, 1, False)
        arrays[pre] = {"weight": w.reshape(rows, cols), "bias": bias, "mult": mult,
                       "shift": shift}
    tables = []
    for gi in range(g):
        if off + 2 > len(body):
            raise ProgramError(f"Layer {name}: record ends before table {gi}")
        (n,) = struct.unpack_from("<H", body, off)
        off += 2
        if off + n > len(body):
            raise ProgramError(f"Layer {name}: record ends inside table {gi}")
        try:
            t = parse_table(body[off:off + n])
        except HuffmanError as e:
            raise ProgramError(f"Layer {name}: table {gi}: {e}") from None
        if t.bits != bits[gi] or bool(t.run_max) != (mode == MODE_RUN_LENGTH):
            raise ProgramError(f"Layer {name}: table {gi} does not match its group")
        tables.append(t)
        off += n
    if off != len(body):
        raise ProgramError(f"Layer {name}: {len(body) - off} bytes after its tables")
    return ProgramLayer(name, c, k, bounds, bits, mode, arrays["fwd"], arrays["inv"], tables,
                        body)


def unpack_program(data) -> Program:
    """Parse a program (bytes, or a path).

    Raises
    ------
    ProgramError
        On a truncated or corrupt file, a bad CRC, magic or version, or inconsistent fields.
    """
    if isinstance(data, (str, Path)):
        data = Path(data).read_bytes()
    data = bytes(data)
    if len(data) < _HEAD.size + 4:
        raise ProgramError(f"Program too short ({len(data)} bytes)")
    (crc,) = struct.unpack("<I", data[-4:])
    if zlib.crc32(data[:-4]) != crc:
        raise ProgramError("Program CRC mismatch: the file is corrupt or truncated")
    (magic, version, flags, n, max_c, max_k, max_g, max_b, max_run, in_bits, out_bits, w_bits,
     bias_bits, mult_bits, relu) = _HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise ProgramError(f"Not a network program (magic {magic!r})")
    if version != VERSION:
        raise ProgramError(f"Unsupported program version {version} (this reader: {VERSION})")
    if flags or relu > 1 or not 1 <= n <= _MAX_LAYERS:
        raise ProgramError(f"Bad program header (flags {flags}, ReLU {relu}, {n} layers)")
    for what, v, hi in (("activation", in_bits, 16), ("output", out_bits, 16),
                        ("weight", w_bits, 16), ("bias", bias_bits, 32),
                        ("multiplier", mult_bits, 32)):
        if not 1 <= v <= hi:
            raise ProgramError(f"Bad {what} width {v}")
    off = _HEAD.size
    end = len(data) - 4
    names = []
    for _ in range(n):
        if off >= end:
            raise ProgramError("Program ends inside its layer names")
        ln = data[off]
        if off + 1 + ln > end:
            raise ProgramError("Program ends inside its layer names")
        names.append(data[off + 1:off + 1 + ln].decode("utf-8", "replace"))
        off += 1 + ln
    widths = {"w_bits": w_bits, "bias_bits": bias_bits, "mult_bits": mult_bits}
    layers = []
    for name in names:
        if off + 8 > end:
            raise ProgramError(f"Program ends before layer {name}")
        (size,) = struct.unpack_from("<I", data, off)
        if off + 4 + size + 4 > end:
            raise ProgramError(f"Program ends inside layer {name}")
        body = data[off + 4:off + 4 + size]
        (rcrc,) = struct.unpack_from("<I", data, off + 4 + size)
        if zlib.crc32(body) != rcrc:
            raise ProgramError(f"Layer {name}: record CRC mismatch")
        layers.append(_parse_record(body, name, widths))
        off += 8 + size
    if off != end:
        raise ProgramError(f"{end - off} bytes after the last layer")
    prog = Program(in_bits, out_bits, w_bits, bias_bits, mult_bits, bool(relu), max_c, max_k,
                   max_g, max_b, max_run, layers)
    real = (max(x.channels for x in layers), max(x.k for x in layers),
            max(x.groups for x in layers), max(max(x.group_bits) for x in layers),
            max(t.run_max for x in layers for t in x.tables))
    if real != (max_c, max_k, max_g, max_b, max_run):
        raise ProgramError(f"Header maxima {(max_c, max_k, max_g, max_b, max_run)} differ from "
                           f"the layers' {real}")
    return prog


def check_maxima(program: Program, max_channels: int, max_k: int, max_groups: int | None = None,
                 coef_bits: int = 8, run_length: bool = False) -> None:
    """Raise ``ProgramError`` naming the first layer that a build of these maxima cannot take
    (C, K, groups, coefficient width, or run-length tables where the hardware codes plain)."""
    for lay in program.layers:
        for what, have, most in (("channels C", lay.channels, max_channels),
                                 ("components K", lay.k, max_k),
                                 ("table groups", lay.groups, max_groups),
                                 ("coefficient bits", max(lay.group_bits), coef_bits)):
            if most is not None and have > most:
                raise ProgramError(f"Layer {lay.name} has {what} {have}, more than the "
                                   f"hardware's {most}")
        if min(lay.group_bits) < 2:
            raise ProgramError(f"Layer {lay.name} has a {min(lay.group_bits)}-bit group; "
                               f"the run-time coders take 2 bits and up")
        if lay.mode == MODE_RUN_LENGTH and not run_length:
            raise ProgramError(f"Layer {lay.name} has run-length tables; run-time-shape "
                               f"hardware codes plain tables (calibrate with --run-length off)")


def mac_cfg_beats(layer: ProgramLayer, direction: str) -> list[int]:
    """The ``cfg`` stream of a run-time-shape MAC array for ``layer``: C_out, C_in, then W
    row-major, bias, mult, shift. ``direction``: ``"forward"`` (K x C, the compressor's) or
    ``"inverse"`` (C x K, the decompressor's)."""
    if direction not in ("forward", "inverse"):
        raise ValueError(f"Direction must be 'forward' or 'inverse', not {direction!r}")
    a = layer.fwd if direction == "forward" else layer.inv
    co, ci = a["weight"].shape
    return [co, ci] + [int(v) for key in ("weight", "bias", "mult", "shift")
                       for v in np.ravel(a[key])]


def layer_streams(layer: ProgramLayer, direction: str, max_groups: int) -> dict:
    """The beats a run-time-shape top takes for ``layer`` (``docs/runtime.md``):
    ``weights``, the ``s_axis_weights`` values (the layer descriptor for ``max_groups``
    groups, then the MAC array's values; ``tlast`` on the final one), and ``tables``,
    ``(byte, group, last)`` per ``s_axis_table`` beat."""
    if layer.groups > max_groups:
        raise ProgramError(f"Layer {layer.name} has {layer.groups} table groups, more than "
                           f"the hardware's {max_groups}")
    g = layer.groups
    head = ([layer.channels, layer.k, g] + layer.group_bounds[1:-1] + [0] * (max_groups - g)
            + layer.group_bits + [0] * (max_groups - g))
    weights = head + mac_cfg_beats(layer, direction)[2:]
    tables = []
    for gi, t in enumerate(layer.tables):
        raw = t.serialize()
        tables += [(b, gi, int(i == len(raw) - 1)) for i, b in enumerate(raw)]
    return {"weights": weights, "tables": tables}


def load_artifacts(folder) -> list:
    """The ``NN_<point>.npz`` artifacts of a ``golden calibrate`` output folder, by name."""
    from golden.datapath.artifacts import load_artifact

    folder = Path(folder)
    if not folder.is_dir():
        raise ProgramError(f"Artifact folder {str(folder)!r} does not exist")
    paths = sorted(p for p in folder.glob("*.npz") if p.name[:2].isdigit())
    if not paths:
        raise ProgramError(f"No NN_<point>.npz artifacts in {str(folder)!r}")
    arts = []
    for p in paths:
        try:
            arts.append(load_artifact(p))
        except (ValueError, OSError) as e:
            raise ProgramError(f"{p.name}: {e}") from None
    return arts
