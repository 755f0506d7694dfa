"""How much work a JPEG asks of its decoder, read from its marker structure before any pixel is decoded.

libjpeg buffers a progressive image and walks every block of it once per scan, however little a scan
holds, so the decode time grows with scans x pixels while the file stays small. Neither Pillow nor
libjpeg's own API (only TurboJPEG's) offers a scan limit, hence this short walk over the markers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SOS = 0xDA  # start of scan: a header segment, then entropy-coded data up to the next marker
_EOI = 0xD9  # end of image: anything after it (an MPO's further images) is not decoded
_STANDALONE = frozenset({0x01, 0xD8})  # TEM and a stray SOI carry no length

# The next marker: 0xFF fill bytes, then a code. Inside entropy-coded data 0xFF is always followed
# by 0x00 (a stuffed byte) or a restart marker RST0-7, which belong to the scan: both are skipped.
_NEXT_MARKER = re.compile(rb"\xff+([^\x00\xff\xd0-\xd7])")


@dataclass(frozen=True)
class MarkerCounts:
    scans: int
    segments: int


def count_markers(data: bytes, *, stop_above_scans: int, stop_above_segments: int) -> MarkerCounts:
    """Scans (SOS) and marker segments of the first image in `data`, which starts with SOI.

    Counting stops once either count passes its bound, so a file of millions of tiny segments costs no
    more than the bound. Payloads (EXIF thumbnails, ICC profiles) are skipped by their length, so their
    bytes are never taken for markers; damage is left for the decoder to report.
    """
    scans = segments = 0
    position = 2
    while scans <= stop_above_scans and segments <= stop_above_segments:
        found = _NEXT_MARKER.search(data, position)
        if found is None or len(data) < found.end() + 2:
            break
        code = found[1][0]
        position = found.end()
        if code == _EOI:
            break
        if code in _STANDALONE:
            continue
        segments += 1
        scans += code == _SOS
        position += int.from_bytes(data[position : position + 2], "big")
    return MarkerCounts(scans, segments)
