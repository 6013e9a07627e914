"""Actions: turn decisions into tickets and customer emails, exactly once, through an outbox."""

from cloud.actions.db import create_engine_for, init_schema
from cloud.actions.email import Brand, EmailRenderer, UnsafeHeaderValue, build_message
from cloud.actions.outbox import RetryPolicy
from cloud.actions.priority import Priority, priority_for
from cloud.actions.records import (
    ApplyResult,
    Counts,
    DeliveryResult,
    Email,
    OutboxItem,
    Ticket,
    TicketEvent,
)
from cloud.actions.senders import (
    EmailSender,
    EmlDirSender,
    MailOutcomeUnknown,
    MailRejected,
    SmtpSender,
)
from cloud.actions.service import ActionService

__all__ = [
    "ActionService",
    "ApplyResult",
    "Brand",
    "Counts",
    "DeliveryResult",
    "Email",
    "EmailRenderer",
    "EmailSender",
    "EmlDirSender",
    "MailOutcomeUnknown",
    "MailRejected",
    "OutboxItem",
    "Priority",
    "RetryPolicy",
    "SmtpSender",
    "Ticket",
    "TicketEvent",
    "UnsafeHeaderValue",
    "build_message",
    "create_engine_for",
    "init_schema",
    "priority_for",
]
