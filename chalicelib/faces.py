"""A stage package's face: the modules and names other packages may import from it, each loaded on first use
(PEP 562), so importing a package loads none of its modules and a cold start pays only for what it uses."""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy(package: str, modules: tuple[str, ...], names: dict[str, str]) -> Callable[[str], Any]:
    """The package's `__getattr__`: a name from the module that holds it, or one of its modules."""

    def attribute(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        if name in modules:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return attribute
