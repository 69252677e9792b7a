from django.contrib import admin
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    # Resolved per request: the production storage names the file by its hash (collectstatic).
    return HttpResponsePermanentRedirect(static("favicon.svg"))


urlpatterns = [
    # Pages that name no icon (the admin's) make browsers ask for /favicon.ico.
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("inventory.api.urls")),
    path("", include("nicportal.urls_ops")),
    path("", include("inventory.web.urls")),
]
