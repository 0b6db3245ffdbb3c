from django.conf import settings
from django.contrib import admin
from django.urls import path

from operations import urls as operations
from sales import urls as sales
from tickets import urls as tickets

# The hot paths first: Django tries the patterns in order on every request. One flat list: a
# pattern that does not match costs a comparison, an include that does not match far more (it
# lists every pattern it tried, for a debug page this service never shows).
urlpatterns = [
    *sales.urlpatterns,
    *tickets.urlpatterns,
    *operations.urlpatterns,
    path(settings.ADMIN_PATH, admin.site.urls),
]

handler400 = "core.handlers.bad_request"
handler403 = "core.handlers.permission_denied"
handler404 = "core.handlers.not_found"
handler500 = "core.handlers.server_error"
