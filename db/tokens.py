"""Submitter tokens: issued by an admin, stored hashed, shown once, revocable."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import SubmitterToken, utcnow


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, submitter: str) -> tuple[int, str]:
    """A new token for ``submitter``; returns (token id, the token itself, shown only now)."""
    token = f"evb_{secrets.token_urlsafe(32)}"
    record = SubmitterToken(submitter=submitter, token_hash=hash_token(token), created_at=utcnow())
    session.add(record)
    session.flush()
    return record.id, token


def submitter_for_token(session: Session, token: str) -> str | None:
    """The submitter a valid, unrevoked token belongs to; None otherwise."""
    return session.scalar(
        select(SubmitterToken.submitter).where(
            SubmitterToken.token_hash == hash_token(token), SubmitterToken.revoked_at.is_(None)
        )
    )


def has_tokens(session: Session, submitter: str) -> bool:
    """Whether ``submitter`` holds (or held) a token."""
    return (
        session.scalar(
            select(SubmitterToken.id).where(SubmitterToken.submitter == submitter).limit(1)
        )
        is not None
    )


def revoke_token(session: Session, token_id: int) -> bool:
    result = session.execute(
        update(SubmitterToken)
        .where(SubmitterToken.id == token_id, SubmitterToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


def list_tokens(session: Session) -> Sequence[SubmitterToken]:
    return session.scalars(select(SubmitterToken).order_by(SubmitterToken.id)).all()
