import gc
import os

from django.core.wsgi import get_wsgi_application

from nicportal import runenv

# What `make run` set (var/run.env), for a server started by hand; no such file in a deployment.
runenv.load()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nicportal.settings")
application = get_wsgi_application()


def settle_heap() -> None:
    """Take what start-up allocated out of the garbage collector's walks.

    A server process holds some 150,000 objects from start-up (modules, classes, functions, URL
    patterns) that live as long as it does. Python's full collection walks every one of them,
    about 90 ms on a slow core, and it runs in the middle of whichever request crossed its
    threshold: that was most of the API's slowest page times. Loading the URLconf first (so its
    views and serializers are imported), then collecting once and freezing what is left, moves
    them to a generation no collection visits (`gc.freeze`). Objects made later are collected
    as before."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (imports every view module)
    gc.collect()
    gc.freeze()


settle_heap()
