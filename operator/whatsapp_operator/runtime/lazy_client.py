"""kubernetes_asyncio, with its classes imported when first used instead of all at once.

`import kubernetes_asyncio` imports 859 modules: every API group's client and all 767 model
classes of the Kubernetes API, about 39 MB of the operator's 120 MB before any tenant (and kopf
imports it whenever it is installed). The operator uses two API classes and a handful of models
(a Secret, its metadata, a status). `install()`, called before anything imports the package,
puts the package and its three big namespaces (`client`, `client.api`, `client.models`) in
`sys.modules` as lazy modules (PEP 562 `__getattr__`, as scientific Python's lazy_loader does
for its own packages): each name resolves, on first access, to the very object the package's
own `__init__` would have imported, from the module that `__init__` names for it. Nothing else
changes: the same classes, deserialisation by name (`getattr(client.models, "V1Secret")`),
submodules imported as usual.

The names come from the package's own `__init__.py` files, read as text. If they do not look
as expected (another layout in a later release), `install()` does nothing and the package
imports as usual: slower and larger, never wrong.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import logging
import re
import sys
import types
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PACKAGE = "kubernetes_asyncio"
# `from kubernetes_asyncio.client.models.v1_secret import V1Secret`, one per line
_IMPORT = re.compile(r"^from (kubernetes_asyncio\.client[\w.]*) import (\w+)\s*$", re.MULTILINE)
_VERSION = re.compile(r'^__version__ = "([^"]+)"', re.MULTILINE)
# the top package's own `import kubernetes_asyncio.client as client` and its siblings
_TOP_LEVEL = ("client", "config", "dynamic", "stream", "utils", "watch")


class LazyPackage(types.ModuleType):
    """A package whose listed names are imported from their modules on first access; any
    other name is tried as a submodule, as `from package import submodule` does."""

    def __init__(self, name: str, directory: Path, names: dict[str, str]) -> None:
        super().__init__(name)
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(directory)]
        self.__spec__ = spec
        self.__path__ = [str(directory)]
        self.__package__ = name
        self.__file__ = str(directory / "__init__.py")
        self.__all__ = sorted(names)
        self._lazy_names = names

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        module = self._lazy_names.get(attr)
        if module is not None:
            value = getattr(importlib.import_module(module), attr)
        else:
            target = f"{self.__name__}.{attr}"
            try:
                value = importlib.import_module(target)
            except ModuleNotFoundError as exc:
                if exc.name != target:
                    raise  # a module that exists failed to import: not ours to hide
                raise AttributeError(
                    f"module {self.__name__!r} has no attribute {attr!r}"
                ) from None
        setattr(self, attr, value)  # resolved once
        return value

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._lazy_names})


def _names(text: str) -> dict[str, str]:
    return {name: module for module, name in _IMPORT.findall(text)}


def install() -> bool:
    """Make kubernetes_asyncio lazy (module doc); False, and no change, if it is imported
    already, not installed, or not laid out as expected."""
    if PACKAGE in sys.modules:
        return False
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return False
    root = Path(next(iter(spec.submodule_search_locations)))
    try:
        client_init, api_init, models_init = (
            (root / where / "__init__.py").read_text(encoding="utf-8")
            for where in ("client", "client/api", "client/models")
        )
    except OSError:
        return False
    client, api, models = _names(client_init), _names(api_init), _names(models_init)
    version = _VERSION.search(client_init)
    expected = ("ApiClient", "Configuration", "ApiException", "CoreV1Api", "V1Secret")
    if any(name not in client for name in expected) or "V1Secret" not in models:
        log.debug("kubernetes_asyncio is not laid out as expected: imported as usual")
        return False
    top = LazyPackage(PACKAGE, root, {})
    top.__all__ = list(_TOP_LEVEL)
    packages = (
        top,
        LazyPackage(f"{PACKAGE}.client", root / "client", client),
        LazyPackage(f"{PACKAGE}.client.api", root / "client" / "api", api),
        LazyPackage(f"{PACKAGE}.client.models", root / "client" / "models", models),
    )
    if version:
        packages[1].__version__ = version.group(1)  # type: ignore[attr-defined]
    for package in packages:
        sys.modules[package.__name__] = package
    return True
