"""The token page: your API tokens (note, key, created, expiry), a form for a new one (shown
once, on the answer to the POST that made it, never stored in clear) and revoke buttons. Thin
adapters over inventory.services.tokens, like `/api/v1/tokens/` and `manage.py createtoken`."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views import View
from django.views.generic import FormView

from inventory.services import tokens
from inventory.web.forms import TokenForm
from inventory.web.views.common import PageMixin, PortalLoginRequiredMixin
from inventory.web.views.team import redirect_after_post


class TokenPageView(PageMixin, FormView):
    template_name = "inventory/tokens.html"
    form_class = TokenForm

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["tokens"] = [
            {
                "key": token.token_key,
                "note": tokens.note_of(token),
                "created": token.created,
                "expiry": token.expiry,
            }
            for token in tokens.valid_tokens(self.request.user)
        ]
        return context

    def form_valid(self, form: TokenForm) -> HttpResponse:
        try:
            created = tokens.create(user=self.request.user, **form.cleaned_data)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
            return self.form_invalid(form)
        # The secret goes out in this answer only: a fresh form, and the token above the list.
        return self.render_to_response(
            self.get_context_data(form=self.form_class(), new_token=created)
        )


class TokenRevokeView(PortalLoginRequiredMixin, View):
    def post(self, request: HttpRequest, token_key: str) -> HttpResponse:
        try:
            tokens.revoke(user=request.user, token_key=token_key)
        except ObjectDoesNotExist:
            messages.error(request, f"You have no token {token_key} (already revoked?).")
        else:
            messages.success(request, f"Token {token_key}… is revoked: it no longer works.")
        return redirect_after_post(request, reverse("inventory:tokens"))
