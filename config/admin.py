from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from config.dashboard import dashboard


class OperatorSite(admin.AdminSite):
    """The admin, opening on the live dashboard."""

    site_header = "Flash sales and till receipts"
    site_title = "Operators"
    index_title = "Dashboard"
    index_template = "admin/operator_index.html"

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        context = {**(extra_context or {}), "dashboard": dashboard(now=timezone.now())}
        return super().index(request, context)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        live = path("dashboard/", self.admin_view(self.dashboard_live), name="dashboard")
        return [live, *super().get_urls()]

    def dashboard_live(self, request: HttpRequest) -> TemplateResponse:
        """The dashboard alone: what the index page fetches to refresh itself."""
        context = {"dashboard": dashboard(now=timezone.now())}
        return TemplateResponse(request, "admin/dashboard.html", context)


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
