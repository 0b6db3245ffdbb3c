"""Admin pieces both domains use: read-only record pages and coloured badges."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString


def badge(text: str, colour: str) -> SafeString:
    return format_html('<span class="badge" style="background:{}">{}</span>', colour, text)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records of what happened (attempts, purchases, tickets, the catalogue built from them):
    operators look, search and act through the services, they don't edit rows."""

    class Media:
        css = {"all": ("operator/admin.css",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
