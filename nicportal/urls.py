from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("inventory.api.urls")),
    path("", include("nicportal.urls_ops")),
    path("", include("inventory.web.urls")),
]
