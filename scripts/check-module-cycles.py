#!/usr/bin/env python3
"""Fails when the modules of a crate depend on each other in a cycle.

A module is a source file. Module A depends on module B when A names an item through a path
(`crate::b::Item`, `super::b::Item`, `use crate::b`) that leads to B. A facade — `lib.rs` or
`mod.rs` that only declares modules and re-exports their items — is looked through: naming
`crate::fill::Fills` depends on the child module that defines `Fills`, not on the facade.
Test modules (`tests.rs`, `#[cfg(test)]` blocks) are left out: tests may reach anywhere.

    scripts/check-module-cycles.py [crates/NAME ...]     (default: every crate under crates/)
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^}]*)\}", re.S)
REEXPORT = re.compile(r"pub(?:\(crate\))?\s+use\s+([a-z_][a-z0-9_]*)::(?:\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))\s*;", re.S)


def without_tests(text):
    """Drops `#[cfg(test)]` items (a `mod tests { … }` block or `mod tests;`)."""
    out, i = [], 0
    while True:
        at = text.find("#[cfg(test)]", i)
        if at < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:at])
        brace, semi = text.find("{", at), text.find(";", at)
        if semi >= 0 and (brace < 0 or semi < brace):
            i = semi + 1
            continue
        depth, j = 0, brace
        while j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
            if depth == 0:
                break
        i = j


def module_files(src):
    """Maps module paths (tuples) to files."""
    modules = {}
    for file in src.rglob("*.rs"):
        rel = file.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] in ("lib", "main", "mod"):
            parts = parts[:-1]
        if parts and parts[-1] == "tests":
            continue
        modules[tuple(parts)] = file
    return modules


def is_facade(text):
    code = [line.strip() for line in without_tests(text).splitlines()]
    code = [line for line in code if line and not line.startswith("//") and not line.startswith("#")]
    joined = " ".join(code)
    joined = re.sub(r"(pub(\(crate\))?\s+)?mod\s+\w+\s*;", "", joined)
    joined = re.sub(r"pub(\(crate\))?\s+use\s+[^;]*;", "", joined)
    return joined.strip() == ""


def check(crate):
    src = crate / "src"
    modules = module_files(src)
    texts = {path: without_tests(file.read_text()) for path, file in modules.items()}
    facades = {path for path, text in texts.items() if is_facade(text)}
    exported = {}  # (facade, item) -> child module
    for facade in facades:
        for match in REEXPORT.finditer(texts[facade]):
            child = facade + (match.group(1),)
            items = match.group(2) or match.group(3) or ""
            for item in re.split(r"[,\s]+", items):
                item = item.split(" as ")[-1].strip()
                if item and child in modules:
                    exported[(facade, item)] = child

    def resolve(start, segments):
        current = start
        for index, segment in enumerate(segments):
            if segment == "self":
                continue
            if segment == "super":
                current = current[:-1]
                continue
            if current + (segment,) in modules:
                current = current + (segment,)
                continue
            if current in facades and (current, segment) in exported:
                return exported[(current, segment)]
            return current
        return current

    edges = {path: set() for path in modules}
    for path, text in texts.items():
        if path in facades:
            continue
        for match in USE_GROUP.finditer(text):
            anchor = () if match.group(1) == "crate" else path[:-1]
            prefix = [s for s in match.group(2).split("::") if s]
            for item in re.split(r"[,\s]+", match.group(3)):
                item = item.split("::")[0].strip()
                if item:
                    target = resolve(anchor, prefix + ([] if item == "self" else [item]))
                    if target != path:
                        edges[path].add(target)
        for match in PATH.finditer(text):
            anchor = () if match.group(1) == "crate" else path[:-1]
            segments = [s for s in match.group(2).split("::") if s]
            target = resolve(anchor, segments)
            if target != path:
                edges[path].add(target)
        # Paths relative to this module: `child::item` names a module declared here.
        for child in (module[-1] for module in modules if module[:-1] == path and len(module) == len(path) + 1):
            for match in re.finditer(r"(?<![:\w])" + child + r"((?:::[A-Za-z_][A-Za-z0-9_]*)+)", text):
                segments = [child] + [s for s in match.group(1).split("::") if s]
                edges[path].add(resolve(path, segments))

    cycles, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if target not in edges:
                continue
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    name = lambda path: "::".join(path) or "lib"
    return [" -> ".join(name(node) for node in cycle) for cycle in cycles]


def main():
    crates = [pathlib.Path(arg) for arg in sys.argv[1:]] or sorted((ROOT / "crates").iterdir())
    failed = False
    for crate in crates:
        for cycle in check(crate.resolve()):
            print(f"{crate.name}: module cycle {cycle}")
            failed = True
    if failed:
        sys.exit(1)
    print(f"no module cycles in {len(crates)} crates")


if __name__ == "__main__":
    main()
