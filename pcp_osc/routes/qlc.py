"""QLC+'s numbering of OSC input: the channel a Virtual Console widget must be bound to.

QLC+'s OSC input plugin does not number addresses in order: it gives each OSC path the
16-bit checksum Qt's ``qChecksum`` makes of it (CRC-16/X.25, as ISO 3309 defines it; a
message with several values gets ``PATH_0``, ``PATH_1``, ...). Auto Detect binds a widget to
whichever address arrived last, which in a burst of cue messages is the same one for every
slider, so docs/routes.md lists the numbers to type in by hand. Checked against QLC+ 4.12.6
(tools/qlc_check.py).
"""

from __future__ import annotations

# Qt's qChecksum table (qbytearray.cpp): CRC-16/X.25 four bits at a time.
_CRC_TABLE = (0x0000, 0x1081, 0x2102, 0x3183, 0x4204, 0x5285, 0x6306, 0x7387,
              0x8408, 0x9489, 0xA50A, 0xB58B, 0xC60C, 0xD68D, 0xE70E, 0xF78F)


def qchecksum(data: bytes) -> int:
    """Qt's ``qChecksum(data, len)`` (Qt::ChecksumIso3309): CRC-16/X.25."""
    crc = 0xFFFF
    for c in data:
        crc = ((crc >> 4) & 0x0FFF) ^ _CRC_TABLE[(crc ^ c) & 15]
        c >>= 4
        crc = ((crc >> 4) & 0x0FFF) ^ _CRC_TABLE[(crc ^ c) & 15]
    return ~crc & 0xFFFF


def qlc_channel(address: str, value_index: int | None = None) -> int:
    """The input channel QLC+ gives an OSC address (``value_index`` for one value of a
    several-value message). QLC+ hashes the UTF-8 bytes but counts the path's length in
    UTF-16 units, so only ASCII addresses (all the preset's) are numbered reliably."""
    path = address if value_index is None else f"{address}_{value_index}"
    if not path.isascii():
        raise ValueError(f"QLC+ numbers only ASCII OSC paths reliably; {path!r} is not ASCII")
    return qchecksum(path.encode("ascii"))
