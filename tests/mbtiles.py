"""A tiny raster MBTiles file made in the test: plain PNG tiles (zlib + struct, no imaging
library) over an area, in a checkerboard of two pale colours so a screenshot shows them."""

from __future__ import annotations

import math
import sqlite3
import struct
import zlib
from pathlib import Path

SIM_AREA = (47.33, 8.47, 47.42, 8.61)  # south, west, north, east: the simulator's and tests' area
LIGHT = (0xE8, 0xF0, 0xE0)
DARK = (0xD0, 0xE0, 0xC8)


def png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    """A solid ``size`` x ``size`` RGB PNG with a one-pixel darker frame."""
    frame = bytes(max(0, c - 60) for c in rgb)
    inner = frame + bytes(rgb) * (size - 2) + frame
    rows = [b"\x00" + (frame * size if y in (0, size - 1) else inner) for y in range(size)]

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def xyz(lat: float, lon: float, z: int) -> tuple[int, int]:
    """The XYZ (slippy map) tile holding a point."""
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    rad = math.radians(lat)
    y = int((1.0 - math.asinh(math.tan(rad)) / math.pi) / 2.0 * n)
    return x, y


def make_mbtiles(
    path: Path,
    area: tuple[float, float, float, float] = SIM_AREA,
    zooms: range = range(10, 15),
) -> dict[tuple[int, int, int], bytes]:
    """Write the file; returns the tiles by their XYZ address (z, x, y)."""
    south, west, north, east = area
    light, dark = png(LIGHT), png(DARK)
    tiles: dict[tuple[int, int, int], bytes] = {}
    for z in zooms:
        x0, y0 = xyz(north, west, z)
        x1, y1 = xyz(south, east, z)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                tiles[z, x, y] = light if (x + y) % 2 else dark
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
        db.execute(
            "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, "
            "tile_data BLOB)"
        )
        meta = {
            "name": "test area",
            "format": "png",
            "bounds": f"{west},{south},{east},{north}",
            "minzoom": str(zooms.start),
            "maxzoom": str(zooms.stop - 1),
            "attribution": "test tiles",
        }
        db.executemany("INSERT INTO metadata VALUES (?, ?)", meta.items())
        db.executemany(
            "INSERT INTO tiles VALUES (?, ?, ?, ?)",
            [(z, x, 2**z - 1 - y, data) for (z, x, y), data in tiles.items()],  # rows are TMS
        )
    db.close()
    return tiles
