import os

from django.core.wsgi import get_wsgi_application

from nicportal import runenv

# What `make run` set (var/run.env), for a server started by hand; no such file in a deployment.
runenv.load()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nicportal.settings")
application = get_wsgi_application()
