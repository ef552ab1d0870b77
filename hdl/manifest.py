"""Describe a generated component's Verilog ports for ``manifest.json``."""

from amaranth.hdl import Shape
from amaranth.lib import data, wiring

__all__ = ["describe_ports"]


def _fields(shape):
    """Field list of a struct payload (offsets from bit 0), or None for a plain value."""
    if not isinstance(shape, data.StructLayout):
        return None
    fields = []
    for name, field in shape:
        fshape = Shape.cast(field.shape)
        width, signed = fshape.width, fshape.signed
        fields.append({"name": name, "offset": field.offset, "width": width, "signed": signed})
    return fields


def describe_ports(component: wiring.Component) -> list[dict]:
    """Return ``[{name, direction, width[, fields]}]`` for every port, clock and reset first.

    Names are those of ``amaranth.back.verilog.convert`` (interface path joined by ``__``).
    """
    ports = [
        {"name": "clk", "direction": "input", "width": 1},
        {"name": "rst", "direction": "input", "width": 1},
    ]
    dims = {}  # path of an array of interfaces -> its dimensions (``Member.array``)
    for path, member in component.signature.members.flatten():
        if member.dimensions:
            dims[path] = member.dimensions
        if not member.is_port:
            continue
        shape = member.shape
        width = Shape.cast(shape).width
        # One port per element of every enclosing array: o_stream__0__payload, ..
        names = [[]]
        for i, part in enumerate(path):
            names = [n + [str(part)] for n in names]
            for size in dims.get(path[:i + 1], ()):
                names = [n + [str(k)] for n in names for k in range(size)]
        for name in names:
            entry = {
                "name": "__".join(name),
                "direction": "input" if member.flow == wiring.In else "output",
                "width": width,
            }
            fields = _fields(shape)
            if fields is not None:
                entry["fields"] = fields
            ports.append(entry)
    return ports
