"""Settings of a small Django service instrumented by obskit (see docs/django.md).

obskit is configured in wsgi.py / asgi.py with the project's handler. To use settings instead,
put ``"obskit.django.ObskitMiddleware"`` first in MIDDLEWARE, remove the configure() calls and
give configure()'s keywords here: ``OBSKIT = {"service_name": "shop"}``.
"""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "example-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
