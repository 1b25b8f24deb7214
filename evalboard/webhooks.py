"""Webhook addresses: validated at submit, never shown or logged with their credentials.

Delivery runs on the light queue (``worker/notifications.py``); this module only checks
addresses and sends the notify task by name.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit, urlunsplit

from evalboard.errors import BadInputError
from evalboard.settings import Settings

MAX_URL_LENGTH = 2048


def _parts(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError as error:
        raise BadInputError(f"webhook is not a valid URL: {error}") from None
    return parts


def validate_webhook_url(url: str, settings: Settings) -> str:
    """The webhook URL, checked: http or https, a host, no spaces or control characters.

    Private, loopback and link-local addresses are refused unless allowed
    (``EVALBOARD_WEBHOOK_ALLOW_PRIVATE``; on by default in development only).
    """
    url = url.strip()
    if not url:
        raise BadInputError("webhook is empty")
    if len(url) > MAX_URL_LENGTH:
        raise BadInputError(f"webhook is longer than {MAX_URL_LENGTH} characters")
    if any(ord(character) < 33 or ord(character) == 127 for character in url):
        raise BadInputError("webhook contains spaces or control characters")
    parts = _parts(url)
    if parts.scheme not in ("http", "https"):
        raise BadInputError("webhook must be an http:// or https:// URL")
    if not parts.hostname:
        raise BadInputError("webhook has no host")
    if not settings.webhook_allow_private and is_private_host(parts.hostname):
        raise BadInputError(
            "webhook points to a private, loopback or link-local address, which this server "
            "does not call (EVALBOARD_WEBHOOK_ALLOW_PRIVATE)"
        )
    return url


def is_private_host(hostname: str) -> bool:
    """Whether ``hostname`` is, or resolves to, an address that is not public."""
    try:
        addresses = {ipaddress.ip_address(hostname.strip("[]"))}
    except ValueError:
        try:
            infos = socket.getaddrinfo(hostname, None)
        except OSError:
            return False  # unresolvable now: delivery checks again when it sends
        addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    return any(not address.is_global for address in addresses)


def redact(url: str | None) -> str | None:
    """The URL without its credentials (user:password@), query string or fragment."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    credentials = "***@" if parts.username or parts.password else ""
    query = "?***" if parts.query else ""
    return urlunsplit((parts.scheme, f"{credentials}{host}{port}", parts.path, "", "")) + query


def notify_finished(submission_id: int) -> None:
    """Send the notify task for a submission that just ended (it checks for a webhook)."""
    from evalboard.queue import NOTIFY_TASK, send

    send(NOTIFY_TASK, submission_id)
