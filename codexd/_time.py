"""Wall-clock timestamps as ISO-8601 strings (UTC, millisecond precision), used in every record."""

from __future__ import annotations

import datetime as _dt


def now_iso() -> str:
    """Return the current UTC time as ``2026-01-02T03:04:05.678Z``."""
    now = _dt.datetime.now(_dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def iso_after(seconds: float) -> str:
    """The UTC time ``seconds`` from now, formatted like :func:`now_iso`."""
    then = _dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=seconds)
    return then.strftime("%Y-%m-%dT%H:%M:%S.") + f"{then.microsecond // 1000:03d}Z"
