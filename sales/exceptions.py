from rest_framework import status

from core.errors import DomainError


class ItemNotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "item_not_found"
    message = "No item has this id."


class SaleNotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "sale_not_found"
    message = "No sale has this id."


class NoSaleYet(SaleNotFound):
    message = "No sale has opened yet."


class ItemSold(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "item_sold"
    message = "This item has been sold."


class ItemReserved(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "item_reserved"
    message = "Another buyer holds this item; it is free again if their hold expires."


class UserLimitReached(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "user_limit_reached"
    message = "You hold or have bought as many items of this sale as one buyer may."


class SaleNotStarted(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "sale_not_started"
    message = "This item's sale has not started yet."


class CodeNotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "code_not_found"
    message = "No reservation has this code."


class CodeExpired(DomainError):
    status_code = status.HTTP_410_GONE
    code = "code_expired"
    message = "This reservation has expired; check the item out again."
