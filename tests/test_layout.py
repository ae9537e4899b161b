"""The shape of the code base: the engine depends on nothing above it, no two top-level files import each
other in a cycle, model.py imports only torch when loaded, and every script's boolean flags work bare."""
import ast
import glob
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from configurator import parse_args

ENGINE = {"model", "sample", "paged_attention"}
ENGINE_MAY_IMPORT = ENGINE | {"configurator"}  # sample.py's command line


def local_imports():
    """{file: the top-level files it imports, anywhere in it}."""
    files = {os.path.splitext(os.path.basename(p))[0]: p for p in glob.glob(os.path.join(ROOT, "*.py"))}
    graph = {}
    for name, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                deps |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                deps.add(node.module.split(".")[0])
        graph[name] = deps & set(files) - {name}
    return graph


def test_no_import_cycles_and_the_engine_imports_nothing_above_it():
    graph = local_imports()
    for name in ENGINE:
        assert graph[name] <= ENGINE_MAY_IMPORT, (name, graph[name] - ENGINE_MAY_IMPORT)

    def reaches(a, b, seen=()):
        return any(d == b or (d not in seen and reaches(d, b, seen + (d,))) for d in graph[a])
    cycles = [name for name in graph if reaches(name, name)]
    assert not cycles, {n: graph[n] for n in cycles}


def test_importing_model_loads_no_kernel_package():
    code = ("import sys, model; print(sorted({'paged_attention', 'triton', 'flash_attn', 'transformers', "
            "'safetensors'} & set(sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


@pytest.mark.parametrize("script, config, flag", [("train", "TrainConfig", "resume"),
                                                  ("train", "TrainConfig", "fsdp"),
                                                  ("eval", "EvalConfig", "cuda_graph"),
                                                  ("bench", "BenchConfig", "hf")])
def test_a_bare_boolean_flag_means_true_and_an_explicit_value_still_works(script, config, flag):
    cls = getattr(__import__(script), config)
    assert getattr(parse_args(cls, [f"--{flag}"]), flag) is True  # last on the line
    cfg = parse_args(cls, [f"--{flag}", "--seed", "3"])  # followed by another option
    assert getattr(cfg, flag) is True and cfg.seed == 3
    assert getattr(parse_args(cls, [f"--{flag}", "false", "--seed", "3"]), flag) is False
    assert getattr(parse_args(cls, [f"--{flag}=true"]), flag) is True
    with pytest.raises(SystemExit, match="expects a bool"):
        parse_args(cls, [f"--{flag}", "maybe"])
