"""The public API, locked: a change here is a change users see."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import langchain_xrerank
import llamaindex_xrerank
import xrerank_core

ROOT = Path(__file__).resolve().parents[1]


def test_public_names() -> None:
    assert sorted(xrerank_core.__all__) == sorted(
        [
            "DEFAULT_MODEL",
            "ConfigError",
            "HTTPBackendError",
            "HttpScorer",
            "InputError",
            "InputTypeError",
            "MissingDependencyError",
            "ModelLoadError",
            "ModelNotFoundError",
            "NotACrossEncoderError",
            "Ranked",
            "Ranking",
            "RemoteCodeRequiredError",
            "Reranker",
            "RerankerConfig",
            "Scorer",
            "ScoringError",
            "XRerankError",
            "__version__",
            "bundled_models",
        ]
    )
    assert langchain_xrerank.__all__ == ["XRerankCompressor"]
    assert llamaindex_xrerank.__all__ == ["XRerankPostprocessor"]
    for module in (xrerank_core, langchain_xrerank, llamaindex_xrerank):
        for name in module.__all__:
            assert hasattr(module, name)


def test_every_package_is_typed() -> None:
    for pkg in ("xrerank_core", "langchain_xrerank", "llamaindex_xrerank"):
        assert (ROOT / pkg / "py.typed").is_file()


def test_core_never_imports_a_framework() -> None:
    code = (
        "import sys, xrerank_core, xrerank_core._engine, xrerank_core._models; "
        "bad = [m for m in sys.modules if m.startswith(('langchain', 'llama_index'))]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    for path in (ROOT / "xrerank_core").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.startswith(("langchain", "llama_index")) for n in names), path


def test_every_extra_named_in_a_message_exists() -> None:
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    named: set[str] = set()
    for path in [*ROOT.glob("xrerank_core/**/*.py"), *ROOT.glob("*_xrerank/**/*.py"), ROOT / "README.md"]:
        text = path.read_text(encoding="utf-8")
        named |= set(re.findall(r"xrerank\[([a-z,]+)\]", text))
        named |= {m for m in re.findall(r'missing_dependency\([^,]+,\s*"([a-z]+)"', text)}
    named = {e for group in named for e in group.split(",")}
    assert named <= extras, named - extras


def test_one_version_source() -> None:
    from importlib.metadata import version

    assert version("xrerank") == xrerank_core.__version__
