"""Who may do what: public leaderboard, token-holding submitters, and the admin secret.

Submitting needs a submitter token in production (anonymous local use is allowed by the
embedded default, which says so); a submitter sees and cancels only their own submissions;
admin actions need the admin secret. With the embedded default and no secret configured, a
random one is generated once under EVALBOARD_HOME and printed when it is created. It is written
atomically (a temporary file beside it, fsynced, then linked into place), so a full disk or a
crash never leaves a half-written secret; an empty or damaged one is replaced.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from db.models import Submission
from db.session import session_scope
from db.tokens import submitter_for_token
from evalboard.errors import RefusedError, is_no_space, no_space_error
from evalboard.settings import Settings, is_placeholder

ADMIN_SECRET_FILE = "admin_secret"
# Secrets generated while the disk had no room to keep them: good for this process only.
_unsaved: dict[Path, str] = {}


def admin_secret(settings: Settings, *, announce: bool = False) -> str:
    """The configured admin secret, or the embedded one (generated on first use)."""
    if settings.admin_secret:
        return settings.admin_secret
    path: Path = settings.home / ADMIN_SECRET_FILE
    stored = _stored_secret(path)
    if stored is not None:
        return stored
    try:
        settings.ensure_home()
        secret = _store_secret(path, secrets.token_urlsafe(24))
    except OSError as error:
        if not is_no_space(error):
            raise
        if announce:
            raise no_space_error(error, settings.home) from None
        # A full disk must not stop `status` or `cancel`: this process keeps its own secret,
        # and the first one after space returns writes one to keep.
        return _unsaved.setdefault(path, secrets.token_urlsafe(24))
    if announce:
        print(f"admin secret (shown once, kept in {path}): {secret}", flush=True)
    return secret


def _stored_secret(path: Path) -> str | None:
    """The kept secret; None when there is none, or what is there is empty or damaged."""
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if is_placeholder(text) or not text.isascii() or not text.isprintable() or " " in text:
        return None
    return text


def _store_secret(path: Path, secret: str) -> str:
    """Write ``secret`` unless another process kept one first; returns the one kept."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secret)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # atomic, and refuses to replace a secret just kept
        except FileExistsError:
            if _stored_secret(path) is None:  # what is there is damaged: replace it
                os.replace(temporary, path)
        _sync_folder(path.parent)
    finally:
        temporary.unlink(missing_ok=True)
    stored = _stored_secret(path)
    if stored is None:
        raise OSError(f"the admin secret in {path} could not be read back")
    return stored


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def is_admin(secret: str | None, settings: Settings) -> bool:
    return bool(secret) and hmac.compare_digest(str(secret), admin_secret(settings))


def require_admin(secret: str | None, settings: Settings) -> None:
    if not is_admin(secret, settings):
        raise RefusedError("this action needs the admin secret (EVALBOARD_ADMIN_SECRET)")


def usable_token(token: str) -> bool:
    """Whether ``token`` could be one we issued: printable UTF-8 text of a sane length (others
    are refused as unknown, never looked up)."""
    try:
        token.encode()
    except UnicodeEncodeError:
        return False
    return 0 < len(token.strip()) <= 512 and token.strip().isprintable()


def authenticate(token: str | None, settings: Settings) -> str | None:
    """The submitter a token belongs to; None for anonymous use where that is allowed."""
    if token:
        submitter = None
        if usable_token(token):
            with session_scope() as session:
                submitter = submitter_for_token(session, token.strip())
        if submitter is None:
            raise RefusedError("the submitter token is unknown or was revoked")
        return submitter
    if settings.allow_anonymous:
        return None
    raise RefusedError(
        "submitting needs a submitter token here: ask an admin for one "
        "(evalboard token issue NAME) and pass it with --token or EVALBOARD_TOKEN"
    )


def may_manage(
    submission: Submission, *, token: str | None, secret: str | None, settings: Settings
) -> bool:
    """Whether the caller may see the details of, or cancel, this submission."""
    if is_admin(secret, settings):
        return True
    if token:
        if not usable_token(token):
            return False
        with session_scope() as session:
            return submitter_for_token(session, token.strip()) == submission.submitter
    # Anonymous callers manage submissions only in development (one local user); in production
    # every anonymous submission belongs to someone else.
    return bool(settings.allow_anonymous) and settings.environment == "development"
