"""Check an XLSX workbook's zip container before openpyxl reads any of it (decompression bombs).

openpyxl decompresses whatever a member's header declares and parses most parts whole (the
document properties, styles, shared strings, the workbook): a 204 KB file whose
``docProps/core.xml`` inflates to 200 MB took 465 MB. Before openpyxl sees the file:

* the central directory's size and member count, from the end record, before ``zipfile``
  parses the directory itself (it keeps an object per member);
* each member's declared size against its compressed size (at most ``MAX_RATIO`` to 1, as Apache
  POI's ``ZipSecureFile`` allows by default) and all of them together against
  ``CONVERTERS_MAX_DECOMPRESSED_BYTES``;
* the parts openpyxl parses whole against the memory budget (``limits``): worksheets are
  streamed, binary parts (images, ``vbaProject.bin``) are never read;
* the actual sizes: every member is decompressed once, in chunks, counting. ``zipfile`` itself
  stops at the declared size and checks the CRC, so this proves the declared sizes true
  (a member that inflates to more, or to other bytes, fails here, named) rather than trusting them.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import IO

from converters.conf import settings
from converters.errors import ConversionError
from converters.limits import check_estimate, reraise_memory_error

#: Members a workbook may have (a big real one has a few hundred).
MAX_MEMBERS = 10_000
#: Bytes of central directory (about 100 per member).
MAX_DIRECTORY_BYTES = 4 * 1024 * 1024
#: Largest decompressed-to-compressed ratio of a member, once it is over RATIO_FROM_BYTES.
MAX_RATIO = 100
RATIO_FROM_BYTES = 1024 * 1024
#: Bytes of memory per byte of a part openpyxl parses whole (measured: styles 13, shared strings 7).
PARSED_WHOLE_COST = 16
#: Read size while counting a member's actual bytes.
CHUNK = 1024 * 1024

_END_RECORD = struct.Struct("<4s4H2LH")  # signature, disks, entries here, entries, directory size and offset
_END_SIGNATURE = b"PK\x05\x06"


def check_workbook_archive(fh: IO[bytes], source: Path) -> None:
    """Refuse a zip that would cost more to open than its size suggests; ``fh`` is left at offset 0."""
    _check_directory(fh, source)
    fh.seek(0)
    try:
        with zipfile.ZipFile(fh) as archive:
            members = archive.infolist()
            _check_declared(members, source)
            for member in members:
                _check_actual(archive, member, source)
    except ConversionError:
        raise
    except Exception as exc:  # zipfile raises BadZipFile, but also ValueError, OSError... on a mangled directory
        reraise_memory_error(exc)
        raise ConversionError(f"{source.name} is not a readable XLSX workbook ({_describe(exc)})") from exc
    finally:
        fh.seek(0)


def _check_directory(fh: IO[bytes], source: Path) -> None:
    """The member count and directory size, read from the end record (a zip's last 22 bytes + comment)."""
    size = fh.seek(0, 2)
    tail_size = min(size, _END_RECORD.size + 0xFFFF)
    fh.seek(size - tail_size)
    tail = fh.read(tail_size)
    at = tail.rfind(_END_SIGNATURE)
    if at < 0 or len(tail) - at < _END_RECORD.size:
        return  # not a zip: zipfile says so next, in its words
    *_, entries, directory_size, _offset, _comment = _END_RECORD.unpack_from(tail, at)
    # 0xFFFF entries (or a 0xFFFFFFFF size) means ZIP64 with the real figure elsewhere: too many anyway.
    if entries > MAX_MEMBERS or directory_size > MAX_DIRECTORY_BYTES:
        raise ConversionError(
            f"{source.name}: the zip has {entries:,} members in a {directory_size:,}-byte directory; "
            f"a workbook may have at most {MAX_MEMBERS:,} in {MAX_DIRECTORY_BYTES // 2**20} MiB"
        )


def _check_declared(members: list[zipfile.ZipInfo], source: Path) -> None:
    if len(members) > MAX_MEMBERS:
        raise ConversionError(f"{source.name}: the zip has {len(members):,} members; at most {MAX_MEMBERS:,}")
    for member in members:
        if member.file_size > RATIO_FROM_BYTES and member.file_size > MAX_RATIO * max(member.compress_size, 1):
            raise ConversionError(
                f"{source.name}: zip member {member.filename!r} inflates {member.compress_size:,} bytes to "
                f"{member.file_size:,} (more than {MAX_RATIO} to 1): a decompression bomb?"
            )
    total = sum(member.file_size for member in members)
    most = settings.MAX_DECOMPRESSED_BYTES
    if most is not None and total > most:
        raise ConversionError(
            f"{source.name}: its zip members decompress to {total:,} bytes; the limit is {most:,} "
            "(CONVERTERS_MAX_DECOMPRESSED_BYTES)"
        )
    whole = sum(member.file_size for member in members if _parsed_whole(member.filename))
    check_estimate(source, whole * PARSED_WHOLE_COST, f"{whole:,} bytes of workbook parts parsed whole")


def _parsed_whole(name: str) -> bool:
    """XML parts openpyxl reads in one piece: all but the worksheets (streamed in read-only mode)."""
    is_xml = name.endswith((".xml", ".rels"))
    return is_xml and not (name.startswith("xl/worksheets/") and name.count("/") == 2)


def _check_actual(archive: zipfile.ZipFile, member: zipfile.ZipInfo, source: Path) -> None:
    count = 0
    try:
        with archive.open(member) as stream:
            while chunk := stream.read(CHUNK):
                count += len(chunk)
                if count > member.file_size:
                    break
    except Exception as exc:  # a bad CRC, a corrupt stream (zlib.error), encryption, an unknown method...
        reraise_memory_error(exc)
        detail = _describe(exc)
        raise ConversionError(f"{source.name}: zip member {member.filename!r} can't be read ({detail})") from exc
    if count != member.file_size:
        raise ConversionError(
            f"{source.name}: zip member {member.filename!r} declares {member.file_size:,} bytes but holds "
            f"{'more' if count > member.file_size else f'{count:,}'}"
        )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
