"""Newline framing of a byte stream, with memory bounded whatever the peer sends.

Used for the app-server's stdio (JSON-RPC, one message per line) and for ``codex exec --json``
output (one event per line).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ._messages import INVALID_REQUEST, PREVIEW_CHARS, ProtocolIssue, preview

#: Longest line accepted, in bytes; longer ones are reported and discarded.
DEFAULT_MAX_LINE_BYTES: Final = 16 * 1024 * 1024


class LineFramer:
    """Splits a byte stream into lines, with memory bounded by ``max_line_bytes``.

    :meth:`feed` returns the lines completed by a chunk, without their ``\\n`` (or ``\\r\\n``),
    in order, as ``bytes``. A line longer than the limit is reported once, as a
    ``ProtocolIssue("oversize")`` in its place in that order, as soon as the limit is crossed;
    its remaining bytes are then counted and dropped as they arrive, never buffered, and
    framing resumes after the next newline. So the buffer never holds more than
    ``max_line_bytes`` (+1 for a ``\\r`` that may start a ``\\r\\n``), even for a gigabyte-long
    line. ``\\r\\n`` ends a line like ``\\n``; blank lines are returned (as ``b""``).

    ``line_no`` is the number of the last line returned or reported (lines count from 1, blank
    ones included; an oversize line takes its number when it is reported).
    """

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.max_line_bytes = max_line_bytes
        self.line_no = 0
        self._buffer = bytearray()
        self._discarding = False
        self._discarded = 0
        self._discard_preview = ""

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete line held in memory (at most ``max_line_bytes``, plus one
        for a ``\\r`` that may start a ``\\r\\n``)."""
        return len(self._buffer)

    @property
    def discarding(self) -> bool:
        """True while the rest of an oversize line is being dropped."""
        return self._discarding

    def feed(self, data: bytes | bytearray) -> Sequence[bytes | ProtocolIssue]:
        """Take a chunk (split anywhere); return the lines and oversize issues it completes."""
        if data.__class__ is not bytes:
            data = bytes(data)
        if not data:
            return ()
        if self._discarding:
            nl = data.find(b"\n")
            if nl < 0:
                self._discarded += len(data)
                return ()
            self._discarding = False
            self._discarded = 0
            data = data[nl + 1 :]
        buffer = self._buffer
        if buffer[-1:] == b"\r" and data[:1] == b"\n":  # a \r\n split between two chunks
            del buffer[-1]
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        lines = data.split(b"\n")
        tail = lines.pop()
        limit = self.max_line_bytes
        if buffer:
            if not lines:
                # A \r that may be the first half of a \r\n does not count against the limit.
                if len(buffer) + len(tail) > limit + ((tail or buffer)[-1:] == b"\r"):
                    head = bytes(buffer[: PREVIEW_CHARS * 4])
                    head += tail[: PREVIEW_CHARS * 4 - len(head)]
                    return [self._start_discard(head, len(buffer) + len(tail))]
                buffer += tail
                return ()
            buffer += lines[0]
            lines[0] = bytes(buffer)
            buffer.clear()
        out: Sequence[bytes | ProtocolIssue] = lines
        if lines and (len(data) > limit or len(lines[0]) > limit):
            out = self._check_lengths(lines)
        self.line_no += len(lines)
        if tail:
            if len(tail) > limit + (tail[-1:] == b"\r"):
                return [*out, self._start_discard(tail, len(tail))]
            buffer += tail
        return out

    def _check_lengths(self, lines: list[bytes]) -> list[bytes | ProtocolIssue]:
        """The slow path, for chunks long enough to hold an oversize complete line."""
        limit = self.max_line_bytes
        out: list[bytes | ProtocolIssue] = []
        for n, line in enumerate(lines, self.line_no + 1):
            if len(line) > limit:
                out.append(
                    ProtocolIssue(
                        "oversize",
                        f"line of {len(line)} bytes is over the limit of {limit}; discarded",
                        n,
                        len(line),
                        self._oversize_preview(line),
                        error_code=INVALID_REQUEST,
                    )
                )
            else:
                out.append(line)
        return out

    def _oversize_preview(self, head: bytes) -> str:
        # Only as many bytes as every chunking has seen when the limit is crossed, so the
        # preview is the same however the line arrived.
        return preview(head, min(PREVIEW_CHARS * 4, self.max_line_bytes + 1))

    def _start_discard(self, head: bytes, seen: int) -> ProtocolIssue:
        self._buffer.clear()
        self._discarding = True
        self._discarded = seen
        self._discard_preview = self._oversize_preview(head)
        self.line_no += 1
        return ProtocolIssue(
            "oversize",
            f"line is over the limit of {self.max_line_bytes} bytes;"
            " discarding it up to the next newline",
            self.line_no,
            seen,
            self._discard_preview,
            error_code=INVALID_REQUEST,
        )

    def close(self) -> ProtocolIssue | None:
        """At end of stream: a ``trailing`` issue for bytes left without a newline, if any.

        Its ``size`` counts every byte of that unterminated line (also the dropped ones of an
        oversize line), and its preview is the line's start, for transport diagnostics.
        """
        if self._discarding:
            issue = ProtocolIssue(
                "trailing",
                "end of stream inside an oversize line",
                self.line_no,
                self._discarded,
                self._discard_preview,
            )
            self._discarding = False
            self._discarded = 0
            return issue
        if not self._buffer:
            return None
        data = bytes(self._buffer)
        self._buffer.clear()
        return ProtocolIssue(
            "trailing",
            f"{len(data)} bytes without a newline at end of stream",
            self.line_no + 1,
            len(data),
            preview(data),
        )
