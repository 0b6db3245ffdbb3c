"""Items with their sale's rules, cached per process: immutable once a sale is open."""

import threading
from datetime import datetime
from typing import NamedTuple

from core.process import PerProcess
from sales.exceptions import ItemNotFound
from sales.models import Item, Sale


class ItemInfo(NamedTuple):
    """An item and the rules of its sale (a tuple: a sale's load makes thousands at once)."""

    id: int
    name: str
    image_url: str
    sale_id: int
    starts_at: datetime
    user_limit: int
    ttl_seconds: int


class _ItemCache:
    """Items by id, loaded a whole sale at a time: a rush touches every item of a sale, and one
    query for the sale costs less than one per item. Only the latest few sales are kept."""

    SALES_KEPT = 8

    def __init__(self) -> None:
        self.items: dict[int, ItemInfo] = {}
        self.sales: list[int] = []
        self.loading = threading.Lock()  # the first requests of a rush load a sale once

    def get(self, item_id: int) -> ItemInfo:
        item = self.items.get(item_id)
        if item is None:
            sale_id = Item.objects.filter(pk=item_id).values_list("sale_id", flat=True).first()
            if sale_id is None:
                raise ItemNotFound()
            with self.loading:
                if item_id not in self.items:
                    self._load(sale_id)
            item = self.items[item_id]
        return item

    def _load(self, sale_id: int) -> None:
        sale = Sale.objects.get(pk=sale_id)
        rules = (sale.pk, sale.starts_at, sale.user_limit, sale.ttl_seconds)
        loaded = {
            pk: ItemInfo(pk, name, image_url, *rules)
            # Unordered: the model's default ordering sorted the whole sale for nothing.
            for pk, name, image_url in Item.objects.filter(sale_id=sale_id)
            .order_by()
            .values_list("pk", "name", "image_url")
        }
        self.sales = [*self.sales, sale_id][-self.SALES_KEPT :]
        kept = set(self.sales)
        self.items = {k: v for k, v in self.items.items() if v.sale_id in kept} | loaded


_cache = PerProcess(_ItemCache)


def item_info(item_id: int) -> ItemInfo:
    """The item with its sale's rules; raises `ItemNotFound`."""
    return _cache.get().get(item_id)
