from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse


@login_required
def fleet(request: HttpRequest) -> HttpResponse:  # replaced by the dashboard
    return HttpResponse("NICPortal")
