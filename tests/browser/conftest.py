"""Browser tests: Playwright's sync API runs an asyncio loop in the test thread, which makes
Django refuse ORM calls from that thread unless told it is fine (the test seeds rows directly)."""

import os

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
