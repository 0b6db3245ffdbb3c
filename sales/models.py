"""The flash sale's tables.

PostgreSQL is the source of truth. An item's name and picture never change; what happens to it lives
in two append-mostly tables: a `CheckoutAttempt` with outcome `held` is a reservation (its code and
`expires_at`), a `Purchase` is a sale. Each item's own row carries its current claim, written by
the same statement that writes the hold or the purchase, so that the database alone decides who
gets an item; no request updates a row shared by several items.
"""

from django.db import models
from django.db.models import Q


class Sale(models.Model):
    # The hour an hourly sale belongs to; unique so that opening it twice opens it once.
    # Sales opened by hand (demos, tests) have none.
    hour = models.DateTimeField(null=True, blank=True, unique=True)
    starts_at = models.DateTimeField(db_index=True)
    item_count = models.PositiveIntegerField()
    user_limit = models.PositiveSmallIntegerField()
    ttl_seconds = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at", "-id"]

    def __str__(self) -> str:
        return f"Sale {self.pk} ({self.starts_at:%Y-%m-%d %H:%M} UTC, {self.item_count} items)"


class Item(models.Model):
    sale = models.ForeignKey(Sale, on_delete=models.CASCADE, related_name="items")
    name = models.CharField(max_length=120)
    image_url = models.URLField(max_length=300)
    # The item's claim, the arbiter of every checkout answer: the live hold (who, under which
    # code, until when) or the sale. One conditional UPDATE of this row decides a hold, and
    # PostgreSQL re-checks its condition on the row's latest version, so two concurrent
    # statements can never both claim the item (sales/stock/_attempts.py).
    claimed_by = models.CharField(max_length=64, blank=True, db_default="")
    claim_code = models.CharField(max_length=32, blank=True, db_default="")
    claimed_until = models.DateTimeField(null=True, blank=True)
    sold = models.BooleanField(db_default=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"


class Outcome(models.TextChoices):
    HELD = "held"
    EXISTING = "existing"  # the user already held the item: same code returned
    INVALID_REQUEST = "invalid_request"
    RATE_LIMITED = "rate_limited"
    ITEM_NOT_FOUND = "item_not_found"
    ITEM_SOLD = "item_sold"
    ITEM_RESERVED = "item_reserved"
    USER_LIMIT_REACHED = "user_limit_reached"
    SALE_NOT_STARTED = "sale_not_started"
    ERROR = "error"  # the request failed in this service's own code (answered 500)


# One colour per outcome: the dashboard's chart, its legend and the admin's outcome badges.
OUTCOME_COLOURS: dict[str, str] = {
    Outcome.HELD: "#2e7d32",
    Outcome.EXISTING: "#00838f",
    Outcome.ITEM_RESERVED: "#ef6c00",
    Outcome.ITEM_SOLD: "#757575",
    Outcome.USER_LIMIT_REACHED: "#6a1b9a",
    Outcome.SALE_NOT_STARTED: "#1565c0",
    Outcome.ITEM_NOT_FOUND: "#4e342e",
    Outcome.INVALID_REQUEST: "#c62828",
    Outcome.RATE_LIMITED: "#ad1457",
}


class CheckoutAttempt(models.Model):
    """Every checkout request, whatever its outcome; those `held` are the reservations."""

    # No foreign-key constraint to the sale: its check would take a share lock on the one sale row
    # with every insert, the hot row the request path must not have. The item's key covers it.
    # Nor an index of its own: `attempt_sale_outcome` begins with it.
    sale = models.ForeignKey(
        Sale,
        on_delete=models.CASCADE,
        null=True,
        related_name="attempts",
        db_constraint=False,
        db_index=False,
    )
    item = models.ForeignKey(Item, on_delete=models.CASCADE, null=True, related_name="attempts")
    user_id = models.CharField(max_length=64)
    requested_id = models.CharField(max_length=32, blank=True)  # as sent, for refusals
    outcome = models.CharField(max_length=24, choices=Outcome.choices)
    code = models.CharField(max_length=32, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    via_redis = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["code"], condition=Q(outcome="held"), name="attempt_held_code_unique"
            ),
            models.CheckConstraint(
                condition=~Q(outcome="held")
                | (Q(code__isnull=False) & Q(expires_at__isnull=False)),
                name="attempt_held_has_code",
            ),
        ]
        indexes = [
            # the live hold on an item; a user's live holds in a sale (the PostgreSQL path)
            models.Index(
                fields=["item", "expires_at"], condition=Q(outcome="held"), name="attempt_item_hold"
            ),
            models.Index(
                fields=["sale", "user_id", "expires_at"],
                condition=Q(outcome="held"),
                name="attempt_user_hold",
            ),
            models.Index(fields=["sale", "outcome"], name="attempt_sale_outcome"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} → {self.requested_id}: {self.outcome}"


class Purchase(models.Model):
    """A sold item. One per item and one per code, enforced by the database."""

    # No index of its own: the (sale, user) one below finds a sale's purchases.
    sale = models.ForeignKey(
        Sale,
        on_delete=models.CASCADE,
        related_name="purchases",
        db_constraint=False,
        db_index=False,
    )
    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="purchase")
    attempt = models.OneToOneField(
        CheckoutAttempt, on_delete=models.CASCADE, related_name="purchase"
    )
    user_id = models.CharField(max_length=64)
    purchased_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["sale", "user_id"], name="purchase_sale_user")]

    def __str__(self) -> str:
        return f"{self.item} → {self.user_id}"


class Buyer(models.Model):
    """One row per (sale, user): the lock that serialises one user's checkouts and purchases in
    one sale, and the count of their purchases, which the database keeps within the limit."""

    # No constraint: its check would share-lock the one sale row (see CheckoutAttempt.sale). No
    # index of its own: the unique (sale, user) one finds a sale's buyers.
    sale = models.ForeignKey(
        Sale, on_delete=models.CASCADE, related_name="buyers", db_constraint=False, db_index=False
    )
    user_id = models.CharField(max_length=64)
    purchased = models.PositiveSmallIntegerField(default=0)
    user_limit = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sale", "user_id"], name="buyer_sale_user_unique"),
            models.CheckConstraint(
                condition=Q(purchased__lte=models.F("user_limit")), name="buyer_within_limit"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in sale {self.sale_id}: {self.purchased}/{self.user_limit}"


class AdmissionMinute(models.Model):
    """Checkout and purchase requests per minute: those admitted, and those turned away `busy`
    by admission control. A busy answer never reached the sale, so it is no attempt: it is
    counted here, added up by each web process every few seconds, not written one by one."""

    minute = models.DateTimeField()
    operation = models.CharField(max_length=16)
    admitted = models.PositiveBigIntegerField(default=0)
    turned_away = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-minute", "operation"]
        constraints = [
            models.UniqueConstraint(fields=["minute", "operation"], name="admission_minute_unique")
        ]

    def __str__(self) -> str:
        return f"{self.minute:%H:%M} {self.operation}: {self.admitted} in, {self.turned_away} busy"
