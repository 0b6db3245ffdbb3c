from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.metrics import metrics
from config.views import HealthView, PingView, landing

urlpatterns = [
    path("", landing, name="landing"),
    # Browsers ask every site for this; the admin and the JSON pages name no icon of their own.
    path("favicon.ico", RedirectView.as_view(url=static("operator/favicon.svg"))),
    path("health", HealthView.as_view(), name="health"),
    path("ping", PingView.as_view(), name="ping"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", include("sales.urls")),
    path("", include("tickets.urls")),
]

handler400 = "config.errors.bad_request"
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"
