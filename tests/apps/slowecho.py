"""The echo app (echo.py) after a pause of ?delay=SECONDS (at most 5), so
that requests are still running when a test stops the server."""
import time
from urllib.parse import parse_qs

import echo


def app(environ, start_response):
    delay = parse_qs(environ.get("QUERY_STRING", "")).get("delay", ["0"])[0]
    time.sleep(min(float(delay), 5.0))
    return echo.app(environ, start_response)
