"""``ARGUS_LOG_FORMAT=json``: one JSON object per log line, for log shippers.

Why parse the message rather than change every log call: Argus's log lines already carry
their context as ``key=value`` pairs (``session=… client=… backlog=…``), written for humans.
The JSON formatter keeps the human message as ``msg`` and lifts each pair into a member of
its own, so a shipper can filter on ``session`` without a regular expression of its own.
Values stay strings except plain integers; a pair never overrides the fixed members
(``ts``, ``level``, ``logger``, ``msg``, ``exc``). An exception's traceback goes in ``exc``
(one line of JSON, newlines escaped), so every record is exactly one line.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

FIXED = frozenset({"ts", "level", "logger", "msg", "exc"})
# key=value, the value either quoted ('…' or "…", as %r writes it) or up to whitespace.
PAIR = re.compile(r"""(?<![\w.=])([A-Za-z_][\w.-]{0,63})=('[^']*'|"[^"]*"|[^\s,;]+)""")
MAX_PAIRS = 32


def context_pairs(message: str) -> dict[str, Any]:
    """The ``key=value`` pairs of a log message (at most MAX_PAIRS), first one wins."""
    pairs: dict[str, Any] = {}
    for match in PAIR.finditer(message):
        key, value = match.group(1), match.group(2)
        if key in FIXED or key in pairs:
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        pairs[key] = (
            int(value) if value.isascii() and value.isdigit() and len(value) < 19 else value
        )
        if len(pairs) >= MAX_PAIRS:
            break
    return pairs


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: ts, level, logger, msg, the pairs, exc."""

    def format(self, record: logging.LogRecord) -> str:
        """One line of JSON."""
        message = record.getMessage()
        obj: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": message,
        }
        for key, value in context_pairs(message).items():
            obj.setdefault(key, value)
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            obj["exc"] = record.exc_text
        return json.dumps(obj, ensure_ascii=False, default=str)
