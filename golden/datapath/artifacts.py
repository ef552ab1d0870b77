"""Layer artifacts: every integer the compression hardware of one feature map needs.

An artifact is what ``golden.calibration`` produces for one activation point and what the
generator (``hdl.build --weights/--table``) and the testbenches consume. On disk it is one
``.npz`` file (``numpy.savez``, no pickles) with exactly these keys:

==============  ==========  =============================================================
key             shape       meaning
==============  ==========  =============================================================
name            ()          activation point (module name), unicode string
channels, k     ()          C feature-map channels, K projection components
fwd_weight      (K, C)      forward projection weights, signed ``w_bits``
fwd_bias        (K,)        forward bias, signed ``bias_bits`` (carries ``-S1 @ mean``)
fwd_mult/shift  (K,)        forward requantization per component
inv_weight      (C, K)      inverse projection weights, signed ``w_bits``
inv_bias        (C,)        inverse bias, signed ``bias_bits`` (carries the mean)
inv_mult/shift  (C,)        inverse requantization per channel
in_bits         ()          width of the quantized activation ``x_int`` (forward input)
w_bits          ()          weight width (both directions)
bias_bits       ()          bias width (both directions)
out_bits        ()          width of the reconstructed activation (inverse output)
mult_bits       ()          requantization multiplier width
relu            ()          ReLU clamp on the inverse output (0 or 1)
x_scale         ()          float step of ``x_int`` (x ~ x_int * x_scale)
out_scale       ()          float step of the reconstruction (x_rec ~ x_rec_int * out_scale)
group_bounds    (G + 1,)    component groups: group g is ``bounds[g] .. bounds[g+1] - 1``
group_bits      (G,)        coefficient width of each group, 2 to 8
tables          (bytes,)    uint8: ``golden.codec.container.pack_tables`` of the groups
==============  ==========  =============================================================

The integer pipeline these define is ``golden.datapath.pipeline.forward_int`` / ``inverse_int``
(``docs/projections.md``).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.codec.container import TableSet, pack_tables, unpack_tables
from golden.codec.errors import HuffmanError
from golden.datapath.quant import int_range

__all__ = ["ARTIFACT_KEYS", "LayerArtifact", "load_artifact", "save_artifact", "write_atomic",
           "write_json"]

_INT_ARRAYS = ("fwd_weight", "fwd_bias", "fwd_mult", "fwd_shift", "inv_weight", "inv_bias",
               "inv_mult", "inv_shift", "group_bounds", "group_bits")
_INT_SCALARS = ("channels", "k", "in_bits", "w_bits", "bias_bits", "out_bits", "mult_bits",
                "relu")
_FLOAT_SCALARS = ("x_scale", "out_scale")
ARTIFACT_KEYS = frozenset(("name", "tables") + _INT_ARRAYS + _INT_SCALARS + _FLOAT_SCALARS)


@dataclass
class LayerArtifact:
    """The integer artifacts of one activation point (see the module docstring)."""

    name: str
    fwd_weight: np.ndarray
    fwd_bias: np.ndarray
    fwd_mult: np.ndarray
    fwd_shift: np.ndarray
    inv_weight: np.ndarray
    inv_bias: np.ndarray
    inv_mult: np.ndarray
    inv_shift: np.ndarray
    in_bits: int
    w_bits: int
    bias_bits: int
    out_bits: int
    mult_bits: int
    relu: bool
    x_scale: float
    out_scale: float
    group_bounds: np.ndarray
    group_bits: np.ndarray
    tables: TableSet

    def __post_init__(self):
        for key in _INT_ARRAYS:
            setattr(self, key, np.asarray(getattr(self, key), dtype=np.int64))
        for key in ("in_bits", "w_bits", "bias_bits", "out_bits", "mult_bits"):
            setattr(self, key, int(getattr(self, key)))
        self.relu = bool(self.relu)
        self.x_scale, self.out_scale = float(self.x_scale), float(self.out_scale)
        self.name = str(self.name)
        self.validate()

    @property
    def channels(self) -> int:
        return int(self.inv_weight.shape[0])

    @property
    def k(self) -> int:
        return int(self.fwd_weight.shape[0])

    @property
    def coef_bits(self) -> int:
        """Width of the coefficient bus: the widest group (forward output, inverse input)."""
        return int(self.group_bits.max())

    def validate(self) -> None:
        """Check shapes, widths and value ranges; raises ``ValueError`` naming the field."""
        c, k = self.inv_weight.shape if self.inv_weight.ndim == 2 else (-1, -1)
        shapes = {"fwd_weight": (k, c), "fwd_bias": (k,), "fwd_mult": (k,), "fwd_shift": (k,),
                  "inv_weight": (c, k), "inv_bias": (c,), "inv_mult": (c,), "inv_shift": (c,)}
        if c < 1 or k < 1:
            raise ValueError(f"Artifact inv_weight must be a non-empty (C, K) matrix, not shape "
                             f"{self.inv_weight.shape}")
        for key, shape in shapes.items():
            if getattr(self, key).shape != shape:
                raise ValueError(f"Artifact {key} must have shape {shape}, not "
                                 f"{getattr(self, key).shape}")
        for key, lo, hi in (("in_bits", 2, 16), ("w_bits", 2, 16), ("bias_bits", 2, 48),
                            ("out_bits", 2, 16), ("mult_bits", 1, 32)):
            if not lo <= getattr(self, key) <= hi:
                raise ValueError(f"Artifact {key} must be between {lo} and {hi}, not "
                                 f"{getattr(self, key)}")
        for key, bits in (("fwd_weight", self.w_bits), ("inv_weight", self.w_bits),
                          ("fwd_bias", self.bias_bits), ("inv_bias", self.bias_bits)):
            lo, hi = int_range(bits)
            a = getattr(self, key)
            if a.min() < lo or a.max() > hi:
                raise ValueError(f"Artifact {key} values must fit the {bits}-bit signed range "
                                 f"[{lo}, {hi}]")
        for key in ("fwd_mult", "inv_mult"):
            a = getattr(self, key)
            if a.min() < 0 or a.max() >= 1 << self.mult_bits:
                raise ValueError(f"Artifact {key} must be between 0 and "
                                 f"{(1 << self.mult_bits) - 1}")
        for key in ("fwd_shift", "inv_shift"):
            a = getattr(self, key)
            if a.min() < 0 or a.max() > 127:
                raise ValueError(f"Artifact {key} must be between 0 and 127")
        for key in ("x_scale", "out_scale"):
            v = getattr(self, key)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"Artifact {key} must be positive and finite, not {v}")
        b, g = self.group_bounds, self.group_bits
        if (b.ndim != 1 or g.ndim != 1 or b.size != g.size + 1 or b[0] != 0 or b[-1] != k
                or np.any(np.diff(b) <= 0)):
            raise ValueError(f"Artifact group_bounds must rise from 0 to {k} with one more entry "
                             f"than group_bits, not {b.tolist()} for {g.tolist()}")
        if g.min() < 2 or g.max() > 8:
            raise ValueError(f"Artifact group_bits must be between 2 and 8, not {g.tolist()}")
        ts = self.tables
        if (not isinstance(ts, TableSet) or list(ts.bounds) != b.tolist()
                or [t.bits for t in ts.tables] != g.tolist()
                or not all(t.signed for t in ts.tables)):
            raise ValueError("Artifact tables must be signed tables with the artifact's group "
                             "bounds and bits")

    def arrays(self) -> dict[str, np.ndarray]:
        """The npz dictionary (exactly ``ARTIFACT_KEYS``)."""
        out = {key: getattr(self, key) for key in _INT_ARRAYS}
        out.update({key: np.int64(getattr(self, key)) for key in _INT_SCALARS})
        out.update({key: np.float64(getattr(self, key)) for key in _FLOAT_SCALARS})
        out["name"] = np.str_(self.name)
        out["tables"] = np.frombuffer(pack_tables(self.tables), dtype=np.uint8)
        return out


def write_atomic(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file beside it, then a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path, data) -> None:
    """Write JSON (indented, newline-terminated) atomically."""
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


def save_artifact(artifact: LayerArtifact, path) -> Path:
    """Write ``artifact`` to ``path`` (``.npz``) atomically: a temp file, then a rename."""
    buf = io.BytesIO()
    np.savez(buf, **artifact.arrays())
    return write_atomic(path, buf.getvalue())


def load_artifact(path) -> LayerArtifact:
    """Read and validate an artifact file.

    Raises
    ------
    ValueError
        If the file is missing or not an npz archive, lacks or adds keys, or holds a field of
        the wrong dtype, shape or range, or corrupt Huffman tables; the message names the file
        and the field.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise ValueError(f"Artifact file {str(path)!r} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"Artifact file {str(path)!r} is not a readable npz archive: "
                         f"{e}") from None
    missing = sorted(ARTIFACT_KEYS - set(data))
    extra = sorted(set(data) - ARTIFACT_KEYS)
    if missing or extra:
        parts = ([f"lacks {', '.join(missing)}"] if missing else []) + (
            [f"has unknown {', '.join(extra)}"] if extra else [])
        raise ValueError(f"Artifact file {str(path)!r} {' and '.join(parts)}")
    try:
        for key in _INT_ARRAYS + _INT_SCALARS:
            if not np.issubdtype(data[key].dtype, np.integer):
                raise ValueError(f"Artifact {key} must hold integers, not {data[key].dtype}")
        for key in _INT_SCALARS + _FLOAT_SCALARS + ("name",):
            if data[key].shape != ():
                raise ValueError(f"Artifact {key} must be a scalar, not shape "
                                 f"{data[key].shape}")
        if data["name"].dtype.kind != "U":
            raise ValueError(f"Artifact name must be a string, not {data['name'].dtype}")
        if data["tables"].dtype != np.uint8 or data["tables"].ndim != 1:
            raise ValueError("Artifact tables must be a 1-D uint8 byte array")
        if int(data["relu"]) not in (0, 1):
            raise ValueError(f"Artifact relu must be 0 or 1, not {int(data['relu'])}")
        try:
            tables = unpack_tables(data["tables"].tobytes())
        except HuffmanError as e:
            raise ValueError(f"Artifact tables are corrupt: {e}") from None
        fields = {key: data[key] for key in _INT_ARRAYS}
        fields.update({key: int(data[key]) for key in _INT_SCALARS if key not in ("channels",
                                                                                   "k")})
        fields.update({key: float(data[key]) for key in _FLOAT_SCALARS})
        art = LayerArtifact(name=str(data["name"]), tables=tables, **fields)
        if (art.channels, art.k) != (int(data["channels"]), int(data["k"])):
            raise ValueError(f"Artifact channels/k ({int(data['channels'])}, {int(data['k'])}) "
                             f"do not match its weights ({art.channels}, {art.k})")
    except ValueError as e:
        raise ValueError(f"Artifact file {str(path)!r}: {e}") from None
    return art
