"""A small Django project for obskit's tests: every kind of route and view."""

import os

SECRET_KEY = "obskit-tests-only"
DEBUG = os.environ.get("DJPROJ_DEBUG") == "1"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djproj.urls"
INSTALLED_APPS: list[str] = []
# DJPROJ_MIDDLEWARE=1: the settings way in (obskit's middleware first); else configure(app).
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
if os.environ.get("DJPROJ_MIDDLEWARE") == "1":
    MIDDLEWARE.insert(0, "obskit.django.ObskitMiddleware")
    OBSKIT = {"service_name": "djproj"}
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
WSGI_APPLICATION = "djproj.wsgi.application"  # runserver serves the same handler
# DJPROJ_LOGGING=1: a project's own LOGGING (no disable_existing_loggers: Django's default True).
if os.environ.get("DJPROJ_LOGGING") == "1":
    LOGGING = {
        "version": 1,
        "formatters": {"plain": {"format": "PLAIN %(levelname)s %(name)s %(message)s"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "loggers": {"djproj": {"handlers": ["console"], "level": "DEBUG"}},
    }
