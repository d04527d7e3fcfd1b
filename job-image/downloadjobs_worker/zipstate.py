"""
The ZIP writer's state as plain numbers, and the writer rebuilt from them.

A replacement pod continues a bundle another pod started: it needs a
``zipfile.ZipFile`` that has already written the finished entries (for the
central directory) and, mid-entry, an entry handle that has already written part
of its source (for the data descriptor). ``zipfile`` has no public API for
either, so this module, and only this one, touches its internals: the finished
entries' ``ZipInfo`` fields, and ``_ZipWriteFile``'s counters. Everything it
rebuilds must write exactly the bytes the first pod would have written; the
unit tests compare a resumed bundle with an uninterrupted one byte for byte, so
a Python release that changes these internals fails them.

Only stored entries are continued mid-entry: a deflated entry's compressor
state cannot be saved, so deflated bundles resume only at entry boundaries.
"""

import datetime
import zipfile
from typing import IO, Any, NamedTuple

Stamp = tuple[int, int, int, int, int, int]


def now_stamp() -> Stamp:
    """Every entry's timestamp: fixed when a bundle starts, kept in its checkpoint."""
    now = datetime.datetime.now(tz=datetime.UTC)
    return (now.year, now.month, now.day, now.hour, now.minute, now.second)


class Entry(NamedTuple):
    """
    A finished entry: what the central directory needs to list it. A tuple, so
    that a checkpoint of a thousand entries stays a JSON array per entry.
    """

    name: str
    header_offset: int
    crc: int
    compress_size: int
    file_size: int
    compress_type: int
    flag_bits: int
    extract_version: int
    create_version: int
    external_attr: int
    date_time: Stamp


def record(info: zipfile.ZipInfo) -> Entry:
    """The state of an entry ``zipfile`` finished writing."""
    return Entry(
        name=info.filename,
        header_offset=info.header_offset,
        crc=info.CRC,
        compress_size=info.compress_size,
        file_size=info.file_size,
        compress_type=info.compress_type,
        flag_bits=info.flag_bits,
        extract_version=info.extract_version,
        create_version=info.create_version,
        external_attr=info.external_attr,
        date_time=info.date_time,
    )


def _info(entry: Entry) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(entry.name, date_time=entry.date_time)
    info.header_offset = entry.header_offset
    info.CRC = entry.crc
    info.compress_size = entry.compress_size
    info.file_size = entry.file_size
    info.compress_type = entry.compress_type
    info.flag_bits = entry.flag_bits
    info.extract_version = entry.extract_version
    info.create_version = entry.create_version
    info.external_attr = entry.external_attr
    return info


def restore(archive: zipfile.ZipFile, entries: list[Entry]) -> None:
    """Make a fresh archive (opened on a sink at the resume offset) list ``entries`` first."""
    for entry in entries:
        info = _info(entry)
        archive.filelist.append(info)
        archive.NameToInfo[info.filename] = info


def entry_crc(handle: IO[bytes]) -> int:
    """The running CRC-32 of an entry being written."""
    crc: int = getattr(handle, "_crc")  # noqa: B009 (a private field, named as such)
    return crc


def reopen(archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, written: int, crc: int) -> Any:
    """
    The handle of a stored entry whose header and first ``written`` bytes are in the
    bundle already, as ``archive.open(info, "w")`` returned it then.

    ``info`` carries what the first pod's ``open`` set: ``header_offset`` and
    the data-descriptor flag; the handle continues the CRC from ``crc``.
    """
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError("only stored entries can be continued mid-entry")
    zip64 = info.file_size * 1.05 > zipfile.ZIP64_LIMIT  # as ZipFile._open_to_write decides
    handle = getattr(zipfile, "_ZipWriteFile")(archive, info, zip64)  # noqa: B009
    handle._file_size = handle._compress_size = written
    handle._crc = crc
    archive._writing = True  # type: ignore[attr-defined]
    return handle


def open_info(name: str, size: int, stamp: Stamp, compression: int) -> zipfile.ZipInfo:
    """The ``ZipInfo`` the writer opens each entry with: the same in every pod."""
    info = zipfile.ZipInfo(name, date_time=stamp)
    info.compress_type = compression
    info.file_size = size
    info.external_attr = 0o644 << 16
    return info


def reopen_info(
    name: str,
    size: int,
    stamp: Stamp,
    header_offset: int,
) -> zipfile.ZipInfo:
    """The ``ZipInfo`` of a stored entry after ``open`` wrote its header (see :func:`reopen`)."""
    info = open_info(name, size, stamp, zipfile.ZIP_STORED)
    info.header_offset = header_offset
    info.flag_bits = 0x08  # a data descriptor follows: the sink cannot seek
    zip64 = size * 1.05 > zipfile.ZIP64_LIMIT
    info.extract_version = info.create_version = 45 if zip64 else 20
    return info
