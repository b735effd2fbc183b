"""Repository-level promises: CI runs README's set-up commands, the product stands alone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU_TORCH = 'pip install "torch==2.13.*" --index-url https://download.pytorch.org/whl/cpu && '


def _setup_commands(markdown: str) -> list[str]:
    """The one-line commands of the ```bash blocks that start with ``pip install``."""
    blocks = re.findall(r"```bash\n(.*?)```", markdown, flags=re.S)
    return [b.strip() for b in blocks if b.startswith("pip install")]


def _ci_extracts(head: str) -> str:
    """What .ci/run's own ``readme_command`` function returns for ``head``."""
    ci = (ROOT / ".ci" / "run").read_text()
    func = re.search(r"^readme_command\(\) \{.*?^\}", ci, flags=re.S | re.M)
    assert func, ".ci/run defines readme_command"
    script = f'cd "{ROOT}"\n{func.group(0)}\nreadme_command "{head}"'
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_readme_has_exactly_two_setup_commands_that_install_the_cpu_build():
    main, tests = _setup_commands((ROOT / "README.md").read_text())  # exactly two
    assert main.startswith(CPU_TORCH) and main.endswith("&& gradscope demo")
    assert tests.startswith(CPU_TORCH) and tests.endswith("python -m pytest -q")
    assert 'pip install -e ".[dev]"' in tests


def test_ci_runs_readmes_commands_verbatim():
    main, tests = _setup_commands((ROOT / "README.md").read_text())
    assert _ci_extracts("Run the main job") == main
    assert _ci_extracts("Run the tests") == tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert "torch==" not in ci  # no install README does not mention
    assert "mkdocs build --strict" in ci
    assert "--strict --quiet" not in ci  # --quiet drops the warnings that --strict counts
    assert "\npyright -p pyproject.toml\n" in ci  # type checking ([tool.pyright] in pyproject.toml)


def test_docs_index_gives_the_same_commands():
    assert _setup_commands((ROOT / "docs" / "index.md").read_text()) == _setup_commands(
        (ROOT / "README.md").read_text()
    )


@pytest.mark.slow
@pytest.mark.parametrize("module", ["gradscope.__main__"])
def test_importing_the_entry_point_runs_nothing(module):
    out = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, cwd=ROOT
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_api_reference_covers_every_public_module():
    """Every public module outside the CLI (and the optimizers' own files) has a section."""
    api = (ROOT / "docs" / "api.md").read_text()
    documented = set(re.findall(r"^::: ([\w.]+)", api, flags=re.M))
    pkg = ROOT / "gradscope"
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        if any(p.startswith("_") for p in parts) or parts[1:2] in (("cli",), ("optim",)):
            continue  # private, the CLI (docs/cli-reference.md), optim (its package page)
        if parts[1:2] == ("theory",) or parts[1:2] == ("analysis",):
            parts = parts[:2]  # re-exported by their package
        if parts[1:2] == ("record",) and len(parts) > 2 and parts[2] == "summaries":
            continue  # on-device kernels behind the Recorder, not a user API
        name = ".".join(parts)
        assert any(d == name or d.startswith(name + ".") for d in documented), name


def test_optimizer_argument_table_is_each_signature():
    import inspect

    import gradscope.optim as O

    page = (ROOT / "docs" / "optimizers.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ((?:`\w+`(?:, )?)+) \|$", page, flags=re.M))
    for cls in O.OPTIMIZERS.values():
        params = list(inspect.signature(cls.__init__).parameters)[2:]  # self, params
        params = [p for p in params if p != "extra"]
        assert re.findall(r"`(\w+)`", rows[cls.__name__]) == params, cls.__name__
        for p in params:  # and the meaning of each is on the page
            assert re.search(rf"^\| `{p}`|^\| [^|]*`{p}`[^|]*\| ", page, flags=re.M), p


def test_docs_site_is_offline_and_lists_every_page():
    conf = (ROOT / "mkdocs.yml").read_text()
    assert "highlightjs: false" in conf  # the theme's highlight.js would come from a CDN
    for page in (ROOT / "docs").glob("*.md"):
        assert f": {page.name}" in conf, page.name


#: A citation of a file outside the repository, or the internal "seed" shorthand.
OUTSIDE = re.compile(
    r"spec/\w+\.md|\bspec (?:section|sections|Eq\.|\d)|shared/spec|\.\./shared|STYLE(?:\.md| rule)"
    r"|ecosystem(?:\.md| note)|\bseed (?:paper|\d{3})|\bseed's|\bseed00\d|seed papers"
)
#: Files whose owners are still rewriting them (the optimizers and their oracle);
#: everything else must already stand alone.
PENDING: set[str] = set()


def test_product_cites_nothing_outside_the_repository():
    roots = ["gradscope", "docs", "examples", "benchmarks", "tests"]
    files = [ROOT / "README.md", ROOT / "DEVELOPERS.md", ROOT / "mkdocs.yml"]
    for r in roots:
        files += [p for p in (ROOT / r).rglob("*") if p.suffix in (".py", ".md")]
    bad = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if rel == "tests/test_repository.py" or any(rel.startswith(p) for p in PENDING):
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                bad.append(f"{rel}:{i}: {line.strip()}")
    assert not bad, "\n".join(bad)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "bad_import"),
    [
        ("theory/exact.py", "gradscope.analysis"),  # theory -> analysis (up a tier)
        ("optim/adam.py", "gradscope.examplewise"),  # optim -> examplewise
        ("examplewise.py", "gradscope.record"),  # examplewise -> record
        ("errors.py", "gradscope.names"),  # inside tier 0 (independent siblings)
        ("names.py", "numpy"),  # tier 0 is standard library only
        ("runfile/reader.py", "gradscope.theory"),  # two tier-1 siblings
    ],
)
def test_import_contracts_catch_a_wrong_edge(module, bad_import, tmp_path):
    """lint-imports passes on the package and fails once one forbidden import is added."""
    import shutil

    shutil.copytree(
        ROOT / "gradscope", tmp_path / "gradscope", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")

    def lint() -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(tmp_path)}
        return subprocess.run(
            [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )

    assert lint().returncode == 0
    path = tmp_path / "gradscope" / module
    path.write_text(path.read_text() + f"\nimport {bad_import}  # noqa\n")
    out = lint()
    assert out.returncode != 0
    assert "BROKEN" in out.stdout and bad_import in out.stdout
