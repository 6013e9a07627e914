"""Actions: turn decisions into tickets, emails, webhooks and restock orders, exactly once."""

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
    PickList,
    RestockOrder,
    Technician,
    Ticket,
    TicketEvent,
    TickResult,
    Webhook,
)
from cloud.actions.restock import pick_list_csv, pick_list_json
from cloud.actions.senders import (
    EmailSender,
    EmlDirSender,
    MailOutcomeUnknown,
    MailRejected,
    SmtpSender,
)
from cloud.actions.service import ActionService
from cloud.actions.tickets import CLOSURE_CODES, IllegalTransition
from cloud.actions.webhooks import HttpPoster, UrllibPoster, sign, verify_signature

__all__ = [
    "CLOSURE_CODES",
    "ActionService",
    "ApplyResult",
    "Brand",
    "Counts",
    "DeliveryResult",
    "Email",
    "EmailRenderer",
    "EmailSender",
    "EmlDirSender",
    "HttpPoster",
    "IllegalTransition",
    "MailOutcomeUnknown",
    "MailRejected",
    "OutboxItem",
    "PickList",
    "Priority",
    "RestockOrder",
    "RetryPolicy",
    "SmtpSender",
    "Technician",
    "TickResult",
    "Ticket",
    "TicketEvent",
    "UnsafeHeaderValue",
    "UrllibPoster",
    "Webhook",
    "build_message",
    "create_engine_for",
    "init_schema",
    "pick_list_csv",
    "pick_list_json",
    "priority_for",
    "sign",
    "verify_signature",
]
