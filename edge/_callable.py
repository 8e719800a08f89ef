"""``edge.export`` and ``edge.bench`` are packages (the design card's namespaces) and, as the public API,
functions: ``edge.export("tracker", "out/tracker")``. Each package module is made callable; the call goes to
``edge.api.<name>``, looked up when called, so the package never imports the API (a higher layer)."""
from __future__ import annotations

import importlib
import sys
import types


class CallablePackage(types.ModuleType):
    """A package module whose call is ``edge.api.<__api__>(...)``."""

    def __call__(self, *args, **kwargs):
        return getattr(importlib.import_module("edge.api"), self.__api__)(*args, **kwargs)


def make_callable(module_name: str, api_name: str) -> None:
    mod = sys.modules[module_name]
    mod.__api__ = api_name
    mod.__class__ = CallablePackage
