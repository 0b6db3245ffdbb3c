"""PostgreSQL with django-prometheus's query metrics, their cursor class made once.

django-prometheus's backend makes a new cursor class each time it connects, and a pooled
connection connects for every request that queries: a class made and thrown away per request,
a sixth of a purchase's CPU in one process (README "Performance"). Here the class is made once
per cursor class and alias, and counts the same series.
"""

import functools
from typing import Any

from django_prometheus.db.backends.postgresql import base
from django_prometheus.db.common import ExportingCursorWrapper

_exporting = functools.cache(ExportingCursorWrapper)


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super(base.DatabaseWrapper, self).get_connection_params()
        params["cursor_factory"] = _exporting(params["cursor_factory"], self.alias, self.vendor)
        return params
