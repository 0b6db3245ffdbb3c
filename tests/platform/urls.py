"""Views that fail in each way a view can, to check that every error has the one shape."""

from django.urls import include, path
from rest_framework import serializers
from rest_framework.decorators import api_view

from core.errors import DomainError


class Gone(DomainError):
    status_code = 410
    code = "gone_for_good"
    message = "It went."


class Payload(serializers.Serializer):
    count = serializers.IntegerField(min_value=1)


@api_view(["POST"])
def domain_error(request):
    raise Gone()


@api_view(["POST"])
def validation_error(request):
    Payload(data=request.data).is_valid(raise_exception=True)


@api_view(["GET"])
def crash(request):
    raise RuntimeError("secret detail that must stay in the log")


urlpatterns = [
    path("t/domain", domain_error),
    path("t/validation", validation_error),
    path("t/crash", crash),
    path("", include("config.urls")),
]

handler404 = "core.handlers.not_found"
handler500 = "core.handlers.server_error"
