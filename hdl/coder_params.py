"""Parameters shared by the Huffman encoder and decoder: checks, baked tables, build entry.

``HuffmanEncoder`` and ``HuffmanDecoder`` take the same parameters (symbol width b, maximum
code length L, word width W, table groups, group bounds and widths, baked tables, count width)
with the same rules and the same error messages (pinned in
``tests/test_huffman_encoder_params.py`` and ``tests/test_huffman_decoder_params.py``), and the
same ``python -m hdl.build`` options; this module holds them once.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Signal

from hdl.registry import UsageError
from hdl.registry import Module as BuildModule

__all__ = ["RUN_MAX_VALUES", "build_table_groups", "check_int", "coder_modules", "encoder_tables",
           "setup_coder"]


def check_int(name, value, lo, hi):
    """``value`` if it is an integer in ``lo..hi``; else TypeError / ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")
    return value


def encoder_tables(table, run_length=False):
    """Normalise ``table`` to ``(tables, bounds)``: a list of ``HuffmanTable`` and the
    group bounds of a table set (None for a bare table or list). Run-length (version 2)
    tables raise ValueError unless ``run_length`` is true.

    ``table`` is a table-set file path (``python -m golden.codec fit`` output), a
    ``golden.codec.container.TableSet``, a ``HuffmanTable`` or a sequence of them.
    """
    from golden.codec.container import TableSet, unpack_tables
    from golden.codec.errors import HuffmanError
    from golden.codec.tables import HuffmanTable

    bounds = None
    if isinstance(table, (str, Path)):
        try:
            table = unpack_tables(Path(table).read_bytes())
        except OSError as e:
            raise ValueError(f"Cannot read table file {str(table)!r}: {e.strerror}") from None
        except HuffmanError as e:
            raise ValueError(f"Table file {str(table)!r} is invalid: {e}") from None
    if isinstance(table, TableSet):
        tables, bounds = list(table.tables), [int(x) for x in table.bounds]
    elif isinstance(table, HuffmanTable):
        tables = [table]
    elif isinstance(table, (list, tuple)) and table and all(
            isinstance(t, HuffmanTable) for t in table):
        tables = list(table)
    else:
        raise TypeError(f"Table must be a table-set file path, a TableSet, a HuffmanTable or a "
                        f"list of them, not {table!r}")
    if not run_length and any(t.run_max for t in tables):
        raise ValueError("run-length mode is not supported by the lane coders (plain mode only)")
    return tables, bounds


def _check_bounds(bounds, groups):
    if bounds is None:
        if groups > 1:
            raise ValueError(f"Group bounds are needed with {groups} table groups")
        return None
    if not isinstance(bounds, (list, tuple)) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in bounds):
        raise TypeError(f"Group bounds must be a list of integers, not {bounds!r}")
    bounds = list(bounds)
    if (len(bounds) != groups + 1 or bounds[0] != 0
            or any(a >= c for a, c in zip(bounds, bounds[1:]))):
        raise ValueError(f"Group bounds must rise from 0 with one group per table, "
                         f"not {bounds}")
    return bounds


RUN_MAX_VALUES = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256)


def setup_coder(coder, symbol_width, max_len, word_width, groups, group_bounds, group_bits,
                table, count_width, count_max, run_max=None, runtime_groups=False):
    """Check a coder's parameters and set ``coder._b, _L, _W, _G, _count_width, _bounds,
    _group_bits, _tables, _run_max`` (raises TypeError / ValueError before anything is built).

    ``run_max`` is the longest run symbol the block supports (bitstream version 2): 0 for
    plain mode only, else a power of two up to 256. None takes the baked tables' longest
    (0 without tables). A coder class whose ``RUN_LENGTH`` attribute is false refuses any
    run-length table or a nonzero ``run_max``. ``runtime_groups`` (also set as
    ``coder._runtime``): plain mode, run-time tables, and no ``group_bounds`` (the groups of
    the columns arrive at run time; ``coder._bounds`` is None)."""
    if not isinstance(runtime_groups, bool):
        raise TypeError(f"Run-time groups flag must be a bool, not {runtime_groups!r}")
    coder._runtime = runtime_groups
    coder._shared_parser = None     # see share_parser
    coder.cfg_may_start = Signal(name="cfg_may_start")
    coder.cfg_hold = Signal(name="cfg_hold")
    b = check_int("Symbol width", symbol_width, 1, 8)
    L = check_int("Maximum code length", max_len, 1, 24)
    if isinstance(word_width, bool) or not isinstance(word_width, int):
        raise TypeError(f"Word width must be an integer, not {word_width!r}")
    if word_width not in (8, 16, 32, 64):
        raise ValueError(f"Word width must be one of 8, 16, 32, 64, not {word_width}")
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"Table group count must be an integer, not {groups!r}")
    if groups < 1:
        raise ValueError(f"Table group count must be a positive integer, not {groups}")
    coder._count_width = check_int("Count width", count_width, 1, count_max)
    run_length = bool(getattr(coder, "RUN_LENGTH", False))
    tables, file_bounds = ((None, None) if table is None
                           else encoder_tables(table, run_length))
    if run_max is not None:
        if isinstance(run_max, bool) or not isinstance(run_max, int):
            raise TypeError(f"Run max must be an integer, not {run_max!r}")
        if run_max not in RUN_MAX_VALUES:
            raise ValueError(f"Run max must be 0 or a power of two up to 256, not {run_max}")
        if run_max and not run_length:
            raise ValueError("run-length mode is not supported by the lane coders (plain mode only)")
    table_run_max = max((t.run_max for t in tables), default=0) if tables else 0
    if run_max is None:
        run_max = table_run_max
    elif table_run_max > run_max:
        raise ValueError(f"Table run max {table_run_max} exceeds the block's run max "
                         f"{run_max}")
    coder._run_max = run_max
    if runtime_groups:
        if run_max or tables is not None or group_bounds is not None:
            raise ValueError("Run-time groups need plain mode (run max 0), run-time tables "
                             "and no group bounds (the columns' groups arrive at run time)")
    if tables is not None and len(tables) != groups:
        raise ValueError(f"Table group count is {groups} but {len(tables)} tables were "
                         f"given")
    if group_bounds is None:
        group_bounds = file_bounds
    elif file_bounds is not None and [int(x) for x in group_bounds] != file_bounds:
        raise ValueError(f"Group bounds {list(group_bounds)} differ from the table set's "
                         f"{file_bounds}")
    coder._bounds = None if runtime_groups else _check_bounds(group_bounds, groups)
    if group_bits is None:
        group_bits = [t.bits for t in tables] if tables else [b] * groups
    group_bits = list(group_bits) if isinstance(group_bits, (list, tuple)) else group_bits
    if not isinstance(group_bits, list) or len(group_bits) != groups:
        raise ValueError(f"Group bit widths must be a list of {groups} integers, not "
                         f"{group_bits!r}")
    for g in group_bits:
        check_int("Group bit width", g, 1, b)
    if tables is not None:
        for i, t in enumerate(tables):
            if t.bits != group_bits[i]:
                raise ValueError(f"Table {i} codes {t.bits}-bit symbols, but group {i} is "
                                 f"{group_bits[i]} bits wide")
            if t.max_len > L:
                raise ValueError(f"Table {i} has maximum code length {t.max_len}, more "
                                 f"than {L}")
    coder._b, coder._L, coder._W, coder._G = b, L, word_width, groups
    coder._group_bits = group_bits
    coder._tables = tables


def build_table_groups(args, run_length=False):
    """``hdl.build``'s table options as (tables, group bounds, group count): a table file's
    groups (their count must match ``--groups`` and their bounds ``--k``) or ``--groups``
    equal groups of run-time tables. Run-length tables are refused unless ``run_length``.
    Raises ``UsageError``, or ValueError for an unreadable or refused table file."""
    tables = None
    bounds = None
    if args.table is not None:
        tables, bounds = encoder_tables(args.table, run_length)
        groups = len(tables)
        if args.groups not in (1, groups):
            raise UsageError(f"--groups {args.groups} does not match the table file's "
                             f"{groups} groups")
        if groups > 1 and bounds[-1] != args.k:
            raise UsageError(f"Table file covers {bounds[-1]} components, not --k "
                             f"{args.k}")
    else:
        groups = args.groups
        if groups > args.k:
            raise UsageError(f"Table group count {groups} must not exceed component count "
                             f"{args.k}")
        if groups > 1:
            bounds = [g * args.k // groups for g in range(groups + 1)]
    return tables, bounds, groups


def decoder_loop_kwargs(args):
    """The decoder's ``loop`` and ``map_bits`` from ``--decoder-loop`` and ``--map-bits``
    (only those given: a decoder checks them)."""
    kw = {}
    if getattr(args, "decoder_loop", "shift") != "shift":
        kw["loop"] = args.decoder_loop
    if getattr(args, "map_bits", None) is not None:
        kw["map_bits"] = args.map_bits
    return kw


def decoder_throughput(coder, rate, where=""):
    """The manifest's throughput of a coder (``rate`` per cycle ``where``); a map-loop decoder
    that decodes fewer than W positions of a word per cycle says when it sustains it."""
    text = f"{rate} per cycle{where}"
    D = getattr(coder, "_map_bits", None)
    if getattr(coder, "_loop", None) == "map" and D < coder._W:
        text += (f" while the codes average at most {D} bits (the map stage decodes {D} bit "
                 f"positions per cycle)")
    return text


def coder_modules(args, cls, name):
    """``python -m hdl.build`` entry of a coder class: its one module and manifest entry
    (``latency`` from ``cls.LATENCY``, the throughput and the parameters)."""
    if getattr(args, "runtime", False):
        return _runtime_coder_module(args, cls, name)
    try:
        tables, bounds, groups = build_table_groups(args, getattr(cls, "RUN_LENGTH", False))
        b = max(t.bits for t in tables) if tables else args.symbol_width
        if tables and args.symbol_width < b:
            raise UsageError(f"Symbol width {args.symbol_width} is narrower than the table "
                             f"file's {b} bits")
        extra = {}
        if getattr(args, "run_max", None) is not None:
            extra["run_max"] = args.run_max
        if getattr(cls, "LOOPS", None):
            extra.update(decoder_loop_kwargs(args))
        if getattr(cls, "FAMILY", False):
            extra["family"] = getattr(args, "family", "generic")
        comp = cls(args.symbol_width, args.max_len, args.word_width, groups,
                   group_bounds=bounds, table=tables if tables else None, **extra)
    except (TypeError, ValueError) as e:
        raise UsageError(str(e)) from None
    return [BuildModule(name, comp, {
        "latency": getattr(comp, "latency", cls.LATENCY),
        "throughput": decoder_throughput(comp, "1 symbol"),
        "parameters": {"symbol_width": args.symbol_width, "max_len": args.max_len,
                       "word_width": args.word_width, "groups": groups,
                       "group_bounds": bounds, "group_bits": comp._group_bits,
                       "baked_table": args.table, "buffer_bits": comp.buffer_bits,
                       "run_max": comp._run_max, **({"loop": comp._loop}
                                                   if hasattr(comp, "_loop") else {}),
                       **({"map_bits": comp._map_bits}
                          if getattr(comp, "_loop", None) == "map" else {}),
                       **({"family": comp._family} if hasattr(comp, "_family") else {})},
    })]


def _runtime_coder_module(args, cls, name):
    """Run-time shapes (``--max-channels``/``--max-k``): a coder of ``--max-groups`` groups
    whose widths come with the tables and whose groups arrive at run time."""
    if getattr(args, "decoder_loop", "shift") != "shift" or \
            getattr(args, "map_bits", None) is not None:
        raise UsageError("The map decode loop needs one table group known at build time, "
                         "not run-time shapes (--max-channels)")
    extra = ({"family": getattr(args, "family", "generic")} if getattr(cls, "FAMILY", False)
             else {})
    try:
        comp = cls(args.symbol_width, args.max_len, args.word_width, args.max_groups,
                   runtime_groups=True, **extra)
    except (TypeError, ValueError) as e:
        raise UsageError(str(e)) from None
    return [BuildModule(name, comp, {
        "latency": getattr(comp, "latency", cls.LATENCY),
        "throughput": "1 symbol per cycle",
        "memory_bits": comp.memory_bits,
        "parameters": {"symbol_width": args.symbol_width, "max_len": args.max_len,
                       "word_width": args.word_width, "groups": args.max_groups,
                       "runtime_groups": True, "buffer_bits": comp.buffer_bits,
                       "run_max": 0, **extra},
    })]


def share_parser(coder, parser, present):
    """Let ``coder`` (a run-time-table encoder or decoder, not yet elaborated) load its tables
    through ``parser``, a ``hdl.coder_parts.TableParser`` its lane coder owns and elaborates,
    seeing the loads of the global groups ``present`` (those it meets, in order). The coder's
    own ``cfg`` port is then unused (the parser's ``pending`` tells it that a byte waits); its
    wish to start a load and to hold the bytes come out on ``coder.cfg_may_start`` and
    ``coder.cfg_hold``, for the lane coder to combine over its lanes."""
    coder._shared_parser = (parser, list(present))


def coder_parser(coder, m):
    """The table parser of ``coder`` (built by ``_loader``): its own ``TableParser`` on its
    ``cfg`` port, or the one shared with ``share_parser``. Returns ``(view, may_start, hold)``:
    a ``ParserView`` and the two signals the coder drives (whether a load may start, whether
    the bytes after the first must wait)."""
    from amaranth.lib import wiring

    from hdl.coder_parts import ParserView, TableParser
    may_start, hold = coder.cfg_may_start, coder.cfg_hold
    if coder._shared_parser is not None:
        parser, present = coder._shared_parser
        return ParserView(parser, present), may_start, hold
    m.submodules.parser = parser = TableParser(
        coder._b, coder._L, coder._G, coder._group_bits, run_max=coder._run_max,
        runtime=coder._runtime)
    wiring.connect(m, wiring.flipped(coder.cfg), parser.cfg)
    if coder._runtime:
        m.d.comb += [parser.widths[g].eq(coder._gbits[g]) for g in range(coder._G)]
    m.d.comb += [parser.may_start.eq(may_start), parser.hold.eq(hold)]
    return ParserView(parser), may_start, hold

