import os

from django.core.wsgi import get_wsgi_application

# Not setdefault: a stack's environment may name the project's settings.
os.environ["DJANGO_SETTINGS_MODULE"] = "loadtests.floor.settings"

application = get_wsgi_application()
