from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path
from django.utils import timezone

from operations.dashboard import dashboard


class OperatorSite(admin.AdminSite):
    """The admin, opening on the live dashboard."""

    site_header = "Flash sales and till receipts"
    site_title = "Operators"
    index_title = "Dashboard"
    index_template = "admin/operator_index.html"
    # Lists of attempts and tickets need the width; the breadcrumbs and the index lead anywhere.
    enable_nav_sidebar = False

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
