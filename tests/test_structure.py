"""The house rules that keep the code readable, checked on every run: short modules, short
functions, one definition of each repeated fact."""
import ast
import os
import re

from conftest import ROOT

LAYERS = ("shared", "services", "pipeline")
MAX_FILE_LINES, MAX_FUNCTION_LINES = 250, 60


def python_files():
    for layer in LAYERS:
        for base, _, names in os.walk(os.path.join(ROOT, layer)):
            for name in sorted(names):
                if name.endswith(".py"):
                    yield os.path.join(base, name)


def test_no_module_over_250_lines_and_no_function_over_60():
    too_long = []
    for path in python_files():
        source = open(path).read()
        if source.count("\n") > MAX_FILE_LINES:
            too_long.append("%s: %d lines" % (os.path.relpath(path, ROOT), source.count("\n")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append("%s: %s() %d lines" % (os.path.relpath(path, ROOT), node.name, length))
    assert not too_long, too_long


def test_facts_have_one_home():
    """The unknown label, the crop JPEG quality and the step names are defined once and imported."""
    patterns = {"unknown label": r"^\s*UNKNOWN\w* = 1000", "crop JPEG quality": r"quality=98|QUALITY = 98",
                "steps": r"\(\"step4\", \"step6\", \"step7\"\)"}
    for fact, pattern in patterns.items():
        found = [os.path.relpath(p, ROOT) for p in python_files() if re.search(pattern, open(p).read(), re.M)]
        assert len(found) == 1, (fact, found)


# shared/'s packages, each importing only the root and the packages before it (docs/architecture.md).
SHARED_PACKAGES = ("faces", "method", "models", "contract", "running", "bench")
SHARED_ROOT_MODULES = 5  # "at most a handful": what every package needs


def _module_file(dotted, importer):
    """The project file a dotted import names, or None (third-party, stdlib). A bare name also
    resolves beside the importer: services put their own folder on sys.path."""
    for base in (ROOT, os.path.dirname(importer)):
        path = os.path.join(base, *dotted.split("."))
        for candidate in (path + ".py", os.path.join(path, "__init__.py")):
            if os.path.isfile(candidate):
                return candidate
    return None


def imports_of(path):
    """The project files one file imports, function-level imports included."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            targets = [node.module] + ["%s.%s" % (node.module, alias.name) for alias in node.names]
        else:
            continue
        for dotted in targets:
            target = _module_file(dotted, path)
            if target and target != path:
                found.add(target)
    return found


def import_graph():
    files = list(python_files()) + [os.path.join(ROOT, "tasks.py")]
    return {path: imports_of(path) for path in files}


def test_no_import_circle():
    graph = import_graph()
    state, circles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                circles.append([os.path.relpath(p, ROOT) for p in trail[trail.index(target):] + [target]])
            elif target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not circles, circles


def test_shared_is_packages_by_role_each_importing_only_below_it():
    shared = os.path.join(ROOT, "shared")
    modules = sorted(n for n in os.listdir(shared) if n.endswith(".py") and n != "__init__.py")
    packages = sorted(n for n in os.listdir(shared) if os.path.isdir(os.path.join(shared, n)) and n != "__pycache__")
    assert sorted(SHARED_PACKAGES) == packages and len(modules) <= SHARED_ROOT_MODULES, (packages, modules)
    for package in packages:
        init = os.path.join(shared, package, "__init__.py")
        tree = ast.parse(open(init).read())
        docstring = ast.get_docstring(tree) or ""
        assert len(docstring.split()) >= 20, "%s needs a paragraph saying what belongs there" % init
        assert all(isinstance(node, (ast.Expr, ast.Import, ast.ImportFrom)) for node in tree.body), init
    rank = {package: i for i, package in enumerate(SHARED_PACKAGES)}
    wrong = []
    for path, targets in import_graph().items():
        parts = os.path.relpath(path, shared).split(os.sep)
        if parts[0] == os.pardir:
            continue
        mine = rank[parts[0]] if len(parts) > 1 else -1
        for target in targets:
            theirs = os.path.relpath(target, shared).split(os.sep)
            if theirs[0] != os.pardir and len(theirs) > 1 and theirs[0] != "__init__.py" and rank[theirs[0]] > mine:
                wrong.append("%s imports %s" % (os.path.relpath(path, ROOT), os.path.relpath(target, ROOT)))
            assert theirs[0] != os.pardir, "%s imports %s outside shared/" % (path, target)
    assert not wrong, wrong


def test_no_run_imports_the_benchmarks():
    """shared/bench/ and pipeline/bench/ serve `invoke bench.*` only: no stage, service or
    other shared package imports them."""
    benches = (os.path.join(ROOT, "shared", "bench") + os.sep, os.path.join(ROOT, "pipeline", "bench") + os.sep)
    wrong = ["%s imports %s" % (os.path.relpath(path, ROOT), os.path.relpath(target, ROOT))
             for path, targets in import_graph().items() for target in targets
             if target.startswith(benches) and not path.startswith(benches) and not path.endswith("tasks.py")]
    assert not wrong, wrong
