"""Apps for tests/integration/test_checklist.py (SPEC.md section 20).

Each attribute is a WSGI app; the path of the request does not matter."""


def one_item(environ, start_response):
    """A list of one item: the server computes the Content-Length."""
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok:" + body]


def generator(environ, start_response):
    """No length: chunked on HTTP/1.1, close-delimited on 1.0."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"abc"
        yield b"defgh"

    return gen()


def raise_before(environ, start_response):
    raise ValueError("boom before start_response")


def raise_after(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"first"
        raise ValueError("boom inside the body")

    return gen()


def no_content(environ, start_response):
    start_response("204 No Content", [])
    return [b"ignored"]
