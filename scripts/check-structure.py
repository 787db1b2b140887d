#!/usr/bin/env python3
"""Checks two structural rules of the Rust crates the suite cannot see:

- no module cycles: in `core/src` and `devhost/src`, the modules (one per
  file; `foo/mod.rs` is `foo`) that name each other through `crate::` or
  `super::` paths in production code form no cycle, so each layer can be
  read (and changed) without the ones above it;
- no long functions: no production function is over MAX_LINES lines, from
  `fn` to its closing brace, so each reads like its steps.

Production code is everything before a file's first `#[cfg(test)]` at the
start of a line; comments do not count as dependencies. The sources are
formatted by rustfmt, whose layout (a body's closing brace alone, at the
`fn`'s indentation) the length check relies on.

Usage: scripts/check-structure.py  (from anywhere; exits 1 and says what
to fix when a rule is broken)
"""

import os
import re
import sys

MAX_LINES = 60
CRATES = ["core/src", "devhost/src"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FN = re.compile(r"^(\s*)(pub(\([^)]*\))? )?(const )?(async )?(unsafe )?fn (\w+)")
PATH = re.compile(r"\b(crate|super)::((?:\w+::)*\w+)")


def production_lines(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    for n, line in enumerate(lines):
        if line.startswith("#[cfg(test)]"):
            return lines[:n]
    return lines


def modules(src):
    """Each module's name (`a::b`) and file."""
    found = {}
    for folder, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            found["::".join(parts)] = path
    return found


def dependencies(name, path, known):
    """The modules `name` names, by the longest known prefix of each path."""
    code = "\n".join(l for l in production_lines(path) if not l.strip().startswith("//"))
    # `super` is the parent module, for a file module and a folder's mod.rs alike.
    parent = name.split("::")[:-1] if name else []
    used = set()
    for root, rest in PATH.findall(code):
        parts = rest.split("::")
        if root == "super":
            parts = parent + parts
        for end in range(len(parts), 0, -1):
            candidate = "::".join(parts[:end])
            if candidate in known:
                # A module's own submodules and ancestors are its structure, not
                # a dependency between layers.
                if candidate != name and not name.startswith(candidate + "::"):
                    used.add(candidate)
                break
    return used


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    return found


def long_functions(path):
    lines = production_lines(path)
    for start, line in enumerate(lines):
        match = FN.match(line)
        if not match:
            continue
        indent, name = match.group(1), match.group(7)
        # A declaration without a body (a trait's) ends at `;` before any `{`.
        head = start
        while head < len(lines) and not lines[head].rstrip().endswith(("{", ";")):
            head += 1
        if head == len(lines) or lines[head].rstrip().endswith(";"):
            continue
        end = head
        while end < len(lines) and lines[end].rstrip() != indent + "}":
            end += 1
        length = end - start + 1
        if length > MAX_LINES:
            yield name, start + 1, length


def main():
    problems = []
    for crate in CRATES:
        src = os.path.join(ROOT, crate)
        known = modules(src)
        graph = {name: dependencies(name, path, known) for name, path in known.items()}
        for component in cycles(graph):
            edges = [
                f"    {module} -> {', '.join(sorted(graph[module] & set(component)))}"
                for module in component
            ]
            problems.append(
                f"{crate}: a module cycle; move what the lower modules use out of the higher ones:\n"
                + "\n".join(edges)
            )
        for path in sorted(known.values()):
            for name, line, length in long_functions(path):
                problems.append(
                    f"{os.path.relpath(path, ROOT)}:{line}: fn {name} is {length} lines "
                    f"(at most {MAX_LINES}); split it into the steps it takes"
                )
    for problem in problems:
        print(problem)
    if problems:
        sys.exit(1)
    print(f"check-structure: no module cycles in {', '.join(CRATES)}; no function over {MAX_LINES} lines")


if __name__ == "__main__":
    main()
