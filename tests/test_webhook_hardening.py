"""Webhooks that no parser trick, resolver answer or trickling endpoint turns against us.

Every server here is real and bound on 127.0.0.1 by the test: a receiver that records POSTs,
and a trickler that answers one byte every 2 s for as long as the client stays.
"""

from __future__ import annotations

import ipaddress
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url

from evalboard.errors import BadInputError
from evalboard.settings import Settings, get_settings, reset_settings_cache
from evalboard.webhooks import DEFAULT_PORTS, parse_webhook, resolve, validate_webhook_url
from tests.conftest import ROOT, DigitsData, TinyModels
from tests.servers import wait_for
from tests.test_end_to_end import evalboard, run_json
from tests.test_up import Up
from tests.test_webhooks import Receiver
from worker.notifications import deliver, deliver_to
from worker.webhook_delivery import DeliveryError, post_pinned

PRODUCTION = Settings(webhook_allow_private=False, webhook_timeout_s=3)
DEVELOPMENT = Settings(webhook_allow_private=True, webhook_timeout_s=3)
BODY = {"submission_id": 0, "state": "succeeded"}
TRICKLE_EVERY_S = 2.0

# Each reaches 127.0.0.1:{port} through some library's reading, or reads differently in two:
# refused whatever EVALBOARD_WEBHOOK_ALLOW_PRIVATE says.
MISREAD = [
    "http://127.0.0.1:{port}\\@1.1.1.1/h",
    "http://1.1.1.1\\@127.0.0.1:{port}/h",
    "http://127.0.0.1:{port}\\\\@1.1.1.1/h",
    "http://a@127.0.0.1:{port}@example.com/",
    "http://user@1.1.1.1@127.0.0.1:{port}/",
    "http://user:p@ss@127.0.0.1:{port}/",
    "http://%31%32%37.0.0.1:{port}/",
    "http://[::1%25lo]:{port}/",
    "http://[fe80::1%25lo]:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://0x7f.1:{port}/",
    "http://0x7f.0.0.1:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://0177.1:{port}/",
    "http://127.1:{port}/",
    "http://127.0.1:{port}/",
    "http://127.000.000.001:{port}/",
    "http://0:{port}/",
    "http://127.0.0.1.:{port}/",
    "http://localhost.:{port}/",
    "http://１２７.０.０.１:{port}/",  # full-width digits: IDNA maps them to 127.0.0.1
    "http://127。0。0。1:{port}/",  # ideographic full stops
    "http://127.0.0.1:{port}:80/",
    "http://127.0.0.1:+{port}/",
    "http://[127.0.0.1]:{port}/",
    "http://127.0.0.1:{port}/\\x",
    "http://127.0.0.1:{port}/a b",
    "http://127.0.0.1:{port}/a\tb",
]
# Plain spellings of a private address: refused in production only.
PRIVATE = [
    "http://127.0.0.1:{port}/@1.1.1.1",
    "http://127.0.0.1:{port}?@1.1.1.1/",
    "http://127.0.0.1:{port}#@1.1.1.1/",
    "http://1.1.1.1@127.0.0.1:{port}/",
    "http://ex%61mple.com@127.0.0.1:{port}/",
    "http://1.1.1.1%2f@127.0.0.1:{port}/",
    "http://u:p@127.0.0.1:{port}/",
    "HTTP://127.0.0.1:{port}/",
    "hTtP://127.0.0.1:{port}/",
    "http://127.0.0.1:0{port}/",
    "http://localhost:{port}/",
    "http://LocalHost:{port}/",
    "http://0.0.0.0:{port}/",
    "http://127.0.0.2:{port}/",
    "http://[::1]:{port}/",
    "http://[::]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "http://[64:ff9b::7f00:1]:{port}/",
    "http://[2002:7f00:1::]:{port}/",
    "http://10.0.0.1:{port}/",
    "http://169.254.169.254:{port}/latest/meta-data/",
    "http://[fd00::1]:{port}/",
]


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()


class Trickler:
    """A TCP server that reads a request, then answers ``prefix`` at once and one more byte
    every 2 s until the client goes (or never answers at all, when ``silent``)."""

    def __init__(self, prefix: bytes = b"", *, silent: bool = False) -> None:
        self.prefix = prefix
        self.silent = silent
        self.opened: list[float] = []
        self.closed: list[float] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(connection,), daemon=True).start()

    def _trickle(self, connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)  # the request (headers and the small body)
            self.opened.append(time.monotonic())
            if self.prefix and not self.silent:
                connection.sendall(self.prefix)
            while True:
                readable, _, _ = select.select([connection], [], [], TRICKLE_EVERY_S)
                try:
                    if readable and not connection.recv(65536):
                        break  # the client shut the connection
                    if not readable and not self.silent:
                        connection.send(b"x" if self.prefix else b"H")
                except OSError:
                    break
            self.closed.append(time.monotonic())

    def held(self) -> int:
        """Connections still open."""
        return len(self.opened) - len(self.closed)

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slow"

    def stop(self) -> None:
        self.listener.close()


@pytest.fixture()
def trickler() -> Iterator[Trickler]:
    server = Trickler(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    yield server
    server.stop()


@pytest.mark.parametrize("template", MISREAD)
def test_urls_that_parsers_read_differently_are_refused_and_never_called(
    template: str, receiver: Receiver
) -> None:
    url = template.format(port=receiver.port)
    for mode in (PRODUCTION, DEVELOPMENT):
        with pytest.raises(BadInputError, match="webhook"):
            validate_webhook_url(url, mode)
        # Stored anyway (an older version accepted it): delivery reads it the same way.
        assert deliver_to(url, BODY, mode, what="a test") is False
    assert receiver.requests == []


@pytest.mark.parametrize("template", PRIVATE)
def test_every_spelling_of_a_private_address_is_refused_in_production_and_never_called(
    template: str, receiver: Receiver
) -> None:
    url = template.format(port=receiver.port)
    with pytest.raises(BadInputError, match="private, loopback or link-local"):
        validate_webhook_url(url, PRODUCTION)
    assert deliver_to(url, BODY, PRODUCTION, what="a test") is False
    assert receiver.requests == []


def test_the_cli_refuses_a_misread_webhook_before_queueing(
    evalboard_home: Path, digits: DigitsData, tiny_models: TinyModels,
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("EVALBOARD_WEBHOOK_ALLOW_PRIVATE", "false")
    for template in (MISREAD[0], MISREAD[3], MISREAD[11], PRIVATE[0], PRIVATE[8]):
        completed = evalboard(
            "submit", "--model", str(tiny_models.resnet), "--dataset", str(digits.parquet),
            "--webhook", template.format(port=receiver.port), "--json",
        )  # fmt: skip
        report = json.loads(completed.stdout)
        assert completed.returncode == 2, completed.stderr
        assert report["submission_id"] is None
        assert report["error"]["category"] == "bad_input"
        assert "webhook" in report["error"]["message"]
    assert receiver.requests == []


# The pieces of a URL: plain ones, and ones that parsers are known to read differently.
PIECES: dict[str, tuple[list[str], list[str]]] = {
    "scheme": (["http", "https", "HTTP", "hTtPs"], ["ftp", "http:", "", "h\\ttp", "http "]),
    "separator": (["//"], ["/", "\\\\", "///", "//\\", "/\\"]),
    "userinfo": (
        ["", "u@", "u:p@", "u%3a:p%40@", ":@", "1.1.1.1@", "u:@"],
        ["a@b@", "u\\@", "u:p@q@", "@@", "u p@"],
    ),
    "host": (
        [
            "127.0.0.1",
            "1.1.1.1",
            "example.com",
            "EXAMPLE.com",
            "a_b.example",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "[1:2:3:4:5:6:7:8]",
            "xn--exmple-cua.com",
        ],
        [
            "2130706433",
            "0x7f.1",
            "0177.0.0.1",
            "127.1",
            "[::1%25eth0]",
            "ex%41mple.com",
            "exämple.com",
            "localhost.",
            "１２７.０.０.１",
            "127.0.0.1\\",
            "-x.example",
            "x..example",
            "",
            "[::1",
            "::1",
            "[127.0.0.1]",
            "1.1.1.1.",
            "0",
        ],
    ),
    "port": (
        ["", ":", ":80", ":8080", ":65535", ":0443"],
        [":0", ":65536", ":0x50", ":+80", ":8:9", ": 80", ":٣"],
    ),
}
PLAIN_TAILS = st.text(alphabet="/a1?#=&.~-_%:@", max_size=12).map(lambda tail: "/" + tail)
ODD_TAILS = st.text(alphabet="/\\@?#%:[]. a1\t\x7f~é", max_size=12)


@st.composite
def webhook_urls(draw: st.DrawFn) -> str:
    """Plain URLs with up to three of their pieces swapped for odd ones."""
    pieces = {name: draw(st.sampled_from(plain)) for name, (plain, _) in PIECES.items()}
    odd = draw(st.sets(st.sampled_from([*PIECES, "tail"]), max_size=3))
    for name in odd - {"tail"}:
        pieces[name] = draw(st.sampled_from(PIECES[name][1]))
    tail = draw(ODD_TAILS if "tail" in odd else PLAIN_TAILS)
    return "{scheme}:{separator}{userinfo}{host}{port}".format(**pieces) + tail


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(url=webhook_urls())
def test_an_approved_webhook_connects_where_every_parser_reads_it(url: str) -> None:
    try:
        target = parse_webhook(url)
    except BadInputError as refused:
        assert str(refused).startswith("webhook ")
        return
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    split = urlsplit(url)
    for reading in (parse_url(url), parse_url(str(prepared.url))):
        assert reading.scheme == target.scheme
        assert (reading.host or "").strip("[]") == target.host
        assert (reading.port or DEFAULT_PORTS[target.scheme]) == target.port
    assert split.hostname == target.host
    assert (split.port or DEFAULT_PORTS[target.scheme]) == target.port
    # Where delivery connects: the address the URL names (a name is resolved, then checked).
    if target.ip_literal is not None:
        assert resolve(target) == [ipaddress.ip_address(split.hostname or "")]


def test_a_name_that_resolves_to_a_private_address_at_delivery_is_not_called(
    evalboard_home: Path, digits: DigitsData, tiny_models: TinyModels,
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # Accepted at submit (development allows loopback): the name is stored, not its address.
    url = f"http://localhost:{receiver.port}/hook"
    queued = run_json(
        "submit", "--model", str(tiny_models.resnet), "--dataset", str(digits.parquet),
        "--webhook", url,
    )  # fmt: skip
    assert queued["submission_id"] is not None
    # At delivery, this server calls no private address: the name is resolved and checked.
    monkeypatch.setenv("EVALBOARD_WEBHOOK_ALLOW_PRIVATE", "false")
    reset_settings_cache()
    assert get_settings().webhook_allow_private is False
    assert deliver(queued["submission_id"]) is False
    assert receiver.requests == []
    # Where calling it is allowed, it goes through, so the refusal above was the check's.
    monkeypatch.setenv("EVALBOARD_WEBHOOK_ALLOW_PRIVATE", "true")
    reset_settings_cache()
    assert deliver(queued["submission_id"]) is True
    assert [r["path"] for r in receiver.requests] == ["/hook"]


def test_delivery_connects_to_the_checked_address_with_the_urls_host(receiver: Receiver) -> None:
    # .invalid never resolves (RFC 6761): only the pinned address can have been called.
    target = parse_webhook(f"http://user:pa%3Ass@hook.invalid:{receiver.port}/pinned?x=1")
    loopback = ipaddress.ip_address("127.0.0.1")
    status = post_pinned(target, [loopback], b"{}", headers={}, deadline_s=5, what="a test")
    assert status == 204
    (request,) = receiver.requests
    assert request["path"] == "/pinned?x=1"
    assert request["headers"]["Host"] == f"hook.invalid:{receiver.port}"
    assert request["headers"]["Authorization"] == "Basic dXNlcjpwYTpzcw=="  # user:pa:ss
    # Delivery itself resolves the name, and one that does not resolve is retried later.
    with pytest.raises(DeliveryError, match="does not resolve"):
        deliver_to(f"http://hook.invalid:{receiver.port}/", BODY, DEVELOPMENT, what="a test")
    assert len(receiver.requests) == 1


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (openssl, as on any Debian machine)."""
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


def test_https_delivery_to_a_pinned_address_checks_the_certificate_of_the_urls_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, cert = _certificate(tmp_path, "hook.test")
    hosts: list[str] = []
    names: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            hosts.append(self.headers["Host"])
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def record_name(_socket: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        names.append(name)

    context.sni_callback = record_name  # type: ignore[assignment]
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    loopback = [ipaddress.ip_address("127.0.0.1")]
    try:
        # Our CA is trusted as requests would trust it (REQUESTS_CA_BUNDLE).
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        target = parse_webhook(f"https://hook.test:{port}/x")
        assert post_pinned(target, loopback, b"{}", headers={}, deadline_s=5, what="t") == 200
        assert hosts == [f"hook.test:{port}"] and names[-1] == "hook.test"
        # Another name on the same address: its certificate does not match, nothing is sent.
        other = parse_webhook(f"https://other.test:{port}/x")
        with pytest.raises(DeliveryError, match="Cert"):
            post_pinned(other, loopback, b"{}", headers={}, deadline_s=5, what="t")
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        with pytest.raises(DeliveryError, match="Cert"):  # an untrusted issuer
            post_pinned(target, loopback, b"{}", headers={}, deadline_s=5, what="t")
        assert len(hosts) == 1
    finally:
        server.shutdown()


def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(DeliveryError, match="answered 307"):
            deliver_to(f"http://127.0.0.1:{server.server_address[1]}/", BODY, DEVELOPMENT,
                       what="a test")  # fmt: skip
        assert receiver.requests == []
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    "prefix, silent",
    [(b"", False), (b"HTTP/1.1 200 OK\r\nX-Slow: ", False), (b"", True)],
    ids=["status-line", "headers", "silent"],
)
def test_a_trickling_endpoint_is_abandoned_at_the_total_deadline(
    prefix: bytes, silent: bool
) -> None:
    server = Trickler(prefix, silent=silent)
    try:
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="did not answer within 3 s"):
            deliver_to(server.url(), BODY, DEVELOPMENT, what="a test")
        elapsed = time.monotonic() - started
        assert 3.0 <= elapsed < 3.0 + TRICKLE_EVERY_S, elapsed
        wait_for(lambda: server.closed, 5, "the trickling connection stayed open")
        assert server.opened and server.closed[0] - started < 3.0 + TRICKLE_EVERY_S + 1
    finally:
        server.stop()


def _submit(digits: DigitsData, model: Path, *extra: str) -> dict[str, Any]:
    report = run_json(
        "submit", "--model", str(model), "--dataset", str(digits.parquet), "--wait",
        "--timeout", "240", *extra,
    )  # fmt: skip
    assert report["state"] == "succeeded", report
    return report


def _an_evaluation_runs_while_a_notification_trickles(
    trickler: Trickler, digits: DigitsData, tiny_models: TinyModels
) -> None:
    _submit(digits, tiny_models.resnet, "--webhook", trickler.url())
    wait_for(lambda: trickler.held(), 60, "the notification never reached the trickler")
    _submit(digits, tiny_models.vit)
    # It succeeded while the notification still held its own worker: with one slot for both,
    # it could not have started before that connection closed (60 s after it opened).
    assert trickler.held() == 1 and not trickler.closed


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            continue
    return alive


@pytest.fixture()
def slow_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each delivery attempt may take 60 s (the most allowed); stops get a 5 s grace time."""
    monkeypatch.setenv("EVALBOARD_WEBHOOK_TIMEOUT_S", "60")
    monkeypatch.setenv("EVALBOARD_STOP_GRACE_SECONDS", "5")
    reset_settings_cache()


def test_evalboard_worker_runs_an_evaluation_while_a_notification_trickles(
    backend, slow_webhooks: None, trickler: Trickler, digits: DigitsData,
    tiny_models: TinyModels, tmp_path: Path,
) -> None:  # fmt: skip
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "evalboard.cli", "worker", "--concurrency", "1",
             "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ), cwd=ROOT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: log_path.read_text().count(" ready.") >= 2, 120, "workers not ready")
        children = psutil.Process(worker.pid).children(recursive=True)
        _an_evaluation_runs_while_a_notification_trickles(trickler, digits, tiny_models)
        # Stopped while the light worker is still inside the notification: within the grace.
        stopping = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
        assert time.monotonic() - stopping < 5 + 30
        wait_for(lambda: not _alive(children), 30, "worker processes left running")
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def test_a_trickling_notification_holds_the_production_light_worker_only_until_its_deadline(
    backend, start_worker, receiver: Receiver, trickler: Trickler, digits: DigitsData,
    tiny_models: TinyModels, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("EVALBOARD_WEBHOOK_TIMEOUT_S", "4")
    reset_settings_cache()
    # docker-compose.yml's layout: worker-gpu takes eval,train and worker-cpu light (here with
    # one slot, so a notification held past its deadline would block the next one).
    start_worker("gpu", queues="eval,train")
    start_worker("cpu", queues="light")
    _submit(digits, tiny_models.resnet, "--webhook", trickler.url())
    wait_for(lambda: trickler.opened, 60, "the notification never reached the trickler")
    second = _submit(digits, tiny_models.vit, "--webhook", f"http://127.0.0.1:{receiver.port}/ok")
    wait_for(lambda: receiver.for_submission(second["submission_id"]), 60,
             "the next notification waited behind the trickling one")  # fmt: skip
    wait_for(lambda: trickler.closed, 30, "the trickling connection was never cut")
    assert trickler.closed[0] - trickler.opened[0] < 4 + TRICKLE_EVERY_S + 1


def test_evalboard_up_runs_an_evaluation_while_a_notification_trickles_and_stops_in_time(
    evalboard_home: Path, slow_webhooks: None, trickler: Trickler, digits: DigitsData,
    tiny_models: TinyModels, tmp_path: Path,
) -> None:  # fmt: skip
    up = Up(tmp_path / "up.log")
    try:
        wait_for(lambda: up.log().count(" ready.") >= 2, 90, "both workers never ready")
        _an_evaluation_runs_while_a_notification_trickles(trickler, digits, tiny_models)
        children = psutil.Process(up.process.pid).children(recursive=True)
        stopping = time.monotonic()
        up.stop()
        assert up.process.returncode == 0
        assert time.monotonic() - stopping < 5 + 30
        assert "evalboard stopped" in up.log()
        wait_for(lambda: not _alive(children), 30, "children left running")
    finally:
        up.stop()
