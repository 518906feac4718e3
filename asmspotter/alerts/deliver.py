"""Deliver rendered alerts to apprise channels (email, Slack, any apprise URL) or an outbox.

The only network code of the alerts package. :func:`send_alert` sends one
:class:`~asmspotter.alerts.render.AlertMessage` to one :class:`Channel` and
returns a :class:`DeliveryResult`; a channel that is down or refuses the message
is a result with ``ok=False`` and a reason, never an exception, so one bad
channel never stops the others. :func:`write_outbox` keeps a copy of every
message on disk, which is also the fallback when no channel is configured.
Rendering lives in ``asmspotter.alerts.render``; the Prefect task
``tasks/alert.py`` records each (event, channel) delivery in the store so that a
re-run never sends twice.

Channel URLs hold credentials (``${ENV}`` already expanded by the AOI loader),
so they are never logged: logs, labels and errors use :attr:`Channel.label`,
a redacted form.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import mimetypes
import re
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import apprise

from asmspotter.alerts.render import IMAGES_END, IMAGES_START, AlertMessage
from asmspotter.atomic_write import atomic_write
from asmspotter.errors import AlertDeliveryError
from asmspotter.exports import write_bytes_atomic

logger = logging.getLogger(__name__)

__all__ = [
    "Channel",
    "DeliveryResult",
    "channel_from_url",
    "send_alert",
    "write_outbox",
]

# apprise picks an attachment's MIME type with the mimetypes module, which does not
# know GeoJSON; register the IANA type (RFC 7946 section 12) so mail clients and
# webhooks see application/geo+json rather than application/octet-stream.
mimetypes.add_type("application/geo+json", ".geojson")

APPRISE_URL_HELP = "https://github.com/caronc/apprise/wiki"
"""Where the URL formats of every apprise service are documented."""

_REDACTED = "***"

# Schemes whose host and path are an address (mail server and recipients, a webhook
# endpoint we run ourselves), not a secret: only the password and secret-looking
# query values are hidden in their labels. Every other scheme (slack://, discord://,
# tgram://, https://hooks.slack.com/..., ...) carries its token in host or path, so
# its label keeps only the scheme and host class.
_ADDRESS_SCHEMES = frozenset({"mailto", "mailtos", "json", "jsons", "xml", "xmls", "form", "forms"})
_EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})
_SECRET_QUERY_WORDS = ("pass", "pwd", "token", "secret", "key", "auth", "sig", "cred")

# Slack modes that post through a webhook; webhooks cannot upload files (only the
# bot API can), and apprise drops attachments there and still reports success.
_SLACK_MODES_WITHOUT_FILES = frozenset({"hook", "gov-hook", "workflow"})

# apprise logs the cause of a failure at DEBUG, next to lines that hold the full
# payload and the token-bearing POST URL; only these DEBUG lines go into errors.
_DEBUG_REASON_PREFIXES = ("Socket Exception", "Response Details")
_MAX_REASON_CHARS = 600

_OUTBOX_FILES = ("message.html", "message.txt", "message.md", "message.json")


@dataclass(frozen=True)
class Channel:
    """One place alerts go to: an apprise URL, with a label safe to log.

    Build it with :func:`channel_from_url`.

    Attributes:
        url: The apprise URL, credentials included; never log it.
        label: The URL with passwords, tokens and webhook secrets replaced by ``***``,
            for logs, errors and the run record.
        channel_id: ``sha256(url)`` in hex: a stable key for the store's alert table
            that does not reveal the URL.
    """

    url: str
    label: str
    channel_id: str

    def __repr__(self) -> str:
        return f"Channel(label={self.label!r}, channel_id={self.channel_id[:12]!r}…)"


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of sending one message to one channel.

    Attributes:
        channel: Where it was sent.
        ok: True when apprise reported the message accepted.
        error: Why not, naming the channel label and apprise's reason; None when ok.
    """

    channel: Channel
    ok: bool
    error: str | None

    def raise_for_error(self) -> None:
        """Raise if the delivery failed, for callers that want an exception (retries).

        Raises:
            AlertDeliveryError: If ``ok`` is False; the message is :attr:`error`.
        """
        if not self.ok:
            raise AlertDeliveryError(self.error or f"{self.channel.label}: delivery failed")


def _is_secret_query_key(key: str) -> bool:
    """True for query keys that usually hold credentials (``?token=``, ``?apikey=``)."""
    k = key.lower()
    return any(word in k for word in _SECRET_QUERY_WORDS)


def _redact_url(url: str, channel_id: str) -> str:
    """Build the loggable label of a channel URL (see :class:`Channel`)."""
    scheme, sep, _ = url.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return f"<unrecognised URL, channel {channel_id[:12]}>"
    scheme = scheme.lower()
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return f"{scheme}://{_REDACTED}"
    if scheme in {"http", "https"}:
        # apprise accepts a service's own webhook URL (hooks.slack.com, discord.com,
        # ...); the path is the secret, the host says which service it is.
        return f"{scheme}://{host}/{_REDACTED}" if host else f"{scheme}://{_REDACTED}"
    if scheme not in _ADDRESS_SCHEMES:
        return f"{scheme}://{_REDACTED}"
    userinfo = ""
    if parts.username is not None:
        userinfo = parts.username
        if parts.password is not None:
            userinfo += ":" + _REDACTED
        userinfo += "@"
    netloc = userinfo + host + (f":{port}" if port is not None else "")
    query = "&".join(
        f"{k}={_REDACTED if _is_secret_query_key(k) else quote(v, safe='@.,-_')}"
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    return f"{scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def _url_secrets(url: str) -> list[str]:
    """Strings of a URL that must not appear in error messages (to scrub apprise's logs)."""
    # A string apprise cannot parse may be a token pasted without its scheme.
    secrets: list[str] = [] if "://" in url else [url]
    try:
        parts = urlsplit(url)
        if parts.password:
            secrets.append(parts.password)
        secrets.extend(
            v for k, v in parse_qsl(parts.query) if _is_secret_query_key(k) and len(v) >= 4
        )
        scheme = parts.scheme.lower()
        if scheme not in _ADDRESS_SCHEMES:
            tokens = re.split(r"[/:@]", parts.netloc + parts.path)
            # Tokens are long or carry digits; plain words ("services") stay readable.
            secrets.extend(
                t for t in tokens if len(t) >= 6 and (len(t) >= 16 or any(c.isdigit() for c in t))
            )
    except ValueError:
        pass
    return sorted(set(secrets), key=len, reverse=True)


def channel_from_url(url: str) -> Channel:
    """Build a channel from an apprise URL.

    Args:
        url: Any apprise URL, e.g. ``mailtos://user:pass@smtp.example.org/to@example.org``,
            ``slack://T000/B000/XXXX/#mining-alerts`` or ``json://127.0.0.1:8080/hook``.

    Returns:
        The channel, with a redacted label (``mailtos://user:***@smtp.example.org/...``,
        ``slack://***``) and ``channel_id = sha256(url)``. The URL is not checked
        here; :func:`send_alert` reports a URL apprise cannot parse.
    """
    url = url.strip()
    channel_id = hashlib.sha256(url.encode("utf-8")).hexdigest()
    return Channel(url=url, label=_redact_url(url, channel_id), channel_id=channel_id)


class _ThreadCapture(logging.Filter):
    """Takes the apprise log records of one send, whichever thread apprise logs them from.

    apprise 2.x runs a plugin's ``send`` on its own executor threads, so the records
    of a send cannot be told apart by thread: sends are serialised instead
    (:data:`_send_lock`), and every record during one belongs to it. The records are
    dropped after capture: they may name the raw URL (``Unparseable URL
    slack://...``), so :func:`send_alert` logs them itself, scrubbed, in its result line.
    """

    def __init__(self, thread_id: int, passthrough_level: int) -> None:
        super().__init__()
        self.thread_id = thread_id
        self.passthrough_level = passthrough_level
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False


_capture_lock = threading.Lock()
_send_lock = threading.Lock()
"""One apprise send at a time (alerts are few; their log records must not mix)."""
_capture_depth = 0
_capture_saved_level = logging.NOTSET
_capture_passthrough = logging.WARNING


@contextmanager
def _capture_apprise_logs() -> Iterator[_ThreadCapture]:
    """Capture what apprise logs during one send (any thread), DEBUG included.

    apprise states a failure's cause ("Connection refused", the HTTP response) only
    at DEBUG, so its logger is lowered to DEBUG for the duration. A logger filter
    keeps those extra records (which hold payloads and token-bearing URLs) away
    from the application's handlers: they are captured and dropped. Sends take
    turns (:data:`_send_lock`). (:class:`apprise.LogCapture` lowers the level
    without such a filter.)
    """
    apprise_logger = logging.getLogger("apprise")
    with _send_lock, _capture_apprise_logs_unlocked(apprise_logger) as capture:
        yield capture


@contextmanager
def _capture_apprise_logs_unlocked(apprise_logger: logging.Logger) -> Iterator[_ThreadCapture]:
    """:func:`_capture_apprise_logs` without the send lock."""
    global _capture_depth, _capture_saved_level, _capture_passthrough
    with _capture_lock:
        if _capture_depth == 0:
            _capture_saved_level = apprise_logger.level
            _capture_passthrough = apprise_logger.getEffectiveLevel()
            apprise_logger.setLevel(logging.DEBUG)
        _capture_depth += 1
        capture = _ThreadCapture(threading.get_ident(), _capture_passthrough)
        apprise_logger.addFilter(capture)
    try:
        yield capture
    finally:
        with _capture_lock:
            apprise_logger.removeFilter(capture)
            _capture_depth -= 1
            if _capture_depth == 0:
                apprise_logger.setLevel(_capture_saved_level)


def _reason(records: Sequence[logging.LogRecord], channel: Channel, *, default: str) -> str:
    """Condense apprise's log records into one line, the URL's secrets scrubbed."""
    lines: list[str] = []
    for record in records:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            text = str(record.msg)
        if record.levelno >= logging.WARNING or text.startswith(_DEBUG_REASON_PREFIXES):
            lines.append(" ".join(text.split()))
    reason = "; ".join(dict.fromkeys(lines)) or default
    reason = reason.replace(channel.url, channel.label)
    for secret in _url_secrets(channel.url):
        reason = reason.replace(secret, _REDACTED)
    if len(reason) > _MAX_REASON_CHARS:
        reason = reason[: _MAX_REASON_CHARS - 1] + "…"
    return reason


def _native_format(plugin: Any) -> Any:
    """The body format a plugin prefers.

    apprise 1.x had one ``notify_format``; 2.x lists the formats a plugin accepts,
    preferred first (``json://``: text, html, markdown).
    """
    formats = plugin.notify_format
    if isinstance(formats, list | tuple | set | frozenset):
        return next(iter(formats), None)
    return formats


def _is_slack(url: str) -> bool:
    """True for ``slack://`` URLs and Slack's own ``https://hooks.slack.com`` webhooks."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() == "slack" or (parts.hostname or "").lower() == "hooks.slack.com"


def _files_line(attachments: Sequence[Path], why: str) -> str:
    """Markdown line naming the files a channel drops (names only: no server paths)."""
    names = ", ".join(f"`{p.name}`" for p in attachments)
    return f"_{why}: {names}; they come with the e-mail and the outbox._"


def _email_url_inline(url: str) -> tuple[str, bool]:
    """Turn on apprise's inline images (``?inline=yes``) unless the URL says otherwise.

    Returns:
        The URL to send with, and whether images will be inline.
    """
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    if "inline" in query:
        return url, query["inline"].strip().lower() in {"yes", "true", "1", "on", "y"}
    return url + ("&" if "?" in url else "?") + "inline=yes", True


def _without_image_block(body_html: str) -> str:
    """Drop the ``cid:`` image block of an HTML body (images go as plain attachments)."""
    start, end = body_html.find(IMAGES_START), body_html.find(IMAGES_END)
    if start < 0 or end < start:
        return body_html
    return body_html[:start] + body_html[end + len(IMAGES_END) :]


@contextmanager
def _email_plain_part(body_html: str, body_text: str) -> Iterator[None]:
    """Make apprise's e-mail use our own text as the ``text/plain`` alternative.

    apprise builds the plain part of an HTML e-mail by converting the HTML, which
    turns the site table into one cell per line. While this is active, converting
    ``body_html`` (and what apprise appends to it) to text yields ``body_text``
    (the outbox ``message.txt``); every other conversion is apprise's own. Sends are serialised
    (:data:`_send_lock`), so the swap cannot leak into another send.
    """
    from apprise.plugins.email import base

    email_base: Any = base  # the module global apprise's e-mail builder calls
    original = email_base.convert_between

    def convert(from_format: Any, to_format: Any, content: str = "", *args: Any) -> Any:
        if (
            from_format == apprise.NotifyFormat.HTML
            and to_format == apprise.NotifyFormat.TEXT
            # apprise strips the body and may append <img> anchors to it
            and content.strip().startswith(body_html.strip())
        ):
            return body_text
        return original(from_format, to_format, content, *args)

    email_base.convert_between = convert
    try:
        yield
    finally:
        email_base.convert_between = original


def send_alert(
    message: AlertMessage, channel: Channel, attachments: Sequence[Path]
) -> DeliveryResult:
    """Send one message to one channel with apprise.

    Email (``mailto://``, ``mailtos://``) gets the HTML body with the files attached;
    images are shown inline (``cid:``) because ``?inline=yes`` is added to the URL
    unless it sets ``inline`` itself. Slack webhooks get the compact Markdown block
    (or the Markdown body) plus a line saying where the files are,
    because webhooks cannot carry files (apprise would drop them and report
    success). Other channels get the Markdown body if they format text, else the
    plain-text body, and the attachments where the service takes files.

    Args:
        message: The rendered alert.
        channel: Where to send it.
        attachments: Files to attach (GeoJSON, quicklook PNG); missing ones are
            skipped with a warning, the message still goes.

    Returns:
        The result. A channel that is down, refuses the message or has a URL apprise
        cannot parse gives ``ok=False`` with an error naming the channel label and
        the reason; nothing is raised for delivery failures.
    """
    present = [p for p in attachments if p.is_file()]
    for missing in (p for p in attachments if not p.is_file()):
        logger.warning(
            "Alert %r to %s: attachment %s does not exist; sending without it",
            message.title,
            channel.label,
            missing,
        )

    scheme = channel.url.partition("://")[0].lower()
    send_url, inline_images = channel.url, False
    if scheme in _EMAIL_SCHEMES:
        send_url, inline_images = _email_url_inline(channel.url)

    with _capture_apprise_logs() as capture:
        plugin: Any = apprise.Apprise.instantiate(send_url)
        if not plugin:
            error = (
                f"{channel.label} is not a URL apprise understands; see {APPRISE_URL_HELP} "
                "for the URL format of each service, and fix the alerts URL in the AOI "
                f"file (apprise: {_reason(capture.records, channel, default='no reason given')})."
            )
            logger.warning("Alert %r not sent: %s", message.title, error)
            return DeliveryResult(channel=channel, ok=False, error=error)

        body = message.body_markdown
        body_format = apprise.NotifyFormat.MARKDOWN
        carries_files = bool(getattr(plugin, "attachment_support", False))
        if scheme in _EMAIL_SCHEMES:
            body, body_format = message.body_html, apprise.NotifyFormat.HTML
            if not inline_images:
                body = _without_image_block(body)
        elif _is_slack(channel.url):
            body = message.body_compact or body
            carries_files = getattr(plugin, "mode", None) not in _SLACK_MODES_WITHOUT_FILES
            if present and not carries_files:
                body += "\n" + _files_line(
                    present,
                    "Slack webhooks cannot carry images or files (a bot token, "
                    "slack://xoxb-.../#channel, can)",
                )
        elif _native_format(plugin) == apprise.NotifyFormat.TEXT:
            body, body_format = message.body_text, apprise.NotifyFormat.TEXT
            if present and not carries_files:
                body += "\n" + _files_line(present, "This channel does not carry attachments")
        elif present and not carries_files:
            body += "\n" + _files_line(present, "This channel does not carry attachments")

        attach = None
        if present and carries_files:
            attach = apprise.AppriseAttachment()
            for path in present:
                attach.add(str(path))

        sender = apprise.Apprise()
        sender.add(plugin)
        plain = (
            _email_plain_part(body, f"{message.title}\n\n{message.body_text}")
            if scheme in _EMAIL_SCHEMES
            else nullcontext()
        )
        try:
            with plain:
                ok = bool(
                    sender.notify(
                        title=message.title, body=body, body_format=body_format, attach=attach
                    )
                )
        except Exception as exc:  # apprise returns False on failure; this is a plugin bug
            ok = False
            capture.records.append(
                logging.makeLogRecord(
                    {"msg": f"{type(exc).__name__}: {exc}", "levelno": logging.ERROR}
                )
            )

    if ok:
        warnings = [r for r in capture.records if r.levelno >= logging.WARNING]
        if warnings:
            logger.warning(
                "Alert %r to %s: apprise warned: %s",
                message.title,
                channel.label,
                _reason(warnings, channel, default=""),
            )
        logger.info(
            "Delivered alert %r to %s (%d attachment(s))",
            message.title,
            channel.label,
            len(present) if attach is not None else 0,
        )
        return DeliveryResult(channel=channel, ok=True, error=None)
    error = f"{channel.label}: apprise could not deliver the alert: " + _reason(
        capture.records, channel, default="apprise reported failure and logged no reason"
    )
    logger.warning("Alert %r not delivered: %s", message.title, error)
    return DeliveryResult(channel=channel, ok=False, error=error)


def _outbox_folder_name(message: AlertMessage) -> str:
    """Name the outbox folder of a message: window end date (if known) and a content hash."""
    digest = hashlib.sha256(
        "\n".join([message.title, *sorted(set(message.event_keys))]).encode("utf-8")
    ).hexdigest()[:16]
    dates = sorted({key.rsplit(":", 1)[-1] for key in message.event_keys})
    if dates and re.fullmatch(r"\d{4}-\d{2}-\d{2}", dates[-1]):
        return f"{dates[-1]}-{digest}"
    return f"alert-{digest}"


def _write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically, with a normal file mode."""
    write_bytes_atomic(path, text.encode("utf-8"))


def _html_with_file_links(body_html: str, names: dict[str, str]) -> str:
    """Point the e-mail's ``cid:`` images at the files beside ``message.html``.

    ``cid:`` only resolves inside a MIME message; opened from the outbox folder in a
    browser, the HTML needs relative links to the copied files.
    """

    def link(match: re.Match[str]) -> str:
        name = html.unescape(match.group(1))
        return 'src="' + html.escape(quote(names.get(name, name)), quote=True) + '"'

    return re.sub(r'src="cid:([^"]+)"', link, body_html)


def write_outbox(message: AlertMessage, attachments: Sequence[Path], outbox_dir: Path) -> Path:
    """Keep a copy of a message and its files on disk.

    The folder is ``<outbox_dir>/<window end>-<hash>``, the hash taken over the
    title and the event keys, so writing the same message again rewrites the same
    folder (idempotent) instead of adding one. It holds ``message.html``,
    ``message.txt`` (title, blank line, text body), ``message.md`` and
    ``message.json`` (title, event keys, file names), plus a copy of each attachment.

    Args:
        message: The rendered alert.
        attachments: Files to copy in; missing ones are skipped with a warning and
            listed under ``missing_attachments`` in ``message.json``.
        outbox_dir: Root of the outbox; created if needed.

    Returns:
        The message's folder.
    """
    folder = outbox_dir / _outbox_folder_name(message)
    folder.mkdir(parents=True, exist_ok=True)

    copied: list[str] = []
    renamed: dict[str, str] = {}
    missing: list[str] = []
    for src in attachments:
        if not src.is_file():
            logger.warning("Outbox %s: attachment %s does not exist; skipped", folder, src)
            missing.append(str(src))
            continue
        name = src.name
        if name in _OUTBOX_FILES or name in copied:
            name = f"{len(copied) + 1}-{name}"
        renamed[src.name] = name
        if src.resolve() != (folder / name).resolve():
            with atomic_write(folder / name) as scratch:
                shutil.copy2(src, scratch)
        copied.append(name)

    _write_text(folder / "message.html", _html_with_file_links(message.body_html, renamed))
    _write_text(folder / "message.txt", f"{message.title}\n\n{message.body_text}")
    _write_text(folder / "message.md", f"# {message.title}\n\n{message.body_markdown}")
    manifest = {
        "title": message.title,
        "event_keys": list(message.event_keys),
        "attachments": copied,
        "missing_attachments": missing,
    }
    _write_text(folder / "message.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    logger.info("Wrote alert %r to outbox %s (%d file(s))", message.title, folder, len(copied))
    return folder
