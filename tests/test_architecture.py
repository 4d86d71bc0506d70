# SPDX-License-Identifier: Apache-2.0
"""The package's shape: no import cycles, no import that dodges one, small modules and functions.

import-linter checks the layers declared in pyproject.toml (``lint-imports`` in CI); these tests
parse the package's own source, so they also run where import-linter is not installed.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "cvx_lifted"

#: Modules that may be imported inside a function: each pulls in a heavy optional dependency
#: (scikit-learn, matplotlib, PyTorch, Optuna) that ``import cvx_lifted`` should not pay for.
HEAVY = {
    "cvx_lifted.estimator",
    "cvx_lifted.plot",
    "cvx_lifted.interop.torch",
    "cvx_lifted.tune",
    "cvx_lifted.paper",
}
MAX_MODULE_LINES = 900
MAX_FUNCTION_LINES = 120
WHOLE = "kept whole:"  # a comment with this marker explains why a long kernel is one function


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _resolve(module: str, path: pathlib.Path, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        pkg = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        pkg = pkg[: len(pkg) - node.level + 1]
        base = ".".join(pkg + ([node.module] if node.module else []))
    # "from cvx_lifted import kernels" imports the submodule cvx_lifted.kernels
    out = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        out.append(candidate if candidate in MODULES else base)
    return out


MODULES = dict(_modules())


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: pathlib.Path):
    """Yield ``(imported module, at module level?)`` for every cvx_lifted import."""
    tree = ast.parse(path.read_text())

    def visit(node, top):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            inner = top and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("cvx_lifted"):
                        yield alias.name, top
            elif isinstance(child, ast.ImportFrom):
                for target in _resolve(module, path, child):
                    if target.startswith("cvx_lifted"):
                        yield target, top
            yield from visit(child, inner)

    yield from visit(tree, True)


def _graph():
    graph = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for target, top in _imports(module, path):
            if top and target in MODULES and target != module:
                graph[module].add(target)
    return graph


def test_the_package_has_no_import_cycle():
    graph = _graph()

    # a package imports its own submodules (re-exports); a cycle through a package's
    # __init__ and one of its submodules is how Python packages work, not a design circle
    def edges(m):
        return {t for t in graph[m] if not t.startswith(m + ".")}

    state, stack, cycles = {}, [], []

    def dfs(m):
        state[m] = "open"
        stack.append(m)
        for t in edges(m):
            if state.get(t) == "open":
                cycles.append(stack[stack.index(t) :] + [t])
            elif t not in state:
                dfs(t)
        stack.pop()
        state[m] = "done"

    for m in graph:
        if m not in state:
            dfs(m)
    real = [c for c in cycles if not all(c[0].startswith(x) or x.startswith(c[0]) for x in c)]
    assert real == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in real)


def test_no_function_level_import_of_the_package_except_heavy_modules():
    found = []
    for module, path in MODULES.items():
        for target, top in _imports(module, path):
            if not top and not any(target == h or target.startswith(h + ".") for h in HEAVY):
                found.append(f"{module} imports {target} inside a function")
    assert found == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_stay_small(module):
    path = MODULES[module]
    source = path.read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{module} has {source.count(chr(10))} lines"
    tree = ast.parse(source)
    lines = source.splitlines()
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        n = node.end_lineno - node.lineno + 1
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
            n -= first.end_lineno - first.lineno + 1  # the docstring does not count
        body = "\n".join(lines[node.lineno - 1 : node.end_lineno])
        assert n <= MAX_FUNCTION_LINES or WHOLE in body, (
            f"{module}.{node.name} has {n} lines of code; split it, or say why a numerical "
            f"kernel must stay whole in a comment containing {WHOLE!r}"
        )
