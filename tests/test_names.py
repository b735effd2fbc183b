"""gradscope.names: the one vocabulary, stdlib-only, equal to the copies still in use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from gradscope import names
from gradscope.runfile import schema


def _top_level_modules(code: str) -> set[str]:
    code += "\nimport sys; print(sorted(m for m in sys.modules if '.' not in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(eval(out.stdout))


@pytest.mark.slow
def test_names_imports_only_the_standard_library():
    new = _top_level_modules("import gradscope.names") - _top_level_modules("")
    assert new - {"gradscope"} <= set(sys.stdlib_module_names)


@pytest.mark.parametrize("name", [n for n in names.__all__ if n.isupper() and n[:5] != "RANKS"])
def test_schema_holds_the_same_names(name):
    # the run-file schema still defines its own copies; they must not drift apart
    assert getattr(schema, name) == getattr(names, name)


def test_quantile_names_are_the_levels_in_percent():
    assert names.QUANTILE_STATS == ("q05", "q25", "q50", "q75", "q95")
    assert names.STATS[: len(names.MOMENT_STATS)] == names.MOMENT_STATS


def test_rank_file_names_round_trip():
    p = PurePosixPath("out/run.h5")
    r = names.rank_path(p, 3)
    assert r == PurePosixPath("out/run.rank00003.h5")
    assert names.run_stem(r) == names.run_stem(p) == "run"
    assert names.run_stem(Path("a.rank.h5")) == "a.rank"  # no digits: not a rank suffix


def test_full_dataset_path_matches_the_writer():
    from gradscope.runfile.writer import _full_path

    assert names.full_dataset("grad", 7) == _full_path("grad", 7) == "full/grad/00007"


def test_package_all_lists_every_lazy_name():
    import gradscope

    assert sorted(gradscope.__all__) == sorted(
        gradscope._SUBMODULES | set(gradscope._LAZY_ATTRS) | {"__version__"}
    )


def test_every_name_of_the_schema_is_in_names():
    # the file format's own identity (format name, versions) stays with the schema
    own = {"FORMAT", "READABLE_VERSIONS"}
    vocabulary = {n for n, v in vars(schema).items() if n.isupper() and isinstance(v, (str, tuple))}
    assert vocabulary - own <= set(names.__all__)
