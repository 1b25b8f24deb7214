"""Webhook addresses: validated at submit, never shown or logged with their credentials.

A URL is read once, strictly (``parse_webhook``): anything that two URL parsers could read
differently (a backslash, an ``@`` in the user name, a percent-encoded host, an IPv4 address in
a decimal, octal or hex form, a zone id) is refused, and what is approved is the exact scheme,
host, port and request target that delivery uses. Its host is resolved once per use
(``webhook_addresses``); every address must be public unless ``EVALBOARD_WEBHOOK_ALLOW_PRIVATE``,
and delivery (``worker/notifications.py``, on the light queue) connects to exactly those
addresses, so a name that changes between the check and the call gains nothing.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from evalboard.errors import BadInputError
from evalboard.settings import Settings

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 3986's characters: unreserved, reserved and "%" (of a percent-encoding). Everything else
# (a backslash above all, but also quotes, braces, non-ASCII) is read differently by different
# parsers, or silently re-encoded by one of them.
_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# WHATWG URL: a host whose last label is a number is an IPv4 address (in any base) to browsers
# and to inet_aton, whatever it looks like to a name check.
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
_IPV6_LITERAL = re.compile(r"\[([0-9a-f:.]+)\](?::([0-9]*))?")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class WebhookTarget:
    """What a webhook URL means, read once: where delivery connects and what it sends."""

    scheme: str  # http | https
    host: str  # a lower-case DNS name or an IP address (IPv6 without brackets)
    port: int  # the explicit port, or the scheme's default
    request_target: str  # path and query, as sent on the request line
    credentials: tuple[str, str] | None  # user and password, percent-decoded

    @property
    def ip_literal(self) -> Address | None:
        """The host as an address when the URL names one, else None."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    @property
    def host_header(self) -> str:
        """The Host header: the host as the URL names it, the port when it is not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def _refuse(problem: str) -> BadInputError:
    return BadInputError(f"webhook {problem}")


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError as error:
        raise _refuse(f"is not a valid URL: {error}") from None
    return parts


def _host_and_port(hostport: str) -> tuple[str, str]:
    """The host (lower case, IPv6 without brackets) and the port text of ``host[:port]``."""
    if "%" in hostport:
        raise _refuse(
            "host contains '%' (a percent-encoded host or an IPv6 zone id): write the host "
            "plainly, as a DNS name or an IP address"
        )
    hostport = hostport.lower()
    if hostport.startswith("["):
        literal = _IPV6_LITERAL.fullmatch(hostport)
        if literal is None:
            raise _refuse("is not a valid URL: a bracketed host must be an IPv6 address")
        try:
            ipaddress.IPv6Address(literal[1])
        except ValueError:
            raise _refuse(f"is not a valid URL: [{literal[1]}] is not an IPv6 address") from None
        return literal[1], literal[2] or ""
    host, _, port = hostport.partition(":")
    if not port.isdigit() and port:
        raise _refuse(f"is not a valid URL: port {port!r} is not a number")
    if not host:
        raise _refuse("has no host")
    if host.endswith("."):
        raise _refuse(f"host {host!r} ends with a dot: write it without the trailing dot")
    if not _HOST_NAME.fullmatch(host):
        raise _refuse(
            f"host {host!r} is not a DNS name (letters, digits, '-' and '_' between dots; an "
            "international name in its xn-- form) nor an IP address"
        )
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        try:
            canonical = str(ipaddress.IPv4Address(host)) == host
        except ValueError:
            canonical = False
        if not canonical:
            raise _refuse(
                f"host {host!r} reads as an IPv4 address in a shortened, decimal, octal or hex "
                "form: write it as four decimal numbers (a.b.c.d), or use a DNS name"
            )
    return host, port


def _read_by_delivery_parsers(url: str, scheme: str, host: str, port: int, userinfo: str) -> str:
    """The request target (path and query) as requests and urllib3 send it; refuses a URL that
    they read with another scheme, host, port or user name than ours."""
    import requests
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    try:
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        readings = [parse_url(url), parse_url(str(prepared.url))]
    except (LocationParseError, requests.RequestException, ValueError) as error:
        raise _refuse(f"is not a valid URL: {error}") from None
    for reading in readings:
        seen = (
            reading.scheme,
            (reading.host or "").strip("[]"),
            reading.port or DEFAULT_PORTS.get(reading.scheme or "", 0),
            unquote(reading.auth or ""),  # requests sends user and password decoded
        )
        if seen != (scheme, host, port, unquote(userinfo)):
            raise _refuse(
                "is read differently by different URL parsers (its scheme, host, port or user "
                "name): write it in plain form, percent-encoding any reserved character"
            )
    return readings[0].request_uri


def parse_webhook(url: str) -> WebhookTarget:
    """Read a webhook URL strictly; refuse (BadInputError) what is not a plain http(s) URL."""
    url = url.strip()
    if not url:
        raise _refuse("is empty")
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(f"is longer than {MAX_URL_LENGTH} characters")
    if any(ord(character) < 33 or ord(character) == 127 for character in url):
        raise _refuse("contains spaces or control characters")
    if not _URL_CHARACTERS.fullmatch(url):
        odd = sorted({c for c in url if not _URL_CHARACTERS.fullmatch(c)})
        raise _refuse(
            f"contains characters that are not allowed in a URL ({', '.join(map(ascii, odd))}): "
            "percent-encode them in the path or query"
        )
    parts = _split(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise _refuse("must be an http:// or https:// URL")
    if not parts.netloc:
        raise _refuse("has no host")
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if "@" in userinfo:
        raise _refuse("user name or password contains '@': percent-encode it as %40")
    host, port_text = _host_and_port(hostport)
    port = int(port_text) if port_text else DEFAULT_PORTS[parts.scheme]
    if not 0 < port < 65536:
        raise _refuse(f"is not a valid URL: port {port} is out of range")
    request_target = _read_by_delivery_parsers(url, parts.scheme, host, port, userinfo)
    user, _, password = userinfo.partition(":")
    return WebhookTarget(
        scheme=parts.scheme,
        host=host,
        port=port,
        request_target=request_target,
        credentials=(unquote(user), unquote(password)) if userinfo else None,
    )


def is_public(address: Address) -> bool:
    """Whether ``address`` is a global one, including the IPv4 address an IPv6 one carries."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not embedded.is_global:
            return False
    return address.is_global


def resolve(target: WebhookTarget) -> list[Address]:
    """Every address the host resolves to, in the resolver's order; OSError when none."""
    if target.ip_literal is not None:
        return [target.ip_literal]
    infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    addresses: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OSError(f"{target.host} resolves to no address")
    return addresses


def check_addresses(target: WebhookTarget, addresses: list[Address], settings: Settings) -> None:
    """Refuse the target when any of its addresses is not public (unless allowed)."""
    if settings.webhook_allow_private:
        return
    private = [address for address in addresses if not is_public(address)]
    if private:
        raise _refuse(
            f"host {target.host} points to a private, loopback or link-local address "
            f"({private[0]}), which this server does not call (EVALBOARD_WEBHOOK_ALLOW_PRIVATE)"
        )


def webhook_addresses(target: WebhookTarget, settings: Settings) -> list[Address]:
    """Resolve the host once and check every address; delivery connects to these only."""
    addresses = resolve(target)
    check_addresses(target, addresses, settings)
    return addresses


def validate_webhook_url(url: str, settings: Settings) -> str:
    """The webhook URL, checked: a plain http or https URL that every parser reads alike.

    Private, loopback and link-local addresses are refused unless allowed
    (``EVALBOARD_WEBHOOK_ALLOW_PRIVATE``; on by default in development only). A name that
    does not resolve now is accepted: delivery resolves and checks it again when it sends.
    """
    target = parse_webhook(url)
    if not settings.webhook_allow_private:
        try:
            webhook_addresses(target, settings)
        except OSError:
            pass
    return url.strip()


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
