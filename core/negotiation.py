from collections.abc import Iterable
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class Negotiation(DefaultContentNegotiation):
    """A view with one renderer (every API view: JSON) answers with it, whatever the client
    accepts, without parsing Accept; views with several (the schema, the docs) negotiate."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: Any = None
    ) -> tuple[BaseRenderer, str]:
        choices = list(renderers)
        if len(choices) == 1:
            return choices[0], choices[0].media_type
        return super().select_renderer(request, choices, format_suffix)
