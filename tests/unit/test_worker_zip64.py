"""ZIP64: a bundle past 65,535 entries is still one valid archive, entries in order."""

import io
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

from downloadjobs_worker.bundle import Progress, Source, write_zip
from tests.unit.zipcheck import unzip_test

ENTRIES = 65_535 + 10  # one past the classic format's 16-bit entry count, and some


class Unseekable:
    """An append-only sink, like the multipart upload: no seek, so data descriptors."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes, /) -> int:
        return self.buffer.write(data)

    def tell(self) -> int:
        return self.buffer.tell()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class Tiny:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def iter_chunks(self, size: int = 0) -> Iterator[bytes]:
        if self.data:
            yield self.data


def content(file_id: int) -> bytes:
    return b"%d" % file_id if file_id % 3 else b""


def test_more_than_65535_entries_make_a_zip64_archive(tmp_path: Path) -> None:
    sources = [
        Source(10000 + i, f"files/{10000 + i}.zip", len(content(10000 + i))) for i in range(ENTRIES)
    ]
    progress = Progress(files_total=ENTRIES, bytes_total=sum(s.size for s in sources))
    out = Unseekable()
    write_zip(out, sources, lambda src: Tiny(content(src.file_id)), progress, lambda _: None)
    data = out.buffer.getvalue()

    # the ZIP64 end of central directory record and its locator precede the classic one,
    # whose 16-bit counts say "see ZIP64"
    classic = data.rindex(b"PK\x05\x06")
    assert data.rfind(b"PK\x06\x07", 0, classic) != -1
    zip64_end = data.rfind(b"PK\x06\x06", 0, classic)
    assert zip64_end != -1
    entries_on_disk, entries_total = struct.unpack_from("<QQ", data, zip64_end + 24)
    assert entries_on_disk == entries_total == ENTRIES
    assert struct.unpack_from("<HH", data, classic + 8) == (0xFFFF, 0xFFFF)

    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        infos = bundle.infolist()
        assert [info.filename for info in infos] == [s.entry_name for s in sources]
        for info in infos[:: ENTRIES // 50] + infos[-3:]:
            file_id = int(info.filename.removesuffix(".zip"))
            assert bundle.read(info) == content(file_id)
    path = tmp_path / "many.zip"
    path.write_bytes(data)
    unzip_test(path)
