"""WSGI entry point: ``gunicorn --chdir examples/django_app shop.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

import obskit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

application = get_wsgi_application()  # Django is set up (its LOGGING too) before obskit
obskit.configure(application, service_name="shop")
