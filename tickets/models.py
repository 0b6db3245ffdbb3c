"""Tickets as received, the orders parsed from them, and the product catalogue they feed.

A ticket row is written once, with its exact bytes, when it is acknowledged; parsing only ever
adds to it. Money is `Decimal` with 2 decimal places throughout.
"""

import os
import time
import uuid

from django.db import models
from django.db.models import Q


def new_ticket_id() -> uuid.UUID:
    """A time-ordered UUID (version 7): it can be handed out before any database is reachable,
    and consecutive tickets land next to each other in the primary key index."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return uuid.UUID(int=value)


class Ticket(models.Model):
    class Status(models.TextChoices):
        RECEIVED = "received"
        PARSED = "parsed"
        REJECTED = "rejected"
        DUPLICATE = "duplicate"

    id = models.UUIDField(primary_key=True, default=new_ticket_id, editable=False)
    raw = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    received_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    # The database fills what a new ticket starts with (db_default), so that acknowledging one
    # sends only what the till sent: the fields of the work the parser does later.
    status = models.CharField(
        max_length=16,
        choices=Status.choices,
        default=Status.RECEIVED,
        db_default=Status.RECEIVED,
    )
    parsed_at = models.DateTimeField(null=True, blank=True)
    order_number = models.CharField(max_length=100, blank=True, default="", db_default="")
    fingerprint = models.CharField(max_length=64, blank=True, default="", db_default="")
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="duplicates"
    )
    rejection_line = models.PositiveIntegerField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True, default="", db_default="")
    anomalies = models.JSONField(default=list, db_default=[], blank=True)
    unknown_headers = models.JSONField(default=dict, db_default={}, blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            # The work queue: workers claim the oldest `received` tickets.
            models.Index(
                fields=["received_at"],
                condition=Q(status="received"),
                name="ticket_backlog_idx",
            ),
            models.Index(fields=["status", "-received_at"], name="ticket_status_idx"),
            models.Index(fields=["-received_at"], name="ticket_received_idx"),
            models.Index(fields=["order_number"], name="ticket_order_idx"),
        ]
        constraints = [
            # Two workers can't both count the same content: the second one's write fails.
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=Q(status="parsed"),
                name="ticket_parsed_once",
            ),
        ]

    def __str__(self) -> str:
        # The status has a place of its own wherever a ticket is shown.
        return f"ticket {self.id}"


class Product(models.Model):
    product_id = models.CharField(max_length=100, primary_key=True)
    name = models.TextField()
    price = models.DecimalField(max_digits=12, decimal_places=2)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    # The ticket that set name and price; with `last_seen_at` it orders tickets received in the
    # same instant, so that the newest ticket wins whatever order workers see them in.
    last_ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="+")
    times_seen = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["product_id"]

    def __str__(self) -> str:
        return self.product_id


class ProductPrice(models.Model):
    """A change of a product's current price, and the ticket that changed it."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="prices")
    price = models.DecimalField(max_digits=12, decimal_places=2)
    effective_at = models.DateTimeField()
    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["product", "effective_at"]
        indexes = [models.Index(fields=["product", "effective_at"], name="price_history_idx")]

    def __str__(self) -> str:
        return f"{self.product_id} {self.price} at {self.effective_at}"


class Order(models.Model):
    ticket = models.OneToOneField(
        Ticket, primary_key=True, on_delete=models.PROTECT, related_name="order"
    )
    number = models.CharField(max_length=100)
    vat = models.DecimalField(max_digits=12, decimal_places=2)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["number"], name="order_number_idx")]

    def __str__(self) -> str:
        return f"order {self.number}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    line = models.PositiveIntegerField(help_text="line number in the ticket")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_lines")
    name = models.TextField()
    price = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["order", "line"]

    def __str__(self) -> str:
        return f"{self.product_id} {self.price}"
