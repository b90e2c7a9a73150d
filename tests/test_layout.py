"""The package's shape: imports run one way and modules stay small."""

import ast
import pathlib

import tfx_transfer

ROOT = pathlib.Path(tfx_transfer.__file__).parent
TASK_MODULES = ("images", "text", "tokens")


def module_imports():
    """Module name -> the tfx_transfer modules it imports at its top level."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        imports = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tfx_transfer"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    is_module = (ROOT.parent / (full.replace(".", "/") + ".py")).exists() or (
                        ROOT.parent / full.replace(".", "/")).is_dir()
                    imports.add(full if is_module else node.module)
            elif isinstance(node, ast.Import):
                imports |= {a.name for a in node.names if a.name.startswith("tfx_transfer")}
        found[name] = imports
    return found


def test_no_module_imports_one_that_imports_it_back():
    imports = module_imports()

    def reachable(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in imports.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = [
        (name, other) for name, targets in imports.items() for other in targets
        # A package and its own submodules are one unit.
        if not (other.startswith(name + ".") or name.startswith(other + "."))
        and name in reachable(other)
    ]
    assert not cycles, cycles


def test_no_task_imports_a_sibling_task():
    for name, targets in module_imports().items():
        if name.startswith("tfx_transfer.tasks."):
            siblings = [t for t in targets if t.rpartition(".")[2] in TASK_MODULES
                        and t.startswith("tfx_transfer.tasks.")]
            assert not siblings, (name, siblings)


def test_no_module_is_much_over_400_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in ROOT.rglob("*.py")}
    assert max(sizes.values()) <= 420, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
