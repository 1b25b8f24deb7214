"""One webhook POST to addresses already checked, within a total deadline.

urllib3 connects to the checked address itself (never resolving the name again), while the
request carries the URL's Host header and, for https, its SNI and the certificate check for its
host name. A socket timeout bounds each read, not the call: a server that trickles a byte at a
time holds one for ever. So a watchdog shuts the connection down when the deadline passes, in
whatever phase it is (TLS handshake, sending, waiting for the status line).
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from http.client import HTTPException
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalboard.webhooks import Address, WebhookTarget


class DeliveryError(Exception):
    """A webhook endpoint could not be reached or did not answer 2xx; retried with backoff."""


class Watchdog:
    """Shuts a connection's socket down once its deadline passes (from a timer thread)."""

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self.fired = False
        self.connected = False
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None  # a dup: never closed under our feet
        self._timer = threading.Timer(deadline_s, self._fire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def watch(self, connected: socket.socket) -> None:
        """Cut ``connected`` at the deadline (at once if it has passed)."""
        with self._lock:
            self.connected = True
            self._socket = connected.dup()
            if self.fired:
                self._shutdown()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._socket is not None:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its peer

    def stop(self) -> None:
        self._timer.cancel()
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


def _connection(target: WebhookTarget, address: Address, watchdog: Watchdog) -> Any:
    """A urllib3 connection to ``address`` that speaks to ``target``'s host."""
    import certifi
    from urllib3.connection import HTTPConnection, HTTPSConnection

    # The CA bundle requests would use (an operator's own CA, say), else certifi's.
    ca_certs = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")

    base = HTTPSConnection if target.scheme == "https" else HTTPConnection

    class Pinned(base):  # type: ignore[valid-type,misc]
        def _new_conn(self) -> socket.socket:
            connected = super()._new_conn()
            watchdog.watch(connected)
            return connected

    options: dict[str, Any] = {"timeout": watchdog.deadline_s}
    if target.scheme == "https":
        options.update(
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs or certifi.where(),
        )
    return Pinned(str(address), target.port, **options)


def _headers(target: WebhookTarget, extra: dict[str, str]) -> dict[str, str]:
    headers = {"Host": target.host_header, "Content-Type": "application/json", **extra}
    if target.credentials is not None:
        user, password = target.credentials
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    return headers


def post_pinned(
    target: WebhookTarget,
    addresses: list[Address],
    body: bytes,
    *,
    headers: dict[str, str],
    deadline_s: float,
    what: str,
) -> int:
    """POST ``body`` to the first of ``addresses`` that accepts a connection; the status code.

    Redirects are not followed (a 3xx is an answer like any other). Raises DeliveryError when no
    address answers, or when the whole exchange takes longer than ``deadline_s``.
    """
    from urllib3.exceptions import HTTPError
    from urllib3.util.ssl_match_hostname import CertificateError

    started = time.monotonic()
    failure = "no address"
    for address in addresses:
        remaining = deadline_s - (time.monotonic() - started)
        if remaining <= 0:
            break
        watchdog = Watchdog(remaining)
        connection = _connection(target, address, watchdog)
        watchdog.start()
        try:
            connection.request(
                "POST",
                target.request_target,
                body=body,
                headers=_headers(target, headers),
                preload_content=False,  # the status is all we read: a body never fills memory
            )
            status = int(connection.getresponse().status)
            if not watchdog.fired:  # cut mid-headers, http.client takes what it read for whole
                return status
            raise DeliveryError(f"{what} did not answer within {deadline_s:g} s")
        except (OSError, HTTPException, HTTPError, CertificateError) as error:
            failure = type(error).__name__
            if watchdog.fired:
                raise DeliveryError(f"{what} did not answer within {deadline_s:g} s") from None
            if watchdog.connected:
                break  # it may have the request: another address could deliver it twice
        finally:
            watchdog.stop()
            connection.close()
    if time.monotonic() - started >= deadline_s:
        raise DeliveryError(f"{what} did not answer within {deadline_s:g} s")
    raise DeliveryError(f"{what}: {failure}")
