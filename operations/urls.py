from django.templatetags.static import static
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularSwaggerView

from operations.metrics import metrics
from operations.views import HealthView, PingView, SchemaView, landing

urlpatterns = [
    path("", landing, name="landing"),
    # Browsers ask every site for this; the admin and the JSON pages name no icon of their own.
    path("favicon.ico", RedirectView.as_view(url=static("operator/favicon.svg"))),
    path("health", HealthView.as_view(), name="health"),
    path("ping", PingView.as_view(), name="ping"),
    # Read-only: any other method is a 405, not a CSRF refusal.
    path("metrics", csrf_exempt(require_safe(metrics)), name="metrics"),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    # No OPTIONS metadata: the docs would render it through their HTML template.
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", metadata_class=None),
        name="docs",
    ),
]
