"""Which policy a case follows (issue 13): the policy's version and content hash are stamped on the case at
registration and its content kept in ``policy_snapshots``; a case is planned by the policy it was stamped with, so
editing the policy file never silently re-plans an open case (``kefu policy replan`` does, audited).

The hash is of the validated content (comments and layout of the file do not count), so reformatting the file is
no change of policy.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from kefu.models.base import utcnow
from kefu.models.complaints import Complaint, PolicySnapshot
from kefu.models.policy import Policy

_FINGERPRINTS: dict[int, tuple[Policy, str, dict[str, Any]]] = {}
_BY_HASH: dict[str, Policy] = {}


def fingerprint(policy: Policy) -> tuple[str, dict[str, Any]]:
    """The policy's content hash (sha256, hex) and its content as JSON data; computed once per policy object."""
    entry = _FINGERPRINTS.get(id(policy))
    if entry is not None and entry[0] is policy:
        return entry[1], entry[2]
    content = policy.model_dump(mode="json")
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    _FINGERPRINTS[id(policy)] = (policy, digest, content)
    _BY_HASH.setdefault(digest, policy)
    return digest, content


def policy_hash(policy: Policy) -> str:
    return fingerprint(policy)[0]


def keep_snapshot(session: Session, policy: Policy) -> str:
    """Store the policy's content under its hash (once) and return the hash."""
    digest, content = fingerprint(policy)
    if session.get(PolicySnapshot, digest) is None:
        # Two intake processes may store the same new policy at once: the second insert does nothing.
        table = cast(Table, PolicySnapshot.__table__)
        row = {"hash": digest, "version": policy.version, "content": content, "created_at": utcnow()}
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(insert(table).values(**row).on_conflict_do_nothing(index_elements=["hash"]))
    return digest


def stamp(session: Session, complaint: Complaint, policy: Policy) -> None:
    """The case follows ``policy`` from now on."""
    complaint.policy_hash = keep_snapshot(session, policy)
    complaint.policy_version = policy.version
    session.flush()


def followed_policy(session: Session, complaint: Complaint, current: Policy) -> Policy:
    """The policy the case follows: the one stamped on it (a case without a stamp is stamped with ``current``)."""
    if complaint.policy_hash is None:
        stamp(session, complaint, current)
        return current
    if complaint.policy_hash == policy_hash(current):
        return current
    known = _BY_HASH.get(complaint.policy_hash)
    if known is not None:
        return known
    snapshot = session.get(PolicySnapshot, complaint.policy_hash)
    if snapshot is None:  # a stamp without its snapshot cannot be followed: the case takes the current policy
        stamp(session, complaint, current)
        return current
    policy = Policy.model_validate(snapshot.content)
    _BY_HASH[complaint.policy_hash] = policy
    return policy


def stamped_policy(session: Session, complaint: Complaint, current: Policy) -> Policy:
    """The policy stamped on the case, read only: what the deadline sweeper (warnings, the escalation ladder, progress
    contact reminders) and a progress update's next contact follow. ``current`` only for a case without a stamp (or
    whose snapshot is gone); nothing is written."""
    if complaint.policy_hash is None or complaint.policy_hash == policy_hash(current):
        return current
    known = _BY_HASH.get(complaint.policy_hash)
    if known is not None:
        return known
    snapshot = session.get(PolicySnapshot, complaint.policy_hash)
    if snapshot is None:
        return current
    policy = Policy.model_validate(snapshot.content)
    _BY_HASH[complaint.policy_hash] = policy
    return policy
