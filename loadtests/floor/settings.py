"""The floor's settings: nothing Django does not need to answer a request."""

SECRET_KEY = "floor"  # signs nothing: no sessions, no CSRF
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "loadtests.floor.views"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}  # the writers hold their own connections
USE_TZ = True
