"""The service's log lines, as text or as one JSON object per line (`log_format`), each with
the id of the request it was written for."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import IO, Any, Literal

from app import request_id

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# The attributes every LogRecord has, and uvicorn's ANSI-coloured copy of its message; anything
# else on a record came from `extra=` and is a field of the line.
_NOT_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class RequestIdFilter(logging.Filter):
    """Gives every record the id of the request being served when it was written ("-" outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.current.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, the record's extra
    fields, and the exception's traceback where there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update((key, value) for key, value in vars(record).items() if key not in _NOT_FIELDS)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def handler(log_format: Literal["text", "json"], stream: IO[str] | None = None) -> logging.Handler:
    """Writes records to `stream` (stderr by default) in the chosen format, each with its request's id."""
    writer = logging.StreamHandler(stream)
    writer.addFilter(RequestIdFilter())
    writer.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    return writer


def configure(log_format: Literal["text", "json"], level: str) -> None:
    """Sends every logger's records (uvicorn's included) to stderr in the chosen format."""
    logging.basicConfig(level=level.upper(), handlers=[handler(log_format)], force=True)
