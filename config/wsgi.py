import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

# Every web process runs the stock reconciler; a Redis lock lets one of the fleet work at a time.
from sales.stock import start_reconciler  # noqa: E402 (needs the app registry loaded above)

start_reconciler()
