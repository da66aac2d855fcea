"""What no log line may carry: the one-time tokens in the links the hub mails.

Some links carry their token in the path (a download link ``/exports/<token>``, an
unsubscribe link ``/unsubscribe/<token>``, privacy_hub/web/pages.py), others in a
``token`` query parameter (double opt-in, portal sign-in, request verification:
privacy_hub/jobs/mail_texts.py). A token in a log is a credential in the log, so the
server's access and error logs, and the hub's own log handlers, pass every line through
``redact`` first. tests/web/test_log_redaction.py holds every route of the app with a token
to it.
"""

from __future__ import annotations

import logging
import re

#: path prefixes whose next segment is a token
TOKEN_PATHS = ("/exports/", "/unsubscribe/")
#: query parameters whose value is a token
TOKEN_PARAMETERS = ("token",)

_PATH = re.compile("(" + "|".join(re.escape(p) for p in TOKEN_PATHS) + r")[^/?#\s\"'<>]+")
# A parameter anywhere: after ? or &, or at the start of a bare query string (%(q)s).
_QUERY = re.compile(r"(?<![\w.-])((?:" + "|".join(TOKEN_PARAMETERS) + r")=)[^&;#\s\"'<>]*",
                    re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every token of a mailed link replaced: ``/exports/[token]``,
    ``?token=[redacted]``."""
    if "/" not in text and "token" not in text.lower():
        return text
    return _QUERY.sub(r"\1[redacted]", _PATH.sub(r"\1[token]", text))


class RedactTokens(logging.Filter):
    """A log filter that rewrites each record's message through ``redact``."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot format: leave it to the handler
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install(logger: logging.Logger | logging.Handler) -> None:
    """Add a RedactTokens filter to ``logger`` (or a handler), once."""
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())
