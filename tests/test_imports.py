"""The package's layering, read from the source: no import cycles (lazy imports included), and
domain modules never import the stages, the commands or the command line (ARCHITECTURE.md)."""

from tests import import_graph


def test_no_import_cycles_lazy_imports_included():
    assert import_graph.cycles() == []


def test_domain_modules_import_neither_stages_nor_cli():
    upward = {
        module: sorted(t for t in import_graph.imports(module) if _stage_layer(t))
        for module in import_graph.modules()
        if not _stage_layer(module)
    }
    assert {m: t for m, t in upward.items() if t} == {}


def test_the_graph_sees_lazy_imports():
    """A function-level import is an edge: the cycle check would miss half the cycles otherwise."""
    assert "avgate.stages.train" in import_graph.imports("avgate.cli")


def test_a_cycle_through_a_lazy_import_is_found(monkeypatch):
    edges = {"avgate.a": {"avgate.b"}, "avgate.b": {"avgate.c"}, "avgate.c": {"avgate.a"},
             "avgate.d": {"avgate.a"}}  # fmt: skip
    monkeypatch.setattr(import_graph, "modules", lambda: dict.fromkeys(edges))
    monkeypatch.setattr(import_graph, "imports", lambda module: frozenset(edges[module]))
    assert import_graph.cycles() == [["avgate.a", "avgate.b", "avgate.c"]]


def _stage_layer(module: str) -> bool:
    """The command line, the stages, the commands people type (`avgate report`, ...) and the
    probes, the `probe` stage's plugins (they run the train and embed stages' code again)."""
    stage_packages = ("avgate.stages", "avgate.commands", "avgate.probes")
    return module == "avgate.cli" or module.startswith(stage_packages)
