"""The settings registry: every settings class is in it, and every variable read is in its
document's table (the README or the module the README points to), both ways."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import msgspec

from app.settings import AppSettings
from ops.settings import SETTINGS, registered
from queues.config import describe, from_env

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("app", "queues", "workers", "ops")

# Variables the README lists that no settings class reads, and the file that reads them.
READ_ELSEWHERE = {
    "AUTOSCALE": "ops/run.py",  # the launcher picks its Procfile with it
    "ENGINE_SGLANG_ARGS": "workers/engine/sglang/loader.py",
}


def test_every_bytes_variable_takes_a_size() -> None:
    assert from_env(AppSettings, {"MODEL": "m", "MAX_BODY_BYTES": "1MiB"}).max_body_bytes == 1 << 20
    for cls in registered():
        for name, default in describe(cls):
            if name.endswith("_BYTES"):
                assert default.isdigit(), (name, default)


# The README's tables, and the registry.


def table_variables(text: str) -> set[str]:
    """Variables named in the first column of the Markdown tables of `text`."""
    found: set[str] = set()
    for line in text.splitlines():
        if line.startswith("|"):
            first = line.split("|")[1]
            found.update(re.findall(r"`([A-Z][A-Z0-9_]*[A-Z0-9])`", first))
    return found


def readme_configuration() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Configuration\n")
    return readme[start : readme.index("\n## ", start + 1)]


def documented(doc: str) -> set[str]:
    if doc == "README.md":
        return table_variables(readme_configuration())
    return table_variables(ast.get_docstring(ast.parse((ROOT / doc).read_text())) or "")


def test_the_registry_is_every_settings_class() -> None:
    """Every Struct with `rename=env_names(...)` is registered, or nested in a registered one."""
    classes = registered()
    assert len(classes) == len(SETTINGS)
    nested = {f.type for cls in classes for f in msgspec.structs.fields(cls) if isinstance(f.type, type)}
    names = {cls.__name__ for cls in [*classes, *nested]}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef) and any(
                    k.arg == "rename" and "env_names" in ast.unparse(k.value) for k in node.keywords
                ):
                    assert node.name in names, f"{path.relative_to(ROOT)}: {node.name} is not in SETTINGS"


def test_every_variable_read_is_in_its_documents_table() -> None:
    readme = readme_configuration()
    for cls, doc in registered().items():
        if doc != "README.md":
            assert f"`{doc}`" in readme, f"the README does not point to {doc}"
        missing = {name for name, _default in describe(cls)} - documented(doc)
        assert not missing, f"{cls.__name__}: {sorted(missing)} missing from the table in {doc}"


def test_every_documented_variable_is_read() -> None:
    read = {name for cls in registered() for name, _default in describe(cls)}
    for doc in {"README.md", *SETTINGS.values()}:
        unknown = documented(doc) - read - set(READ_ELSEWHERE)
        assert not unknown, f"{doc} lists {sorted(unknown)}, which no settings class reads"
    for name, path in READ_ELSEWHERE.items():
        assert name in (ROOT / path).read_text(), f"{name} is not read in {path}"
