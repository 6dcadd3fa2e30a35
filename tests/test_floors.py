"""The package is a house with floors: a module imports only from its own floor's lower parts and the floors
below, never upward and never in a circle, at the top of a file or inside a function.

The order is declared here once; README's package map follows it.
"""

import ast
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = "reranker_kit"
# Lowest first. A module belongs to the first floor whose part names its first sub-package or file.
FLOORS = (
    ("basics",),                         # errors, text and score normalisation, atomic files, interrupts
    ("data", "metrics"),                 # the club's files; the club's metrics and paired statistics
    ("retrieval",),                      # first stages and their output, Candidates
    ("models",),                         # loading, pair encoding, scoring, export formats
    ("pipeline", "fusion"),              # retrieve-then-rerank, fusing the two stages
    ("reports",),                        # tables, the HTML page, charts, the model card
    ("run_folder",),                     # create, find and read run folders and checkpoints
    ("finetune",),                       # the fine-tuning core both training jobs share
    ("training", "benchmark", "serving", "embedder"),  # the jobs
    ("commands", "testing"),             # the command lines, and the offline fixtures of tests and benches
)


def floor_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    for level, parts in enumerate(FLOORS):
        if part in parts:
            return level
    raise AssertionError(f"{module} is on no floor: add its folder or file to FLOORS in {Path(__file__).name}")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports(root: Path) -> dict[str, set[str]]:
    """Every module of the package and the package modules it imports, top level or inside a function."""
    modules = {module_name(path, root): path for path in (root / PACKAGE).rglob("*.py")}
    imports = {}
    for module, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            # `from reranker_kit.basics import errors` names the module errors; keep the longest real module.
            found |= {name for name in names if name in modules and name.startswith(f"{PACKAGE}.")}
        imports[module] = found - {module}
    return imports


def upward_imports(imports: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} imports {target} (floor {floor_of(target)} above {floor_of(module)})"
                  for module, targets in imports.items() if module != PACKAGE
                  for target in targets if floor_of(target) > floor_of(module))


def import_circles(imports: dict[str, set[str]]) -> list[list[str]]:
    """Each circle once, as found by a depth-first search (package __init__ files re-export, so they count)."""
    circles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(imports.get(module, ())):
            if state.get(target) == "open":
                circles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(imports):
        if module not in state:
            visit(module, [module])
    return circles


def test_no_module_imports_from_a_floor_above_it():
    assert upward_imports(package_imports(ROOT)) == []


def test_no_modules_import_each_other_in_a_circle():
    assert import_circles(package_imports(ROOT)) == []


def test_the_two_training_jobs_share_only_the_core():
    """embedder/ never imports training/ (the reranker's parts) or the reverse: what both need is in finetune/."""
    imports = package_imports(ROOT)
    crossing = sorted(f"{module} imports {target}" for module, targets in imports.items() for target in targets
                      for side, other in (("embedder", "training"), ("training", "embedder"))
                      if module.startswith(f"{PACKAGE}.{side}") and target.startswith(f"{PACKAGE}.{other}"))
    assert crossing == []


def test_every_module_of_the_package_is_on_a_floor():
    for module in package_imports(ROOT):
        if module != PACKAGE:
            floor_of(module)


@pytest.mark.parametrize("source, problem", [
    ("from reranker_kit.training.runner import RerankerRunner\n", "upward"),
    ("def later():\n    from reranker_kit.run_folder import is_complete\n", "upward"),
    ("from reranker_kit.data.loading import Query\n", "circle"),
])
def test_the_floor_checks_catch_an_upward_import_and_a_circle(tmp_path, source, problem):
    """The checks run on a copy of the package with one bad import added to data/splits.py or metrics."""
    import shutil

    shutil.copytree(ROOT / PACKAGE, tmp_path / PACKAGE)
    target = tmp_path / PACKAGE / ("metrics/conventions.py" if problem == "upward" else "data/augmentation.py")
    if problem == "circle":  # data.loading imports nothing from data.augmentation today; this closes a loop.
        loading = tmp_path / PACKAGE / "data/loading.py"
        loading.write_text(loading.read_text(encoding="utf-8") + "\nfrom reranker_kit.data.augmentation import "
                           "answers_as_queries  # noqa\n", encoding="utf-8")
    target.write_text(target.read_text(encoding="utf-8") + "\n" + source, encoding="utf-8")
    imports = package_imports(tmp_path)
    assert upward_imports(package_imports(ROOT)) == [] and import_circles(package_imports(ROOT)) == []
    if problem == "upward":
        assert any(line.startswith("reranker_kit.metrics.conventions imports") for line in upward_imports(imports))
    else:
        assert import_circles(imports)
