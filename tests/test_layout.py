"""The package's layers, read from its import statements: the library never reaches up.

    weaksep.cli (and __main__)   the command line: may import everything
    weaksep.tools                benchmarks: may import the study layer and the library
    weaksep.reproduce            the study the notebooks run: may import the library
    the library                  every other module: imports none of the three above

Every ``import`` and ``from ... import`` counts, at the top of a module or inside a function
(a lazy import is still a dependency), except those under ``if TYPE_CHECKING:``, which never
run (a library function may name the study's type in an annotation).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "weaksep"

# (layer, the layers it must not import); a module's layer is the first prefix it matches, else "library".
LAYERS = ("cli", "tools", "reproduce")
FORBIDDEN = {
    "library": ("cli", "tools", "reproduce"),
    "reproduce": ("cli", "tools"),
    "tools": ("cli",),
    "cli": (),
}


def layer_of(module: str, package: str) -> str:
    """The layer of ``module`` (a dotted name inside ``package``)."""
    parts = module.split(".")
    if parts[0] != package or len(parts) == 1:
        return "library"
    if parts[1] == "__main__":
        return "cli"
    return parts[1] if parts[1] in LAYERS else "library"


def _module_name(path: Path, package_dir: Path, package: str) -> tuple[str, bool]:
    parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(path: Path, package_dir: Path, package: str) -> list[tuple[int, list[str]]]:
    """(line, dotted names) of each import statement of ``path``, relative imports resolved; for
    ``from X import a``, ``X`` and then ``X.a`` (``a`` may be a submodule)."""
    module, is_package = _module_name(path, package_dir, package)
    here = module.split(".") if is_package else module.split(".")[:-1]
    found: list[tuple[int, list[str]]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.append((node.lineno, [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, [target, *(f"{target}.{alias.name}" for alias in node.names)]))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return found


def layer_violations(package_dir: Path, package: str) -> tuple[list[str], int]:
    """The imports of ``package`` (its folder ``package_dir``) that reach a layer they must not,
    as ``file:line: module (layer) imports name (layer)``, one per import statement, and how many
    import statements of the package's own modules were checked."""
    violations, checked = [], 0
    for path in sorted(package_dir.rglob("*.py")):
        module, _ = _module_name(path, package_dir, package)
        layer = layer_of(module, package)
        for line, names in imported_modules(path, package_dir, package):
            names = [n for n in names if n.split(".")[0] == package]
            checked += bool(names)
            bad = [n for n in names if layer_of(n, package) in FORBIDDEN[layer]]
            if bad:
                rel = path.relative_to(package_dir.parent).as_posix()
                violations.append(f"{rel}:{line}: {module} ({layer}) imports {bad[0]} ({layer_of(bad[0], package)})")
    return violations, checked


def test_the_library_imports_neither_the_study_nor_the_tools_nor_the_cli():
    violations, checked = layer_violations(PACKAGE_DIR, "weaksep")
    assert checked > 200  # the checker read the package's imports, not an empty folder
    assert violations == []


def test_the_layers_are_the_folders_that_exist():
    for layer in LAYERS:
        assert (PACKAGE_DIR / layer / "__init__.py").is_file(), layer
    library = [
        p
        for p in PACKAGE_DIR.rglob("*.py")
        if layer_of(_module_name(p, PACKAGE_DIR, "weaksep")[0], "weaksep") == "library"
    ]
    names = {p.relative_to(PACKAGE_DIR).as_posix() for p in library}
    assert {"method/model.py", "training/train.py", "inference/separate.py", "data/mixtures.py"} <= names
    assert not any(n.startswith(("reproduce/", "tools/", "cli/")) for n in names)


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "fake"


@pytest.mark.parametrize(
    "bad",
    [
        "from ..reproduce.study import Study\n",  # relative, two levels up
        "import fake.tools.bench\n",  # absolute
        "from .. import cli\n",  # a subpackage named in the import list
        "def f():\n    from fake.reproduce import study\n",  # inside a function
    ],
)
def test_a_planted_bad_import_is_found(tmp_path, bad):
    fake = _write(
        tmp_path,
        {
            "fake/__init__.py": "",
            "fake/__main__.py": "from .cli import main\n",
            "fake/cli/__init__.py": "from ..reproduce import study\nfrom ..tools import bench\nfrom ..method import model\n",
            "fake/reproduce/__init__.py": "",
            "fake/reproduce/study.py": "from ..method.model import Model\n\nStudy = Model\n",
            "fake/tools/__init__.py": "",
            "fake/tools/bench.py": "from ..reproduce.study import Study\n",
            "fake/method/__init__.py": "",
            "fake/method/model.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
            "    from ..reproduce.study import Study\n\nModel = object\n",
            "fake/method/loss.py": "from . import model\n",
        },
    )
    clean, checked = layer_violations(fake, "fake")
    assert clean == [] and checked == 7  # the allowed imports pass; the TYPE_CHECKING one is not read
    (fake / "method" / "loss.py").write_text("from . import model\n" + bad)
    violations, _ = layer_violations(fake, "fake")
    assert len(violations) == 1 and violations[0].startswith("fake/method/loss.py:"), violations
    assert "fake.method.loss (library) imports fake." in violations[0]


def test_the_study_layer_must_not_import_the_cli_or_the_tools(tmp_path):
    fake = _write(
        tmp_path,
        {
            "fake/__init__.py": "",
            "fake/cli/__init__.py": "",
            "fake/tools/__init__.py": "from ..cli import main\n",
            "fake/reproduce/__init__.py": "from ..tools import bench\n",
        },
    )
    violations, _ = layer_violations(fake, "fake")
    assert violations == [
        "fake/reproduce/__init__.py:1: fake.reproduce (reproduce) imports fake.tools (tools)",
        "fake/tools/__init__.py:1: fake.tools (tools) imports fake.cli (cli)",
    ]


def test_a_bad_import_planted_in_a_copy_of_the_package_is_found(tmp_path):
    copy = tmp_path / "weaksep"
    for path in PACKAGE_DIR.rglob("*.py"):
        (copy / path.relative_to(PACKAGE_DIR)).parent.mkdir(parents=True, exist_ok=True)
        (copy / path.relative_to(PACKAGE_DIR)).write_text(path.read_text(encoding="utf-8"))
    losses = copy / "method" / "losses.py"
    lines = len(losses.read_text().splitlines())
    losses.write_text(losses.read_text() + "\n\ndef _plot():\n    from ..reproduce.plots import redraw_all\n")
    assert layer_violations(copy, "weaksep")[0] == [
        f"weaksep/method/losses.py:{lines + 4}: weaksep.method.losses (library) imports "
        "weaksep.reproduce.plots (reproduce)"
    ]
