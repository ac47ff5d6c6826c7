"""Protocol Buffers wire encoding for KEDA's ExternalScaler messages (SPEC §3.6).

The seven messages are tiny (strings, a bool, a map, int64s and doubles), so they are encoded here from
their field numbers instead of pulling in generated code and the protobuf runtime. Unknown fields are
skipped on decode, as protobuf requires.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class DecodeError(ValueError):
    """Bytes that are not a valid message."""


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64s are ten-byte two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _string(field: int, value: str) -> bytes:
    if not value:
        return b""  # proto3 leaves default values off the wire
    data = value.encode()
    return _key(field, LENGTH) + _varint(len(data)) + data


def _message(field: int, data: bytes) -> bytes:
    return _key(field, LENGTH) + _varint(len(data)) + data


def _int(field: int, value: int) -> bytes:
    return _key(field, VARINT) + _varint(value) if value else b""


def _double(field: int, value: float) -> bytes:
    return _key(field, FIXED64) + struct.pack("<d", value) if value else b""


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise DecodeError("truncated or oversized varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for every field of an encoded message."""
    position = 0
    while position < len(data):
        key, position = _read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            value, position = _read_varint(data, position)
            yield number, wire_type, value
        elif wire_type == LENGTH:
            length, position = _read_varint(data, position)
            if position + length > len(data):
                raise DecodeError("truncated length-delimited field")
            yield number, wire_type, data[position : position + length]
            position += length
        elif wire_type == FIXED64:
            yield number, wire_type, data[position : position + 8]
            position += 8
        elif wire_type == FIXED32:
            yield number, wire_type, data[position : position + 4]
            position += 4
        else:
            raise DecodeError(f"unsupported wire type {wire_type}")


@dataclasses.dataclass(frozen=True, slots=True)
class ScaledObjectRef:
    name: str = ""
    namespace: str = ""
    scaler_metadata: dict[str, str] = dataclasses.field(default_factory=dict)

    def encode(self) -> bytes:
        entries = b"".join(
            _message(3, _string(1, key) + _string(2, value))
            for key, value in sorted(self.scaler_metadata.items())
        )
        return _string(1, self.name) + _string(2, self.namespace) + entries

    @classmethod
    def decode(cls, data: bytes) -> ScaledObjectRef:
        name = namespace = ""
        metadata: dict[str, str] = {}
        for number, wire_type, value in fields(data):
            if wire_type != LENGTH:
                continue
            assert isinstance(value, bytes)
            if number == 1:
                name = value.decode()
            elif number == 2:
                namespace = value.decode()
            elif number == 3:
                key = entry_value = ""
                for entry_number, entry_type, item in fields(value):
                    if entry_type == LENGTH and isinstance(item, bytes):
                        if entry_number == 1:
                            key = item.decode()
                        elif entry_number == 2:
                            entry_value = item.decode()
                metadata[key] = entry_value
        return cls(name=name, namespace=namespace, scaler_metadata=metadata)


@dataclasses.dataclass(frozen=True, slots=True)
class GetMetricsRequest:
    scaled_object_ref: ScaledObjectRef | None = None
    metric_name: str = ""

    def encode(self) -> bytes:
        ref = _message(1, self.scaled_object_ref.encode()) if self.scaled_object_ref is not None else b""
        return ref + _string(2, self.metric_name)

    @classmethod
    def decode(cls, data: bytes) -> GetMetricsRequest:
        ref: ScaledObjectRef | None = None
        metric = ""
        for number, wire_type, value in fields(data):
            if wire_type == LENGTH and isinstance(value, bytes):
                if number == 1:
                    ref = ScaledObjectRef.decode(value)
                elif number == 2:
                    metric = value.decode()
        return cls(scaled_object_ref=ref, metric_name=metric)


def is_active_response(result: bool) -> bytes:
    return _int(1, 1 if result else 0)


def decode_is_active_response(data: bytes) -> bool:
    return any(
        number == 1 and wire_type == VARINT and bool(value) for number, wire_type, value in fields(data)
    )


def metric_spec_response(metric_name: str, target: float) -> bytes:
    """GetMetricSpecResponse with one MetricSpec (targetSize left 0, targetSizeFloat set)."""
    return _message(1, _string(1, metric_name) + _double(3, target))


def metrics_response(metric_name: str, value: float) -> bytes:
    """GetMetricsResponse with one MetricValue (metricValue left 0, metricValueFloat set)."""
    return _message(1, _string(1, metric_name) + _double(3, value))


def decode_pairs(data: bytes) -> list[tuple[str, float]]:
    """(name, float) of each MetricSpec / MetricValue in a GetMetricSpecResponse / GetMetricsResponse."""
    pairs = []
    for number, wire_type, item in fields(data):
        if number != 1 or wire_type != LENGTH or not isinstance(item, bytes):
            continue
        name, number_value = "", 0.0
        for inner, inner_type, value in fields(item):
            if inner == 1 and inner_type == LENGTH and isinstance(value, bytes):
                name = value.decode()
            elif inner == 3 and inner_type == FIXED64 and isinstance(value, bytes):
                (number_value,) = struct.unpack("<d", value)
        pairs.append((name, number_value))
    return pairs
