"""docs/architecture.md lists every module of the package, and only those."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _listed() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    tree = text.split("```")[1]  # the first code block: the tree
    paths, folder = set(), None
    for line in tree.splitlines():
        m = re.match(r"^(\s*)(\S+)", line)
        if not m or m.group(2) == "pyro_frmdn/":
            continue
        indent, name = len(m.group(1)), m.group(2)
        if name.endswith("/"):
            folder = name.rstrip("/")
        elif name.endswith(".py"):
            paths.add(name if indent == 2 else f"{folder}/{name}")
    return paths


def _modules() -> set[str]:
    package = ROOT / "pyro_frmdn"
    return {
        p.relative_to(package).as_posix()
        for p in package.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    }


def test_the_architecture_page_lists_every_module_and_only_those():
    listed, modules = _listed(), _modules()
    assert modules - listed == set(), "modules missing from docs/architecture.md"
    assert listed - modules == set(), "docs/architecture.md names modules that do not exist"
