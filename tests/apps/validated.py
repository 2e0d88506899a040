"""Every fixture app wrapped in wsgiref.validate.validator.

``validated:NAME`` serves ``wsgiapps.NAME`` (or ``echo:app``, the Flask
app, the Django project for NAME ``echo``, ``flask``, ``django``) behind
the validator.  Its warnings are turned into errors, so
any PEP 3333 complaint about the server shows up as an exception in the
error log and a 500 (or a cut body) on the wire.
"""
import warnings as _warnings
from wsgiref.validate import WSGIWarning as _WSGIWarning
from wsgiref.validate import validator as _validator

import echo as _echo
import wsgiapps as _wsgiapps

_warnings.simplefilter("error", _WSGIWarning)

_cache = {}


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    if name not in _cache:
        if name == "echo":
            target = _echo.app
        elif name == "flask":
            import flask_app

            target = flask_app.app
        elif name == "django":
            from djangoproj.wsgi import application as target
        else:
            target = getattr(_wsgiapps, name)
        _cache[name] = _validator(target)
    return _cache[name]
