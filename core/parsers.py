"""Request body parsers."""

from typing import Any

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, whose refusal says plainly what is wrong with the body. A body nested
    deeper than Python recurses is refused like any other bad JSON: there the decoder raises
    RecursionError, which DRF does not catch."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except (exceptions.ParseError, RecursionError) as exc:
            raise exceptions.ParseError("The body is not valid JSON.") from exc
