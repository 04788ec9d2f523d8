"""Notifications: every message Kefu sends — phrasebook templates, phrase lint, send windows, SMTP.

Public API (stable):

``MessageType``
    One value per message type; each has ``templates/<value>.txt.j2`` (first line = subject) and
    ``templates/<value>.html.j2`` (autoescaped), a :class:`Spec` in ``SPECS`` (audience, required
    context keys) and a builder in ``BUILDERS``.

``enqueue(session, message_type, *, recipient_email, context, complaint_id=None, urgent=False,
agreed_time=None, dedupe_key=None, now=None) -> OutboxMessage``
    Renders and lints at once. A message with lint findings (seed 002 §五 forbidden phrases, rude
    patterns, missing polite forms in customer messages, a missing required element, spaces between
    Chinese characters, a closing that does not fit a letter — in the text or the HTML part) is not queued:
    nothing is written and :class:`MessageRejected` is raised, its ``reasons`` the findings in words,
    for the caller to record where it keeps its own history before it goes on. Otherwise an
    ``OutboxMessage`` row is added (flushed, never committed) with ``not_before``: now for internal or
    urgent messages, ``agreed_time`` when the customer agreed one, else the next business window of a
    working day; ``complaint_id`` is stored on the row as given. A repeated ``dedupe_key`` returns the
    existing row. A context lacking a required key raises :class:`MessageContextError` (a programming error).

``async deliver_due(engine, now=None) -> DeliveryReport``
    Sends every due queued row over SMTP (settings ``smtp_*``); 4xx replies, dropped connections and
    timeouts are retried with exponential backoff (``mail_retry_*``), 5xx replies and exhausted
    attempts become dead letters (``dead_letters(engine)``, ``kefu mail dead``).

``enqueue_sms(session, message_type, *, phone, context, ...) -> OutboxMessage``
    The same for an SMS (channel ``sms``): the same lint, send windows and dedupe key; the text version's body
    shortened to ``【signature】您好，…`` within ``sms_max_parts`` parts, never losing the case number and the next
    step (``kefu.notifications.sms``). ``deliver_due`` sends it through ``KEFU_SMS_PROVIDER``
    (``kefu.notifications.sms_providers``: the local sink, Alibaba Cloud or Tencent Cloud SMS).

``mask_pii(text)``: phone and ID numbers masked; applied to every internal message.
"""

from kefu.notifications.lint import Category, Finding, lint_text
from kefu.notifications.messages import (
    BUILDERS,
    SPECS,
    MessageContextError,
    MessageType,
    Rendered,
    Renderer,
    Spec,
)
from kefu.notifications.outbox import MessageRejected, enqueue, enqueue_sms, send_plan, send_time
from kefu.notifications.pii import mask_email, mask_pii, mask_recipient
from kefu.notifications.sender import DeadLetter, DeliveryReport, dead_letters, deliver_due
from kefu.notifications.sms import mobile_number

__all__ = [
    "BUILDERS",
    "SPECS",
    "Category",
    "DeadLetter",
    "DeliveryReport",
    "Finding",
    "MessageContextError",
    "MessageRejected",
    "MessageType",
    "Rendered",
    "Renderer",
    "Spec",
    "dead_letters",
    "deliver_due",
    "enqueue",
    "enqueue_sms",
    "lint_text",
    "mask_email",
    "mask_pii",
    "mask_recipient",
    "mobile_number",
    "send_plan",
    "send_time",
]
