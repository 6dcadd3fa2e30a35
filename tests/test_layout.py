"""The layout a maintainer relies on: four scripts at the root, one package, short functions."""

import ast
import subprocess
import sys

from conftest import ROOT

MAX_FUNCTION_LINES = 60


def test_the_root_holds_only_the_four_scripts_users_run():
    assert sorted(path.name for path in ROOT.glob("*.py")) == ["fine_tune_embedder.py", "fine_tune_reranker.py",
                                                               "main.py", "rerank.py"]


def test_tests_and_benchmarks_never_edit_sys_path():
    offenders = [str(path.relative_to(ROOT)) for folder in ("tests", "bench") for path in (ROOT / folder).glob("*.py")
                 if "sys.path" in path.read_text(encoding="utf-8") and path.name != "test_layout.py"]
    assert offenders == []


def test_no_function_in_the_package_or_the_benchmarks_is_longer_than_60_lines():
    too_long = []
    for path in sorted((ROOT / "reranker_kit").rglob("*.py")) + sorted((ROOT / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert too_long == []


def test_the_package_imports_from_another_folder_without_loading_torch(tmp_path):
    # Bad input must fail before torch loads: the CLIs' modules import no heavy library at import time.
    code = ("import sys, reranker_kit.commands.train_reranker, reranker_kit.commands.benchmark, "
            "reranker_kit.commands.export, reranker_kit.commands.train_embedder; "
            "print(sorted(name for name in ('torch', 'transformers') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
