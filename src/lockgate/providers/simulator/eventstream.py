"""A small AWS event stream encoder (`application/vnd.amazon.eventstream`), for the
simulator's Bedrock streams. botocore only decodes this framing, so the simulator encodes
it itself; the tests decode what it writes with botocore's `EventStreamBuffer`.

A message is: total length (uint32), headers length (uint32), CRC32 of those 8 bytes,
headers, payload, CRC32 of everything before it; all big-endian. A header is its name
length (uint8), name, value type (7 = string), value length (uint16) and value.
"""

from __future__ import annotations

import struct
import zlib

_STRING = 7


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack("!B", len(raw_name))
        + raw_name
        + struct.pack("!BH", _STRING, len(raw_value))
        + raw_value
    )


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack("!I", zlib.crc32(message))


def event(event_type: str, payload: bytes) -> bytes:
    """One Converse stream event (`:message-type: event`)."""
    return encode_message(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        payload,
    )


def exception(exception_type: str, payload: bytes) -> bytes:
    """A modelled error inside the stream (`:message-type: exception`)."""
    return encode_message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        payload,
    )
