"""Imports point one way (issue 11): the command line and the app above the admin, the admin above
the gateway and the workers, which never import each other and both look down to the domain
(``ruta``: the hand-over to RQ names jobs by path) and to the provider clients; the flow engine
and the provider clients at the bottom. Every import is read, those inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGES = ("flows", "providers", "ruta", "gateway", "workers", "admin")
TOP = ("app", "cli")
#: What each package may import of the project besides itself.
ALLOWED = {
    "flows": set(),
    "providers": {"flows"},
    "ruta": {"flows", "providers"},
    "gateway": {"flows", "providers", "ruta"},
    "workers": {"flows", "providers", "ruta"},
    "admin": {"flows", "providers", "ruta", "gateway", "workers"},
}


def project_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found |= {name.split(".")[0] for name in names}
    return found & {*PACKAGES, *TOP}


def test_every_package_imports_only_what_lies_below_it() -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {sorted(bad)}"
        for package, allowed in ALLOWED.items()
        for path in sorted((ROOT / package).rglob("*.py"))
        if (bad := project_imports(path) - allowed - {package})
    ]
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from workers.jobs import sweep\n    import gateway.ussd\n")
    assert project_imports(module) == {"workers", "gateway"}
