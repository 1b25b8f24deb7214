"""Webhooks: a local HTTP server receives what a submission's end and a rank change send."""

from __future__ import annotations

import base64
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from evalboard.errors import BadInputError
from evalboard.settings import Settings
from evalboard.webhooks import redact, validate_webhook_url
from tests import factories
from tests.conftest import DigitsData, TinyModels
from tests.servers import wait_for
from tests.test_end_to_end import evalboard, run_json

PAYLOAD_KEYS = {
    "submission_id", "state", "model", "dataset", "split", "metrics", "rank", "previous_rank",
}  # fmt: skip


class Receiver:
    """A real HTTP server on loopback that records every POST it gets."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def for_submission(self, submission_id: int) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["json"]["submission_id"] == submission_id]


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()


def test_webhooks_get_the_outcome_and_rank_changes_without_credentials_in_any_log(
    backend, start_worker, receiver: Receiver, digits: DigitsData, tiny_models: TinyModels,
    data_root: Path,
) -> None:  # fmt: skip
    worker = start_worker()
    url = f"http://hook-user:s3cret-pass@127.0.0.1:{receiver.port}/hooks/evalboard?key=k3y"
    good = run_json(
        "submit", "--model", str(tiny_models.trained_resnet), "--dataset", str(digits.parquet),
        "--webhook", url, "--wait",
    )  # fmt: skip
    assert good["state"] == "succeeded"
    assert good["webhook"] == f"http://***@127.0.0.1:{receiver.port}/hooks/evalboard?***"
    wait_for(lambda: receiver.for_submission(good["submission_id"]), 60, "no webhook arrived")
    (delivered,) = receiver.for_submission(good["submission_id"])
    assert set(delivered["json"]) == PAYLOAD_KEYS
    assert delivered["json"]["state"] == "succeeded"
    assert delivered["json"]["rank"] == 1 and delivered["json"]["previous_rank"] is None
    assert delivered["json"]["metrics"] == good["metrics"]
    assert delivered["path"] == "/hooks/evalboard?key=k3y"
    credentials = base64.b64decode(delivered["headers"]["Authorization"].split()[1]).decode()
    assert credentials == "hook-user:s3cret-pass"

    # A dead endpoint never holds the worker: the next submission runs at once.
    dead = f"http://127.0.0.1:{receiver.port + 1 if receiver.port < 65535 else 1}/gone"
    run_json("submit", "--model", str(tiny_models.vit), "--dataset", str(digits.parquet),
             "--webhook", dead, "--wait")  # fmt: skip
    # A re-evaluation that moves a model's rank notifies the original submitter's webhook.
    challenger = data_root / f"challenger-{backend.name}"
    factories.make_resnet(challenger)
    before = run_json(
        "submit", "--model", str(challenger), "--dataset", str(digits.parquet),
        "--webhook", url, "--wait",
    )  # fmt: skip
    wait_for(lambda: receiver.for_submission(before["submission_id"]), 60, "no webhook")
    previous_rank = receiver.for_submission(before["submission_id"])[0]["json"]["rank"]
    assert previous_rank > 1
    for name in ("model.safetensors", "config.json"):  # the trained weights, a new revision
        shutil.copy(tiny_models.trained_resnet / name, challenger / name)
    checked = json.loads(evalboard("reevaluate", "--due", "--json").stdout)
    (rerun,) = [e for e in checked["due"] if e["model"] == str(challenger)]
    wait_for(lambda: receiver.for_submission(rerun["submission_id"]), 120, "no rank change")
    (moved,) = receiver.for_submission(rerun["submission_id"])
    assert (moved["json"]["rank"], moved["json"]["previous_rank"]) == (1, previous_rank)
    assert moved["json"]["state"] == "succeeded"

    worker.stop()
    assert "s3cret-pass" not in worker.log() and "k3y" not in worker.log()
    status = evalboard("status", str(before["submission_id"]))
    assert "s3cret-pass" not in status.stdout + status.stderr


@pytest.mark.parametrize(
    "url, problem",
    [
        ("ftp://example.org/hook", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http://", "no host"),
        ("http://exa mple.org/", "spaces or control characters"),
        ("http://example.org/\x00", "spaces or control characters"),
        ("https://example.org:99999/", "not a valid URL"),
        ("https://example.org/" + "a" * 2100, "longer than"),
    ],
)
def test_a_bad_webhook_is_refused_with_its_reason(url: str, problem: str) -> None:
    with pytest.raises(BadInputError, match=problem):
        validate_webhook_url(url, Settings(webhook_allow_private=True))


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/x", "http://[::1]/x", "http://10.1.2.3/x", "http://169.254.1.1/"]
)
def test_private_webhook_addresses_are_refused_where_not_allowed(url: str) -> None:
    with pytest.raises(BadInputError, match="private"):
        validate_webhook_url(url, Settings(webhook_allow_private=False))
    assert validate_webhook_url(url, Settings(webhook_allow_private=True)) == url


def test_redacted_urls_keep_no_credentials_and_no_query() -> None:
    assert (
        redact("https://u:p@h.example:8443/a/b?token=t#f") == "https://***@h.example:8443/a/b?***"
    )
    assert redact("https://h.example/a") == "https://h.example/a"
    assert redact("http://u@[::1]/x") == "http://***@[::1]/x"


def test_submit_refuses_a_bad_webhook_before_queueing(
    evalboard_home: Path, digits: DigitsData, tiny_models: TinyModels
) -> None:
    completed = evalboard(
        "submit", "--model", str(tiny_models.resnet), "--dataset", str(digits.parquet),
        "--webhook", "ftp://example.org/hook", "--json",
    )  # fmt: skip
    report = json.loads(completed.stdout)
    assert completed.returncode == 2
    assert report["submission_id"] is None
    assert report["error"]["category"] == "bad_input"
