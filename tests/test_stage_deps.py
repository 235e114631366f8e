"""Each dvc.yaml stage depends on exactly the code its command runs, and on the params it reads.

The code a stage runs is read from the source: the modules `avgate <command>` imports (its
handler in cli.py and what cli.py itself loads: config, numerics, workspace), transitively, lazy
imports included (tests/import_graph.py). A `deps` entry may interpolate (`${item}`,
`${train.finetune}`): it then stands for any value of that segment, so
`src/avgate/finetune/${train.finetune}` covers both modes' packages and
`src/avgate/encoders/${item}.py` every encoder kind, while DVC resolves one of them per stage.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
import typing
from functools import cache

import pytest
import yaml

from avgate.config import Params
from avgate.declare import SPEC, declared
from avgate.encoders import registry
from tests import import_graph
from tests.scratch import REPO

CLI = "avgate.cli"
NOT_STAGE_CODE = {  # modules that run in every command but decide nothing a stage writes
    CLI: "parses arguments, calls the stage and prints its summary line",
}
DECIDE_NO_OUTPUT = {  # params a stage reads that change nothing it writes: not its params deps
    "ingest.workers": "worker processes: the same manifest from any number",
    "demo.workers": "worker processes: the same demo from any number",
    "gate.candidate": "names the line in the ledger record of `evaluate.test: open`",
}
NOT_PARAMS_READERS = {  # modules whose `params.<section>` reads are not a stage's inputs
    CLI: "prints the stage's summary line",
    "avgate.config": "validates every section at load: a stage refuses a params.yaml with a typo",
}


@cache
def stages() -> dict[str, dict]:
    """dvc.yaml's stages that run an avgate command, each with `command`, `deps`, `params`."""
    found = {}
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        body = stage.get("do", stage)
        words = body["cmd"].split()
        if words[0] == "avgate":
            params = [p if isinstance(p, str) else next(iter(p)) for p in body.get("params", [])]
            found[name] = {"command": words[1], "deps": body.get("deps", []), "params": params}
    return found


def _handlers() -> dict[str, ast.FunctionDef]:
    """cli.py's handler function of each subcommand, from its `add("<name>", _handler, ...)`."""
    tree = import_graph.tree(CLI)
    functions = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    found = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "add"
                and len(node.args) >= 2 and isinstance(node.args[0], ast.Constant)):  # fmt: skip
            found[node.args[0].value] = functions[node.args[1].id]
    return found


def _top_level_imports(module: str) -> frozenset[str]:
    body = ast.Module(
        body=[n for n in import_graph.tree(module).body if not isinstance(n, ast.FunctionDef)],
        type_ignores=[],
    )
    return import_graph.imports_in(body, module)


@cache
def stage_modules(command: str) -> frozenset[str]:
    """Every module `avgate <command>` runs, cli.py itself left out."""
    starts = _top_level_imports(CLI) | import_graph.imports_in(_handlers()[command], CLI)
    found = import_graph.closure(*starts) - set(NOT_STAGE_CODE)
    return frozenset(m for m in found if import_graph.has_code(m))


def module_path(module: str) -> str:
    return import_graph.modules()[module].relative_to(REPO).as_posix()


@cache
def interpolated_values() -> dict[str, tuple[str, ...]]:
    """The values each variable of a code dep can take: a mode's choices, the encoder kinds."""
    (finetune,) = [item for item in declared(Params) if item.key == "train.finetune"]
    (rule,) = finetune.spec.rules
    return {
        "train.finetune": tuple(re.findall(r"`([^`]+)`", rule.allowed)),
        "item": tuple(registry.kinds()),  # embed: foreach over embed.encoders, name: kind
    }


def _pattern(dep: str) -> re.Pattern:
    """A deps entry as a regex over file paths: `${var}` is one of the variable's values (any one
    segment for a variable of data paths), a folder stands for its files."""
    values = interpolated_values()
    pieces = re.split(r"\$\{([^}]*)\}", dep.rstrip("/"))
    regex = ""
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            regex += re.escape(piece)
        elif piece in values:
            regex += "(" + "|".join(map(re.escape, values[piece])) + ")"
        else:
            regex += "[^/]+"
    return re.compile(regex + "(/.*)?")


def uncovered_and_unused(stage: dict) -> tuple[list[str], list[str]]:
    """The modules a stage runs that no dep covers, and the code deps that cover nothing it runs."""
    files = sorted(module_path(m) for m in stage_modules(stage["command"]))
    code_deps = [d for d in stage["deps"] if d.startswith("src/")]
    patterns = {dep: _pattern(dep) for dep in code_deps}
    uncovered = [f for f in files if not any(p.fullmatch(f) for p in patterns.values())]
    unused = [d for d, p in patterns.items() if not any(p.fullmatch(f) for f in files)]
    return uncovered, unused


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_deps_are_the_code_it_runs(name):
    uncovered, unused = uncovered_and_unused(stages()[name])
    assert uncovered == [], f"dvc.yaml: stage {name} runs these modules but does not depend on them"
    assert unused == [], f"dvc.yaml: stage {name} depends on code it never imports"


def _property_reads(section: type, name: str) -> list[str] | None:
    """The fields a property of a params section reads (`self.<field>`), or None."""
    attribute = getattr(section, name, None)
    if not isinstance(attribute, property):
        return None
    source = textwrap.dedent(inspect.getsource(attribute.fget))
    return sorted({n.attr for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Attribute)
                   and isinstance(n.value, ast.Name) and n.value.id == "self"})  # fmt: skip


def yaml_keys(chain: list[str]) -> set[str]:
    """`params.<field>.<field>...` as params.yaml keys: a field gathering sections is `<name>`,
    a property stands for the fields it reads."""
    section, keys = Params, []
    for name in chain:
        if section is None:
            keys.append(name)
            continue
        fields = {f.name: f for f in dataclasses.fields(section)}
        if name not in fields:
            reads = _property_reads(section, name)
            if reads is not None:
                return {".".join([*keys, read]) for read in reads}
            break
        spec = fields[name].metadata.get(SPEC)
        keys.append(spec.key if spec and spec.key else name)
        kind = typing.get_type_hints(section)[name]
        section = kind if dataclasses.is_dataclass(kind) else None
    return {".".join(keys)}


def params_read(module: str) -> set[str]:
    """The params.yaml keys a module reads as `params.<section>...` (the longest chains)."""
    found: set[str] = set()
    for node in ast.walk(import_graph.tree(module)):
        chain = []
        while isinstance(node, ast.Attribute):
            chain.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id == "params" and chain:
            found |= yaml_keys(chain[::-1])
    # ast.walk visits each chain's prefixes too: keep only the longest reads
    return {k for k in found if k and not any(o.startswith(k + ".") for o in found)}


def _covers(listed: str, key: str) -> bool:
    """`listed` (a dvc.yaml params entry) covers `key` when it is `key` or a section above it."""
    if listed == "params.yaml":
        return True
    pattern = re.compile(r"[^.]+".join(map(re.escape, re.split(r"\$\{[^}]*\}", listed))))
    parts = key.split(".")
    return any(pattern.fullmatch(".".join(parts[:i])) for i in range(1, len(parts) + 1))


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_params_cover_what_it_reads(name):
    stage = stages()[name]
    modules = stage_modules(stage["command"]) - set(NOT_PARAMS_READERS)
    missing = {
        module: sorted(
            k
            for k in params_read(module) - set(DECIDE_NO_OUTPUT)
            if not any(_covers(p, k) for p in stage["params"])
        )
        for module in modules
    }
    assert {m: k for m, k in missing.items() if k} == {}, (
        f"dvc.yaml: stage {name} reads these params but does not list them"
    )


def test_the_check_sees_a_missing_dep_and_an_unused_one():
    stage = dict(stages()["split"])
    stage["deps"] = [d for d in stage["deps"] if d != "src/avgate/splitting.py"]
    stage["deps"].append("src/avgate/media.py")
    uncovered, unused = uncovered_and_unused(stage)
    assert "src/avgate/splitting.py" in uncovered
    assert unused == ["src/avgate/media.py"]


def test_an_interpolated_dep_stands_for_any_value_of_its_segment():
    pattern = _pattern("src/avgate/finetune/${train.finetune}")
    assert pattern.fullmatch("src/avgate/finetune/lora/task.py")
    assert pattern.fullmatch("src/avgate/finetune/none/__init__.py")
    assert not pattern.fullmatch("src/avgate/finetune/__init__.py")
    assert not pattern.fullmatch("src/avgate/finetuned.py")
    kind = _pattern("src/avgate/encoders/${item}.py")
    assert kind.fullmatch("src/avgate/encoders/logmel.py")
    assert not kind.fullmatch("src/avgate/encoders/base.py")  # shared: listed on its own
    assert _covers("embed.${train.lora.encoder}", "embed.<name>.model")
    assert not _covers("embed.encoders", "embed.workers")
