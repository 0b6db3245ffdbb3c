from django.conf import settings
from django.contrib import admin
from django.urls import include, path

# The hot paths first: Django tries the patterns in order on every request.
urlpatterns = [
    path("", include("sales.urls")),
    path("", include("tickets.urls")),
    path("", include("operations.urls")),
    path(settings.ADMIN_PATH, admin.site.urls),
]

handler400 = "core.handlers.bad_request"
handler403 = "core.handlers.permission_denied"
handler404 = "core.handlers.not_found"
handler500 = "core.handlers.server_error"
