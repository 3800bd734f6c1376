"""The public API: every name documented, the type stubs complete and installed."""
import ast
import inspect
import pathlib
import re

import pytest

import pymlm
import pymlm._core as core

PKG = pathlib.Path(pymlm.__file__).parent
STUB_DUNDERS = {"__init__", "__call__", "__getitem__", "__len__", "__iter__", "__contains__"}
DOC_DUNDERS = {"__init__", "__call__"}
SIGNATURE = re.compile(r"^\s*(\d+\.\s*)?\w+\(.*\)( -> .*)?$")


def doc_text(obj):
    """The docstring minus pybind11's signature lines."""
    doc = inspect.getdoc(obj) or ""
    lines = [l for l in doc.splitlines() if l.strip() and not SIGNATURE.match(l) and l.strip() != "Overloaded function."]
    return "\n".join(lines).strip()


def public_members(cls, dunders=STUB_DUNDERS):
    for name, value in vars(cls).items():
        if name.startswith("_") and name not in dunders:
            continue
        if name in ("__init__",) and "Initialize self" in (getattr(value, "__doc__", "") or ""):
            continue  # a class Python cannot construct (records made by the library)
        yield name, value


def test_all_names_exist():
    for name in pymlm.__all__:
        assert hasattr(pymlm, name), name


@pytest.mark.parametrize("name", [n for n in pymlm.__all__ if n not in ("__version__", "has_openmp")])
def test_every_public_name_is_documented(name):
    obj = getattr(pymlm, name)
    assert doc_text(obj), "%s has no docstring" % name
    if inspect.isclass(obj) and not issubclass(obj, BaseException):
        for member, value in public_members(obj, DOC_DUNDERS):
            target = value.fget if isinstance(value, property) else value
            if isinstance(value, (staticmethod, classmethod)):
                target = value.__func__
            if target is None or isinstance(target, (str, int, float, type(None))):
                continue
            assert doc_text(target) or doc_text(value), "%s.%s has no docstring" % (name, member)


def stub_tree():
    path = PKG / "_core.pyi"
    assert path.exists(), "the stub file is not installed next to the module"
    return ast.parse(path.read_text())


def stub_names(tree):
    top, classes = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            top.add(node.target.id)
        elif isinstance(node, ast.Assign):
            top.update(t.id for t in node.targets if isinstance(t, ast.Name))
        if isinstance(node, ast.ClassDef):
            members = set()
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
            classes[node.name] = members
    return top, classes


def test_stubs_cover_the_extension_module():
    top, classes = stub_names(stub_tree())
    runtime = {n for n in dir(core) if not n.startswith("_")} | {"__version__"}
    assert runtime - top == set(), "names of pymlm._core missing from _core.pyi"
    for name, members in classes.items():
        cls = getattr(core, name, None)
        if cls is None:
            continue  # type aliases of the stub
        have = {m for m, _ in public_members(cls)}
        missing = have - members - {"__init__"} if "__init__" not in vars(cls) else have - members
        assert missing == set(), "%s: members missing from _core.pyi: %s" % (name, sorted(missing))
        extra = {m for m in members if not hasattr(cls, m)}
        assert extra == set(), "%s: stub members that do not exist: %s" % (name, sorted(extra))


def test_stub_field_parts_match_the_field_tables():
    """The config classes' stub part is generated from the C++ tables: a knob added there and not
    regenerated (scripts/gen_stubs.py) fails here."""
    import runpy

    gen = runpy.run_path(str(pathlib.Path(__file__).resolve().parents[2] / "scripts" / "gen_stubs.py"))
    text = (PKG / "_core.pyi").read_text()
    assert gen["generate"](text, core) == text, "run scripts/gen_stubs.py: _core.pyi is out of date"
    for name in gen["CLASSES"]:
        fields = getattr(core, name).fields()
        assert [f["name"] for f in fields] == getattr(core, name).field_names()
        assert all(f["role"] in ("recipe", "run", "runtime") and f["help"] for f in fields), name


def test_package_is_typed():
    assert (PKG / "py.typed").exists()
    for mod in ("__init__.py", "_predict.py", "_training.py"):
        assert (PKG / mod).exists()


def test_exceptions():
    assert issubclass(pymlm.CheckpointError, ValueError)
    assert issubclass(pymlm.OutOfRangeError, ValueError) and issubclass(pymlm.OutOfRangeError, IndexError)


def test_reference_defaults_through_the_api():
    assert pymlm.ModelConfig().num_parameters() == 6_861_056
    cfg = pymlm.TrainerConfig()
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.optimizer, cfg.schedule) == (6e-4, 128, 100, "adam", "one_cycle")
    assert cfg.masking.mask_probability == 0.15 and cfg.eval.seed == 1234
    assert "lr" in cfg.as_dict() and pymlm.TrainerConfig.field_names()[0] == "epochs"


def test_set_num_threads_reaches_other_python_threads():
    """OpenMP's setting is per thread; pymlm applies the last set_num_threads(n) everywhere."""
    import threading

    before = pymlm.get_num_threads()
    seen = []
    try:
        pymlm.set_num_threads(1)
        t = threading.Thread(target=lambda: seen.append(pymlm.get_num_threads()))
        t.start()
        t.join()
        assert seen == [1]
    finally:
        pymlm.set_num_threads(before)
