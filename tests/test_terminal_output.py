"""Text output never hands a terminal a control or bidi character: every printer escapes what
it prints with one function, and JSON gives back the exact value."""

from __future__ import annotations

import json
import re
import shutil
import sys
import unicodedata
from itertools import count
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalboard.output import (
    UNSAFE_CATEGORIES,
    distinct_text,
    reevaluation_text,
    report_text,
    table,
    terminal_text,
)
from evalboard.reevaluation import DueEntry
from evalboard.reports import ErrorReport, SubmissionReport
from tests import factories
from tests.conftest import DigitsData, TinyModels
from tests.test_end_to_end import evalboard

_fresh = count()
BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]
# Every code point a terminal may act on or that hides or reorders text.
UNSAFE = [
    chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in UNSAFE_CATEGORIES
]
# A value meant to retitle the terminal, colour it, forge a line and reorder the rest (no
# whitespace at its ends: references are stripped as typed).
EVIL = (
    "m\x1b]0;pwned\x07\x1b[31mred\x9b2J\rerror [internal]: forged\n\u202egnp.exe\u2028\u2066\u200bx"
)
# A dataset path says the same without glob characters ([ ]), which datasets would expand.
EVIL_DATA = "d\x1b]0;pwned\x07\x9b2J\rerror: forged\n\u202eata\u2028\u2066\u200bx"
_ESCAPE = re.compile(r"\\x([0-9a-f]{2})|\\u([0-9a-f]{4})|\\U([0-9a-f]{8})")


def decode(text: str) -> str:
    """The inverse of ``terminal_text`` on text without a backslash of its own."""
    return _ESCAPE.sub(lambda m: chr(int(next(g for g in m.groups() if g), 16)), text)


def unsafe_in(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) in UNSAFE_CATEGORIES and c != "\n"]


def test_the_escaped_set_is_every_control_format_and_separator_character() -> None:
    codes = {ord(c) for c in UNSAFE}
    assert set(range(0x20)) | {0x7F} | set(range(0x80, 0xA0)) <= codes  # C0, DEL, C1
    assert set(BIDI) <= codes
    assert {0x2028, 0x2029, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0xE0001} <= codes
    assert 0x20 not in codes and 0xA0 not in codes  # spaces stay as they are


def test_each_unsafe_character_is_escaped_visibly_and_distinctly() -> None:
    shown = [terminal_text(c) for c in UNSAFE]
    assert len(set(shown)) == len(UNSAFE)
    for char, text in zip(UNSAFE, shown, strict=True):
        assert text.isascii() and text.isprintable() and text.startswith("\\"), ascii(char)
        assert decode(text) == char


_any_text = st.text(
    st.characters(codec=None)  # every code point, surrogates too
    | st.sampled_from([chr(c) for c in (*range(0x20), *range(0x7F, 0xA0), *BIDI)])
    | st.sampled_from(UNSAFE)
    | st.sampled_from("aé 猫-\\"),
    max_size=40,
)


@settings(max_examples=1000, deadline=None)
@given(_any_text)
def test_escaped_text_holds_no_unsafe_character_and_decodes_back(text: str) -> None:
    for escape in (terminal_text, distinct_text):
        shown = escape(text)
        assert not unsafe_in(shown) and "\n" not in shown
        shown.encode("utf-8")  # no lone surrogate: a UTF-8 terminal takes every character
        if "\\" not in text:
            assert decode(shown) == text
    if not [c for c in text if unicodedata.category(c) in UNSAFE_CATEGORIES]:
        assert terminal_text(text) == text  # what is safe stays as written


def _lines_are_safe(text: str, *, real_errors: int = 0) -> None:
    assert not unsafe_in(text), [ascii(c) for c in unsafe_in(text)]
    forged = [line for line in text.splitlines() if line.startswith("error [")]
    assert len(forged) == real_errors, forged


def test_every_text_printer_escapes_what_it_prints() -> None:
    report = SubmissionReport(
        submission_id=7, state="failed", model=EVIL, dataset=EVIL, split=EVIL,
        error=ErrorReport(category="bad_input", message=EVIL), due_reasons=[EVIL],
        flags=[EVIL], metrics={EVIL: 0.5}, n_samples=3, spec_name=EVIL, spec_version="1",
        provenance={"images_per_s": 3.0, "device": EVIL},
    )  # fmt: skip
    _lines_are_safe(report_text(report), real_errors=1)
    _lines_are_safe(table([EVIL, "b"], [[EVIL, 1.0], [None, EVIL]]))
    due = DueEntry(model=EVIL, dataset=EVIL, config=EVIL, split=EVIL, spec=EVIL,
                   last_submission_id=1, reasons=[EVIL])  # fmt: skip
    gone = DueEntry(model=EVIL, dataset=EVIL, config="default", split="test", spec="s",
                    last_submission_id=2, unavailable=EVIL)  # fmt: skip
    for dry_run in (True, False):
        _lines_are_safe(reevaluation_text([due, gone], dry_run=dry_run))


# ---- through the real command line and a real worker -----------------------------------------


def _run(*args: str) -> tuple[int, str, str]:
    completed = evalboard(*args)
    return completed.returncode, completed.stdout, completed.stderr


def test_status_wait_leaderboard_and_history_print_no_raw_control_and_json_is_exact(
    backend, start_worker, data_root: Path, digits: DigitsData, tiny_models: TinyModels
) -> None:
    root = data_root / f"terminal-{backend.name}-{next(_fresh)}"
    model = Path(shutil.copytree(tiny_models.trained_resnet, root / EVIL))
    dataset = factories.write_digits_parquet(root / EVIL_DATA, limit=20)
    start_worker()

    code, out, err = _run("submit", "--model", str(model), "--dataset", str(dataset), "--wait")
    assert code == 0, (out, err)
    _lines_are_safe(out + err)
    assert terminal_text(str(model)) in out  # the path is shown, escaped
    submission_id = re.search(r"submission (\d+): succeeded", out)
    assert submission_id, out

    for args in (
        ("status", submission_id.group(1)),
        ("leaderboard", "--dataset", str(dataset), "--split", "test"),
        ("history", "--model", str(model)),
    ):
        code, out, err = _run(*args)
        assert code == 0, (args, out, err)
        _lines_are_safe(out + err)
        assert "\\x1b]0;pwned\\x07" in out and "\\u202e" in out, (args, out)

    # JSON keeps the exact path: ASCII on the terminal, the same string once parsed.
    code, out, _ = _run("status", submission_id.group(1), "--json")
    assert out.isascii() and json.loads(out)["model"] == str(model)
    code, out, _ = _run("leaderboard", "--dataset", str(dataset), "--split", "test", "--format",
                        "json")  # fmt: skip
    assert out.isascii() and json.loads(out)[0]["model"] == str(model)
    code, out, _ = _run("history", "--model", str(model), "--json")
    assert out.isascii() and json.loads(out)[0]["dataset"] == str(dataset)


def test_an_error_message_quoting_a_file_name_cannot_forge_a_line(
    evalboard_home: Path, data_root: Path, digits: DigitsData, tiny_models: TinyModels
) -> None:
    model = Path(shutil.copytree(tiny_models.resnet, data_root / f"forged-{next(_fresh)}"))
    name = "w\nerror [internal]: forged\x1b[2J\u202e.safetensors"
    (model / name).write_bytes(b"\x00")  # too short to be safetensors: named in the message
    code, out, err = _run("submit", "--model", str(model), "--dataset", str(digits.parquet))
    assert code == 2
    _lines_are_safe(out + err, real_errors=1)
    assert err.startswith("error [bad_input]: "), err
    assert "forged\\x1b[2J\\u202e.safetensors" in err
    code, out, _ = _run("submit", "--model", str(model), "--dataset", str(digits.parquet),
                        "--json")  # fmt: skip
    assert out.isascii() and name in json.loads(out)["error"]["message"]


@pytest.mark.parametrize("text", ["plain ascii", "été 猫 ｃａｔ", "a\\x1b literal backslash"])
def test_ordinary_text_is_printed_as_written(text: str) -> None:
    assert terminal_text(text) == text
