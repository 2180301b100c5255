"""kubernetes_asyncio imported lazily (whatsapp_operator/runtime/lazy_client.py): the same names
resolve to the same objects, only when used; each case runs in a fresh interpreter. The CLI
installs it (`cli.main`); importing the package does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from whatsapp_operator.runtime import lazy_client


def run(code: str, *, pythonpath: str | None = None) -> dict[str, object]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([pythonpath, env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


RSS = "int(open('/proc/self/statm').read().split()[1]) * 4096 / 1e6"
# what `cli.main` does before it imports the rest of the operator
INSTALL = "from whatsapp_operator.runtime import lazy_client; lazy_client.install()"
COUNT = "sum(1 for m in sys.modules if m.startswith('kubernetes_asyncio'))"


def test_the_operator_imports_a_handful_of_its_modules_instead_of_all() -> None:
    lazy = run(
        f"import json, sys\n{INSTALL}\nimport whatsapp_operator.runtime.handlers, kopf\n"
        f"print(json.dumps({{'modules': {COUNT}, 'rss': {RSS}}}))"
    )
    eager = run(
        "import json, sys\nimport kubernetes_asyncio\n"
        f"{INSTALL}\nimport whatsapp_operator.runtime.handlers, kopf\n"
        f"print(json.dumps({{'modules': {COUNT}, 'rss': {RSS}}}))"
    )
    assert int(lazy["modules"]) < 60 < 800 < int(eager["modules"])  # type: ignore[call-overload]
    if sys.platform.startswith("linux"):  # measured: 84 MB against 119
        assert float(eager["rss"]) - float(lazy["rss"]) > 20  # type: ignore[arg-type]


def test_every_name_resolves_to_the_object_the_eager_package_has() -> None:
    code = """
import json, types
{prelude}
from kubernetes_asyncio import client
from kubernetes_asyncio.client import api, models
names = {names}
found = {{}}
for package in (client, api, models):
    wanted = names[package.__name__] if names else [n for n in dir(package) if n[0] != "_"]
    for name in wanted:
        value = getattr(package, name)
        where = value.__name__ if isinstance(value, types.ModuleType) else value.__module__
        found[package.__name__ + "." + name] = where
print(json.dumps(found))
"""
    eager = run(code.format(prelude="import kubernetes_asyncio", names="None"))
    # the generated files' `from __future__ import absolute_import`: not the package's API
    eager = {k: v for k, v in eager.items() if not k.endswith(".absolute_import")}
    assert len(eager) > 1500
    names: dict[str, list[str]] = {}
    for key in eager:
        package, _, name = key.rpartition(".")
        names.setdefault(package, []).append(name)
    lazy = run(code.format(prelude=INSTALL, names=repr(names)))
    assert lazy == eager


def test_objects_deserialise_by_name_as_the_api_client_does() -> None:
    out = run("""
import asyncio, json, sys
INSTALL
from kubernetes_asyncio import client
class Answer:
    data = json.dumps({"kind": "Secret", "metadata": {"name": "x", "ownerReferences": [
        {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u"}]}, "data": {"k": "dg=="}})
async def main():
    api = client.ApiClient(configuration=client.Configuration())
    try:
        secret = api.deserialize(Answer(), "V1Secret")
    finally:
        await api.close()
    return [type(secret).__name__, secret.metadata.owner_references[0].kind, secret.data]
print(json.dumps({"secret": asyncio.run(main()), "modules": COUNT}))
""".replace("COUNT", COUNT).replace("INSTALL", INSTALL))  # fmt: skip
    assert out["secret"] == ["V1Secret", "Pod", {"k": "dg=="}]
    assert int(out["modules"]) < 60  # type: ignore[call-overload]


def test_an_unknown_name_is_an_attribute_error_and_submodules_still_import() -> None:
    out = run(
        """
import json
INSTALL
from kubernetes_asyncio import client
from kubernetes_asyncio.client import rest
try:
    client.NoSuchThing
    error = None
except AttributeError as exc:
    error = str(exc)
print(json.dumps({"error": error, "rest": rest.__name__, "version": client.__version__}))
""".replace("INSTALL", INSTALL)
    )
    assert out["error"] == "module 'kubernetes_asyncio.client' has no attribute 'NoSuchThing'"
    assert out["rest"] == "kubernetes_asyncio.client.rest"
    assert str(out["version"])[0].isdigit()


def test_importing_the_package_or_its_cli_changes_nothing() -> None:
    out = run(
        "import json, sys\nimport whatsapp_operator, whatsapp_operator.cli\n"
        "from whatsapp_operator.postgres import credentials_cli\n"
        "import kubernetes_asyncio\n"
        "print(json.dumps({'lazy': type(kubernetes_asyncio).__name__, "
        "'kopf': 'kopf' in sys.modules}))"
    )
    assert out == {"lazy": "module", "kopf": False}


def test_the_cli_installs_it_before_kopf_is_imported() -> None:
    out = run("""
import json, sys, types
from whatsapp_operator import cli
def started(cfg):  # stands in for runtime.run.main: kopf is imported from here on
    import kopf
    lazy = type(sys.modules["kubernetes_asyncio"]).__name__
    print(json.dumps({"kopf": "kopf" in sys.modules, "lazy": lazy, "ns": cfg.namespace_list}))
fake = types.ModuleType("whatsapp_operator.runtime.run")
fake.main = started
sys.modules[fake.__name__] = fake
cli.main(["-n", "shop"])
""")
    assert out == {"kopf": True, "lazy": "LazyPackage", "ns": ["shop"]}


def test_nothing_changes_once_the_package_is_imported() -> None:
    import kubernetes_asyncio  # noqa: F401 - this process's copy, lazy or not

    assert not lazy_client.install()  # this process imported it already, one way or the other


def test_another_layout_is_imported_as_usual(tmp_path: Path) -> None:
    package = tmp_path / "kubernetes_asyncio"
    (package / "client").mkdir(parents=True)
    (package / "__init__.py").write_text("EAGER = True\n")
    (package / "client" / "__init__.py").write_text("from .api_client import ApiClient\n")
    out = run(
        f"import json\n{INSTALL}\nimport kubernetes_asyncio\n"
        "print(json.dumps({'eager': getattr(kubernetes_asyncio, 'EAGER', False), "
        "'lazy': type(kubernetes_asyncio).__name__}))",
        pythonpath=str(tmp_path),
    )
    assert out == {"eager": True, "lazy": "module"}


@pytest.mark.parametrize("name", ["ApiClient", "CoreV1Api", "V1Secret", "ApiException"])
def test_the_names_come_from_the_packages_own_init_files(name: str) -> None:
    import kubernetes_asyncio  # this process's copy, lazy or not

    root = Path(next(iter(kubernetes_asyncio.__path__)))
    names = lazy_client._names((root / "client" / "__init__.py").read_text(encoding="utf-8"))
    assert name in names
