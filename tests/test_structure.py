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
