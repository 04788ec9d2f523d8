"""The intake's write path: registering complaints. Each gets its complaint row, its customer, a communication
record, an audit event and the outbox row that starts its case flow — all in the caller's one transaction
(repository style: never commits). ``registrar`` groups the front door's complaints into such transactions.

The SLA clock starts at ``received_at`` (the moment the front door accepted the complaint), not when the
case flow starts. A repeated ``idempotency_key`` returns the complaint the first submission created.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from kefu.intake.labels import CHANNEL_ZH
from kefu.intake.validation import Submission
from kefu.models.accounts import KeyAccountMember, TeamRole
from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.contacts import stored_channel
from kefu.models.enums import Channel, ComplaintStatus, CustomerTier, Severity
from kefu.models.intake import IntakeIdempotencyKey, IntakeOutbox
from kefu.models.people import INDEX_PHONES, WEEKDAYS, CommunicationRecord, Customer, CustomerPhone, Staff, StaffRole
from kefu.models.policy import Policy
from kefu.tasks.case_policy import keep_snapshot

CASE_PREFIX = "KF"


class IdempotencyKeyReused(Exception):
    """The same Idempotency-Key came with a different complaint."""

    def __init__(self, case_no: str) -> None:
        super().__init__(f"idempotency key already used for case {case_no} with different content")
        self.case_no = case_no


def fingerprint(submission: Submission, channel: Channel) -> str:
    payload = json.dumps({**submission.fingerprint_fields(), "channel": channel.value}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def lock_keys(submission: Submission, idempotency_key: str | None) -> list[str]:
    """What concurrent registrations must not interleave on: the person (phone, e-mail) and the key."""
    keys = [f"phone:{submission.phone}"]
    if submission.email:
        keys.append(f"email:{submission.email.lower()}")
    if idempotency_key:
        keys.append(f"idem:{idempotency_key}")
    return keys


def serialize(session: Session, keys: list[str]) -> None:
    """Make concurrent registrations of the same person/key wait for each other (no duplicate customers).

    SQLite: nothing to do — every transaction begins with ``BEGIN IMMEDIATE`` (``kefu.models.db``), so one
    writer at a time. PostgreSQL: transaction-scoped advisory locks, taken in one sorted order so that two
    transactions locking several keys cannot deadlock.
    """
    if session.get_bind().dialect.name != "postgresql" or not keys:
        return
    digests = sorted({int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "big", signed=True) for k in keys})
    session.execute(_ADVISORY_LOCKS, {"keys": digests})


# One statement for a whole batch; unnest keeps the sorted order, so the locks are taken in that order.
_ADVISORY_LOCKS = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")
# Both backends (SQLite >= 3.35 and PostgreSQL): ``count`` numbers of one day handed out atomically.
_TAKE_NUMBERS = text(
    "INSERT INTO intake_case_counters (day, last) VALUES (:day, :count) "
    "ON CONFLICT (day) DO UPDATE SET last = intake_case_counters.last + :count RETURNING last"
)
# Registration runs as plain SQL statements, built once and executed once per batch where it can: the ORM's
# unit of work cost about ten times the SQL itself per complaint (measured with bench/intake.py).
_COMPLAINTS = cast(Table, Complaint.__table__)
_CUSTOMERS = cast(Table, Customer.__table__)
_PHONES = cast(Table, CustomerPhone.__table__)
_OUTBOX = cast(Table, IntakeOutbox.__table__)
_KEYS = cast(Table, IntakeIdempotencyKey.__table__)
_CUSTOMER_COLUMNS = (_CUSTOMERS.c.id, _CUSTOMERS.c.tier, _CUSTOMERS.c.phones, _CUSTOMERS.c.email)
_CUSTOMERS_BY_PHONE = (
    select(_PHONES.c.phone, *_CUSTOMER_COLUMNS)
    .join(_CUSTOMERS, _PHONES.c.customer_id == _CUSTOMERS.c.id)
    .where(_PHONES.c.phone.in_(bindparam("phones", expanding=True)))
)
_CUSTOMERS_BY_EMAIL = (
    select(func.lower(_CUSTOMERS.c.email).label("key"), *_CUSTOMER_COLUMNS)
    .where(func.lower(_CUSTOMERS.c.email).in_(bindparam("emails", expanding=True)))
    .order_by(_CUSTOMERS.c.id.desc())  # the oldest record last: it wins below
)
_UPDATE_CUSTOMER = (
    update(_CUSTOMERS)
    .where(_CUSTOMERS.c.id == bindparam("customer_id"))
    .values(phones=bindparam("new_phones"), email=bindparam("new_email"))
)
_KEYS_LOOKUP = select(_KEYS.c.key, _KEYS.c.fingerprint, _KEYS.c.complaint_id).where(
    _KEYS.c.key.in_(bindparam("keys", expanding=True))
)
_REGISTRATION = (
    select(
        _COMPLAINTS.c.id,
        _COMPLAINTS.c.case_no,
        _COMPLAINTS.c.channel,
        _COMPLAINTS.c.severity,
        _COMPLAINTS.c.urgent,
        _COMPLAINTS.c.received_at,
        _COMPLAINTS.c.status,
        _CUSTOMERS.c.tier,
        _OUTBOX.c.flow_run_id,
    )
    .select_from(_COMPLAINTS)
    .outerjoin(_CUSTOMERS, _CUSTOMERS.c.id == _COMPLAINTS.c.customer_id)
    .outerjoin(_OUTBOX, _OUTBOX.c.complaint_id == _COMPLAINTS.c.id)
    .where(_COMPLAINTS.c.id == bindparam("complaint_id"))
)
_INSERT_CUSTOMERS = insert(_CUSTOMERS).returning(_CUSTOMERS.c.id, sort_by_parameter_order=True)
_INSERT_COMPLAINTS = insert(_COMPLAINTS).returning(_COMPLAINTS.c.id, sort_by_parameter_order=True)
_INSERT_RECORDS = insert(cast(Table, CommunicationRecord.__table__))
_INSERT_EVENTS = insert(cast(Table, CaseEvent.__table__))
_INSERT_OUTBOX = insert(_OUTBOX)
_INSERT_KEYS = insert(_KEYS)


@dataclass(frozen=True)
class Intake:
    """One complaint at the front door, as the channel delivered it."""

    submission: Submission
    channel: Channel
    received_at: dt.datetime
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Registration:
    """What the front door answers about a registered complaint (no personal data)."""

    complaint_id: int
    case_no: str
    channel: Channel
    severity: Severity
    urgent: bool
    received_at: dt.datetime
    status: ComplaintStatus
    key_account: bool
    created: bool
    flow_run_id: str | None = None
    owner_id: int | None = None  # 首问责任制: the staff member who owns the case from registration
    owned_by: str | None = None  # why: "key_account_specialist", "receiver" (named by the gateway) or "rota"


def registration_of(session: Session, complaint_id: int) -> Registration:
    row = session.connection().execute(_REGISTRATION, {"complaint_id": complaint_id}).one()
    return Registration(
        complaint_id=int(row.id),
        case_no=row.case_no,
        channel=row.channel,
        severity=row.severity,
        urgent=row.urgent,
        received_at=row.received_at,
        status=row.status,
        key_account=row.tier is CustomerTier.KEY,
        created=False,
        flow_run_id=row.flow_run_id,
    )


@dataclass(eq=False)
class _Person:
    """A customer record as this batch sees it: found in the database or new in this batch."""

    id: int | None
    tier: CustomerTier
    phones: list[str]
    email: str | None
    name: str = ""
    address: str | None = None
    added_phones: list[str] = field(default_factory=list)
    email_added: bool = False

    @property
    def is_key_account(self) -> bool:
        return self.tier is CustomerTier.KEY


class _People:
    """Matches complainants to customers — by phone first, then by e-mail — for a whole batch at once."""

    def __init__(self, db: Connection, intakes: Sequence[Intake]) -> None:
        phones = sorted({i.submission.phone for i in intakes})
        emails = sorted({i.submission.email.lower() for i in intakes if i.submission.email})
        self.by_phone: dict[str, _Person] = {}
        self.by_email: dict[str, _Person] = {}
        self.new: list[_Person] = []
        known: dict[int, _Person] = {}

        def person(row: Any) -> _Person:
            return known.setdefault(row.id, _Person(int(row.id), row.tier, list(row.phones or []), row.email))

        for row in db.execute(_CUSTOMERS_BY_PHONE, {"phones": phones}) if phones else ():
            self.by_phone[row.phone] = person(row)
        for row in db.execute(_CUSTOMERS_BY_EMAIL, {"emails": emails}) if emails else ():
            self.by_email[row.key] = person(row)

    def of(self, submission: Submission) -> _Person:
        """The complainant's customer; a new phone or a missing e-mail is added to a returning one."""
        email = submission.email.lower() if submission.email else None
        found = self.by_phone.get(submission.phone) or (self.by_email.get(email) if email else None)
        if found is None:
            found = _Person(
                None, CustomerTier.GENERAL, [submission.phone], submission.email, submission.name, submission.place
            )
            self.new.append(found)
        else:
            if submission.phone not in found.phones:
                found.phones = [*found.phones, submission.phone]
                found.added_phones.append(submission.phone)
            if found.email is None and submission.email:
                found.email, found.email_added = submission.email, True
        self.by_phone.setdefault(submission.phone, found)
        if email:
            self.by_email.setdefault(email, found)
        return found

    def save(self, db: Connection, now: dt.datetime) -> None:
        """Insert the new customers, update the changed ones, index every new phone."""
        if self.new:
            ids = db.execute(
                _INSERT_CUSTOMERS,
                [
                    {
                        "tier": CustomerTier.GENERAL,
                        "name": p.name,
                        "contact_person": p.name,
                        "phones": p.phones,
                        "email": p.email,
                        "address": p.address,
                        "created_at": now,
                    }
                    for p in self.new
                ],
            ).scalars()
            for p, new_id in zip(self.new, ids, strict=True):
                p.id = new_id
        matched = {*self.by_phone.values(), *self.by_email.values()} - set(self.new)
        changed = sorted((p for p in matched if p.added_phones or p.email_added), key=lambda p: p.id or 0)
        if changed:
            db.execute(
                _UPDATE_CUSTOMER, [{"customer_id": p.id, "new_phones": p.phones, "new_email": p.email} for p in changed]
            )
        index = [{"phone": phone, "customer_id": p.id} for p in self.new for phone in p.phones]
        index += [{"phone": phone, "customer_id": p.id} for p in changed for phone in p.added_phones]
        if index:
            db.execute(INDEX_PHONES, index)


def register_complaints(
    session: Session, intakes: Sequence[Intake], *, policy: Policy
) -> list[Registration | IdempotencyKeyReused]:
    """Record complaints in the caller's transaction (never commits), in a constant number of statements.

    The policy proposes each severity and its time zone dates the case numbers.

    Each complaint gets its complaint row, customer (found or new), communication record, ``received`` audit
    event, outbox row and idempotency key. A key seen before (in the database or earlier in this batch)
    returns the complaint it created, or ``IdempotencyKeyReused`` (writing nothing) if the content differs.
    """
    for intake in intakes:
        if intake.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
    serialize(session, [k for i in intakes for k in lock_keys(i.submission, i.idempotency_key)])
    db = session.connection()
    now = dt.datetime.now(dt.UTC)
    prints = [fingerprint(i.submission, i.channel) for i in intakes]
    keys = sorted({i.idempotency_key for i in intakes if i.idempotency_key})
    seen: dict[str, tuple[str, int]] = {}  # key -> (fingerprint, complaint id) of earlier submissions
    for row in db.execute(_KEYS_LOOKUP, {"keys": keys}) if keys else ():
        seen[row.key] = (row.fingerprint, int(row.complaint_id))

    fresh: list[int] = []  # the complaints to create now, by their place in the batch
    first_with_key: dict[str, int] = {}
    repeat_of: dict[int, int] = {}  # a key repeated inside this batch -> where it came first
    for index, intake in enumerate(intakes):
        key = intake.idempotency_key
        if key and key in seen:
            continue  # answered from the database below
        if key and key in first_with_key:
            repeat_of[index] = first_with_key[key]
            continue
        fresh.append(index)
        if key:
            first_with_key[key] = index

    people = _People(db, [intakes[i] for i in fresh])
    persons = {i: people.of(intakes[i].submission) for i in fresh}
    people.save(db, now)
    case_nos = _take_case_numbers(db, [intakes[i].received_at for i in fresh], policy.timezone)
    followed = keep_snapshot(session, policy) if fresh else None  # the policy each case follows, stamped on it
    owners = _owners(db, [intakes[i] for i in fresh], case_nos, policy, [persons[i] for i in fresh])

    rows: list[dict[str, Any]] = []
    made: dict[int, Registration] = {}
    for index, case_no, (owner_id, owned_by) in zip(fresh, case_nos, owners, strict=True):
        intake, person = intakes[index], persons[index]
        s = intake.submission
        urgent = policy.complaints.classification.is_urgent(s.content, flagged=s.urgent)
        severity, _why = policy.complaints.propose_severity(
            s.content, s.order_amount, key_account=person.is_key_account, urgent=urgent
        )
        made[index] = Registration(
            complaint_id=0,
            case_no=case_no,
            channel=intake.channel,
            severity=severity,
            urgent=urgent,
            received_at=intake.received_at,
            status=ComplaintStatus.REGISTERED,
            key_account=person.is_key_account,
            created=True,
            owner_id=owner_id,
            owned_by=owned_by,
        )
        rows.append(
            {
                "case_no": case_no,
                "channel": intake.channel,
                "received_at": intake.received_at,
                "severity": severity,
                "status": ComplaintStatus.REGISTERED,
                "urgent": urgent,
                "customer_id": person.id,
                "order_ref": s.order_no,
                "order_amount": s.order_amount,
                "product": s.product,
                "place": s.place,
                "problem_at": s.problem_at,
                "content": s.content,
                "contact_name": s.name or None,
                "preferred_contact_time": s.preferred_contact_time,
                "reopen_count": 0,
                "policy_version": policy.version,
                "policy_hash": followed,
                "owner_id": owner_id,
                "created_at": now,
                "updated_at": now,
            }
        )
    if rows:
        ids = list(db.execute(_INSERT_COMPLAINTS, rows).scalars())
        for index, complaint_id in zip(fresh, ids, strict=True):
            made[index] = replace(made[index], complaint_id=int(complaint_id))
        _insert_companions(db, [(intakes[i], persons[i], made[i], prints[i]) for i in fresh], now)

    answers: list[Registration | IdempotencyKeyReused] = []
    for index, (intake, print_) in enumerate(zip(intakes, prints, strict=True)):
        key = intake.idempotency_key
        if index in made:
            answers.append(made[index])
        elif index in repeat_of:
            first = repeat_of[index]
            original = made[first]
            same = prints[first] == print_
            answers.append(replace(original, created=False) if same else IdempotencyKeyReused(original.case_no))
        else:
            assert key is not None
            stored_print, complaint_id = seen[key]
            found = registration_of(session, complaint_id)
            answers.append(found if stored_print == print_ else IdempotencyKeyReused(found.case_no))
    return answers


def _owners(
    db: Connection,
    intakes: Sequence[Intake],
    case_nos: Sequence[str],
    policy: Policy,
    persons: Sequence[_Person],
) -> list[tuple[int | None, str | None]]:
    """首问责任制: each complaint's owner and why — a key account's customer-service specialist (issue 15: the
    account's specialist owns its complaints; ``key_account_specialist``, when the policy's ownership says so and the
    team has an active one), else the receiver the gateway named (``receiver``), else the on-duty staff of the
    policy's rota role that day (weekday of receipt) in turn by the case's running number (``rota``); nobody on
    duty: no owner yet (the person who classifies it becomes the owner)."""
    if not intakes:
        return []
    specialists: dict[int, int] = {}
    accounts = sorted({p.id for p in persons if p.is_key_account and p.id is not None})
    if accounts and policy.complaints.ownership.key_account_specialist:
        specialists = {
            int(row.customer_id): int(row.staff_id)
            for row in db.execute(
                select(KeyAccountMember.customer_id, KeyAccountMember.staff_id)
                .join(Staff, Staff.id == KeyAccountMember.staff_id)
                .where(
                    KeyAccountMember.customer_id.in_(accounts),
                    KeyAccountMember.team_role == TeamRole.SERVICE_SPECIALIST,
                    Staff.active.is_(True),
                )
            ).all()
        }
    role = policy.complaints.ownership.rota_role
    rows = db.execute(
        select(Staff.id, Staff.on_duty)
        .join(StaffRole, StaffRole.staff_id == Staff.id)
        .where(StaffRole.role == role, Staff.active.is_(True))
        .order_by(Staff.id)
    ).all()
    zone = ZoneInfo(policy.timezone)
    owners: list[tuple[int | None, str | None]] = []
    for intake, case_no, person in zip(intakes, case_nos, persons, strict=True):
        specialist = specialists.get(person.id) if person.id is not None else None
        if specialist is not None:
            owners.append((specialist, "key_account_specialist"))
            continue
        if intake.submission.received_by is not None:
            owners.append((intake.submission.received_by, "receiver"))
            continue
        weekday = WEEKDAYS[intake.received_at.astimezone(zone).weekday()]
        on_duty = [row.id for row in rows if weekday in (row.on_duty or [])]
        if not on_duty:
            owners.append((None, None))
            continue
        owners.append((int(on_duty[int(case_no.rpartition("-")[2]) % len(on_duty)]), "rota"))
    return owners


def _take_case_numbers(db: Connection, received: list[dt.datetime], timezone: str) -> list[str]:
    """'KF20261123-00042': the day of receipt (local time in ``timezone``, the policy's) and its running number,
    in the batch's order."""
    zone = ZoneInfo(timezone)
    days = [moment.astimezone(zone).strftime("%Y%m%d") for moment in received]
    counts = Counter(days)
    next_number: dict[str, int] = {}
    for day, count in sorted(counts.items()):
        last = int(db.execute(_TAKE_NUMBERS, {"day": day, "count": count}).scalar_one())
        next_number[day] = last - count + 1
    numbers: list[str] = []
    for day in days:
        numbers.append(f"{CASE_PREFIX}{day}-{next_number[day]:05d}")
        next_number[day] += 1
    return numbers


def _insert_companions(db: Connection, made: list[tuple[Intake, _Person, Registration, str]], now: dt.datetime) -> None:
    """The communication record, the audit event, the outbox row and the idempotency key of each complaint."""
    db.execute(
        _INSERT_RECORDS,
        [
            {
                "customer_id": person.id,
                "complaint_id": r.complaint_id,
                "at": r.received_at,
                "channel": stored_channel(r.channel.value),  # the records' one vocabulary: face_to_face = visit
                "summary": f"通过{CHANNEL_ZH[r.channel]}受理投诉 {r.case_no}" + ("（紧急）" if r.urgent else ""),
                "follow_up_items": ["首次联系客户"],
                "kind": "complaint",  # ``kefu.models.contacts.ContactKind.COMPLAINT``
                "created_at": now,
            }
            for _intake, person, r, _print in made
        ],
    )
    db.execute(
        _INSERT_EVENTS,
        [
            {
                "complaint_id": r.complaint_id,
                "actor": f"intake:{r.channel.value}",
                "action": "received",
                "data": {
                    "case_no": r.case_no,
                    "channel": r.channel.value,
                    "proposed_severity": r.severity.value,
                    "urgent": r.urgent,
                    "owner_staff_id": r.owner_id,
                    "owned_by": r.owned_by,
                },
                "at": r.received_at,
            }
            for _intake, _person, r, _print in made
        ],
    )
    db.execute(
        _INSERT_OUTBOX,
        [
            {"complaint_id": r.complaint_id, "case_no": r.case_no, "created_at": r.received_at, "attempts": 0}
            for _intake, _person, r, _print in made
        ],
    )
    keyed = [
        {"key": intake.idempotency_key, "fingerprint": print_, "complaint_id": r.complaint_id, "created_at": now}
        for intake, _person, r, print_ in made
        if intake.idempotency_key
    ]
    if keyed:
        db.execute(_INSERT_KEYS, keyed)


def register_complaint(
    session: Session,
    submission: Submission,
    *,
    received_at: dt.datetime,
    channel: Channel,
    idempotency_key: str | None = None,
    policy: Policy | None = None,
) -> Registration:
    """Record one complaint (or find the one this idempotency key already created). Never commits.

    Raises ``IdempotencyKeyReused`` (having written nothing) when the key came before with different content.
    """
    if policy is None:
        from kefu.models.policy import current_policy

        policy = current_policy()
    [result] = register_complaints(session, [Intake(submission, channel, received_at, idempotency_key)], policy=policy)
    if isinstance(result, IdempotencyKeyReused):
        raise result
    return result
