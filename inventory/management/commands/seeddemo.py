"""`manage.py seeddemo`: a demo user and two teams for the lab (used by `make run`)."""

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand

# The demo user is staff (it may act for any team); staff without permissions would find an
# empty admin ("You don't have permission to view or edit anything"), so it may see the users
# and manage the teams, with their namespaces, there.
ADMIN_PERMISSIONS = (
    ("auth", "view_user"),
    ("auth", "view_group"),
    ("auth", "add_group"),
    ("auth", "change_group"),
    ("inventory", "view_teamnamespace"),
    ("inventory", "add_teamnamespace"),
    ("inventory", "change_teamnamespace"),
    ("inventory", "delete_teamnamespace"),
)


class Command(BaseCommand):
    help = "Create the demo user (demo/demo, staff) and the teams platform and ml, if missing."

    def handle(self, *args, **options):
        platform, _ = Group.objects.get_or_create(name="platform")
        ml, _ = Group.objects.get_or_create(name="ml")
        user_model = get_user_model()
        user = user_model.objects.filter(username="demo").first()
        if user is None:
            user = user_model.objects.create_user("demo", password="demo", is_staff=True)
            self.stdout.write("created user demo (password: demo) -- a lab-only account")
        user.groups.add(platform, ml)
        for app_label, codename in ADMIN_PERMISSIONS:
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        port = os.environ.get("NICPORTAL_PORT", "8000")
        self.stdout.write(f"log in at http://127.0.0.1:{port}/ as demo / demo")
