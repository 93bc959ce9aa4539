"""A minimal reader for dlib's serialized face-recognition ResNet
(``dlib_face_recognition_resnet_model_v1.dat``): just what this network needs.

It walks the file for the layer tags (``con_4``, ``affine_``, ``fc_*``) and reads the parameter
tensor that follows each one; dlib itself is not needed. Format, from dlib's serialize.h:
an integer is one control byte (bit 7 = negative, low 4 bits = byte count) then little-endian
bytes; a string is an integer length then the bytes; a tensor is version (2), then num_samples, k,
nr, nc, then float32 little-endian values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class Reader:
    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf, self.pos = buf, pos

    def int(self) -> int:
        control = self.buf[self.pos]
        self.pos += 1
        n, negative = control & 0x0F, bool(control & 0x80)
        value = int.from_bytes(self.buf[self.pos : self.pos + n], "little")
        self.pos += n
        return -value if negative else value

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise ValueError(f"dlib tensor version {version} at byte {self.pos}, expected 2")
        shape = [self.int() for _ in range(4)]
        n = int(np.prod(shape))
        values = np.frombuffer(self.buf, "<f4", n, self.pos).copy()
        self.pos += 4 * n
        return values.reshape(shape)


@dataclass
class Layer:
    tag: str
    params: np.ndarray
    extra: dict[str, int] = field(default_factory=dict)


def read_layers(path: Path) -> list[Layer]:
    """The network's parameterised layers, in file order."""
    buf = path.read_bytes()
    layers = []
    for match in re.finditer(rb"(con_4|affine_|fc_[0-9]|fc_no_bias)", buf):
        tag = match.group().decode()
        # A real tag is a serialized dlib string: control byte 0x01, then its length, then the tag.
        start = match.start()
        if buf[start - 1] != len(tag) or buf[start - 2] != 0x01:
            continue
        reader = Reader(buf, match.end())
        extra: dict[str, int] = {}
        if tag.startswith("fc"):
            extra = {"num_outputs": reader.int(), "num_inputs": reader.int()}
        params = reader.tensor()
        if tag == "con_4":
            keys = ("num_filters", "nr", "nc", "sy", "sx", "py", "px")
            extra = {k: reader.int() for k in keys}
        layers.append(Layer(tag, params, extra))
    return layers
