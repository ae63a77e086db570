#!/usr/bin/env python3
"""The import graph between downhill's modules, and any loop in it.

Reads every file under src/, resolves each `crate::`, `super::` and `downhill::` path (and a
mod.rs file's bare `child::` paths) to the module it names, and prints the loops and the
upward imports (against the README's layers, below); with `--edges`, every edge too. Re-exports (`pub use`) are a module's facade, not a dependency, and
are left out, as are `#[cfg(test)] mod tests`. The library (src/lib.rs) and the command
(src/main.rs, src/cli/) are two crates: `crate::` means the one the file belongs to.

    python3 scripts/import_graph.py            # exits 1 on a loop or an upward import
    python3 scripts/import_graph.py --edges
"""

import os
import re
import sys
from collections import defaultdict

# The README's layers (its "Layout" section): a module may import only from its own layer or
# the ones below.
LAYERS = {
    "error": 1, "limits": 1, "output": 1,
    "network": 2, "model_file": 2, "data": 2, "loss": 2, "descent": 2, "sweep": 2,
    "optimizer": 2,
    "batches": 3, "cpu": 3, "gpu": 3,
    "device": 4, "distributed": 4,
    "verify": 5, "landscape": 5, "bench": 5, "progress": 5, "plot": 5,
}
COMMAND_LAYER = 6


def layer(node):
    crate, module = node
    if crate == "bin":
        return COMMAND_LAYER
    return LAYERS.get(module.split("/")[0], 0)


ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(path):
    """(crate, module path) of a source file: ("lib", "cpu/fused"), ("bin", "cli/train")."""
    parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    crate = "bin" if parts[0] in ("main", "cli") else "lib"
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return crate, "/".join(parts)


def sources():
    for directory, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".rs"):
                yield os.path.join(directory, name)


def code_of(path):
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests \{.*", "", text, flags=re.S)
    text = re.sub(r"(?m)^\s*pub use .*$", "", text)
    return re.sub(r"(?m)^\s*//.*$", "", text)


def main():
    modules = {module_of(p) for p in sources()}
    edges = defaultdict(set)
    for path in sources():
        crate, module = module_of(path)
        here = module.split("/") if module else []
        is_dir = os.path.basename(path) in ("mod.rs", "lib.rs", "main.rs")
        code = code_of(path)
        # `use super::{a, b::c}` names `super::a` and `super::b::c`.
        code = re.sub(
            r"\b((?:crate|super|downhill)(?:::\w+)*)::\{([^{}]*)\}",
            lambda m: " ".join(
                f"{m.group(1)}::{item.strip()}"
                for item in m.group(2).split(",")
                if item.strip() and item.strip() != "self"
            ) + (f" {m.group(1)}::__self" if "self" in m.group(2).split(",") else ""),
            code,
        )
        for reference in re.findall(r"\b((?:crate|super|downhill)(?:::\w+)+)", code):
            parts = reference.split("::")
            target_crate = crate
            if parts[0] == "downhill":
                target_crate, base = "lib", []
            elif parts[0] == "crate":
                base = []
            else:
                base = here[:] if is_dir else here[:-1]
                parts = parts[1:]
                while parts and parts[0] == "super":
                    base, parts = base[:-1], parts[1:]
                parts = ["super"] + parts
            parts = parts[1:]
            target = "/".join(base)
            for k in range(len(parts), 0, -1):
                candidate = "/".join(base + parts[:k])
                if (target_crate, candidate) in modules:
                    target = candidate
                    break
            if (target_crate, target) != (crate, module):
                edges[(crate, module)].add((target_crate, target))
        if is_dir:
            for child in set(re.findall(r"(?<![:\w])([a-z_0-9]+)::", code)):
                candidate = "/".join(here + [child])
                if (crate, candidate) in modules:
                    edges[(crate, module)].add((crate, candidate))

    def name(node):
        return f"{node[0]}:{node[1] or '(root)'}"

    if "--edges" in sys.argv:
        for node in sorted(edges):
            print(name(node), "->", ", ".join(name(t) for t in sorted(edges[node])))
    loops, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                loops.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(modules):
        if node not in state:
            visit(node)
    upward = [
        (node, target)
        for node, targets in sorted(edges.items())
        for target in sorted(targets)
        if target[1] and layer(target) > layer(node)
    ]
    print(f"{len(modules)} modules, {sum(len(t) for t in edges.values())} imports, "
          f"{len(loops)} loops, {len(upward)} upward imports")
    for loop in loops:
        print("  loop:", " -> ".join(name(n) for n in loop))
    for node, target in upward:
        print(f"  upward: {name(node)} (layer {layer(node)}) -> {name(target)} "
              f"(layer {layer(target)})")
    return 1 if loops or upward else 0


if __name__ == "__main__":
    sys.exit(main())
