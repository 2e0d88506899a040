"""Echo app: the response is JSON holding the environ and the body.

Values that are str are sent as they are; other values are sent as their
type name under "types" (and bools, ints, tuples and None also as their
repr under "reprs") so tests can check both.  The body is decoded
latin-1, so any byte survives the JSON round trip."""
import json


def app(environ, start_response):
    body = environ["wsgi.input"].read(-1)
    env = {}
    types = {}
    reprs = {}
    for key, value in environ.items():
        if isinstance(value, str):
            env[key] = value
        else:
            types[key] = type(value).__name__
            if isinstance(value, (bool, tuple, int, type(None))):
                reprs[key] = repr(value)
    out = json.dumps(
        {
            "environ": env,
            "types": types,
            "reprs": reprs,
            "body": body.decode("latin-1"),
        },
        sort_keys=True,
    ).encode("ascii")
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(out)))],
    )
    return [out]
