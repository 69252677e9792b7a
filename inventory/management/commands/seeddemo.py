"""`manage.py seeddemo`: a demo user and two teams for the lab (used by `make run`)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand


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
        self.stdout.write("log in at http://127.0.0.1:8000/ as demo / demo")
