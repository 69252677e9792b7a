#!/usr/bin/env python
import os
import sys

from nicportal import runenv


def main() -> None:
    # What `make run` set (var/run.env), for a command typed in another shell.
    runenv.load()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nicportal.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
