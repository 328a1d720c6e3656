"""The layers of docs/architecture.md hold: no import cycle, no import upwards, a small root."""

from __future__ import annotations

from tests.architecture.import_graph import LAYERS, cycles, imports, layer_of, source_files


def test_the_graph_reader_sees_function_level_and_relative_imports():
    graph = imports(source_files())
    # cli/main imports the eval command inside a function; callbacks use a relative import
    assert "chimed_lit.cli.eval" in graph["chimed_lit.cli.main"]
    assert "chimed_lit.callbacks.bias_scale" in graph["chimed_lit.callbacks.eval_tasks"]


def _unlayered(names) -> list[str]:
    out = []
    for name in names:
        try:
            layer_of(name)
        except KeyError:
            out.append(name)
    return out


def test_every_module_is_in_a_layer():
    names = list(source_files())
    assert len(names) > 100  # the reader found the package, not an empty tree
    assert _unlayered(names) == []
    # and the check sees a folder the layers do not name
    assert _unlayered(["chimed_lit.newfolder.thing"]) == ["chimed_lit.newfolder.thing"]


def test_no_module_imports_a_higher_layer():
    graph = imports(source_files())
    upward = sorted(
        f"{a} (layer {LAYERS[layer_of(a)][0]}) imports {b} (layer {LAYERS[layer_of(b)][0]})"
        for a, targets in graph.items()
        for b in targets
        if layer_of(b) < layer_of(a)
    )
    assert upward == []


def test_no_import_cycles():
    assert cycles(imports(source_files())) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_package_root_holds_a_handful_of_modules():
    roots = [
        n
        for n in source_files()
        if n.count(".") == 1
        and n.split(".")[0] == "chimed_lit"
        and (source_files()[n].parent.name == "chimed_lit")
        and source_files()[n].name != "__init__.py"
    ]
    assert len(roots) <= 4, roots
