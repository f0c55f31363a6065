"""Loads a `.dfl` file and everything it imports, and gathers their definitions in one namespace.

`import std.NAME` loads the bundled library (dfdsl/stdlib/NAME.dfl); `import a.b` loads a/b.dfl
under the importing file's folder. Nothing else can be reached: an import that would leave the
folder (through `..` or a symbolic link) is an error, and so is a cycle.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import attrs

from dfdsl import ast
from dfdsl.diagnostics import Collector, DfslError, Diagnostic
from dfdsl.parser import parse_file

MAX_FILES = 256
"""Imports a model may pull in, in all (E017)."""


@attrs.frozen
class Program:
    """The main file and all it imports, with every definition and constant by name."""

    main: ast.File
    files: tuple[ast.File, ...]
    definitions: dict[str, ast.Definition]
    consts: tuple[ast.Const, ...]

    def sources(self) -> dict[Path, str]:
        return {f.path: f.source for f in self.files}


def stdlib_dir() -> Path:
    return Path(str(resources.files("dfdsl.stdlib")))


def _resolve_import(imp: ast.Import, importer: Path) -> tuple[Path | None, Diagnostic | None]:
    parts = imp.module
    if parts[0] == "std":
        base = stdlib_dir().resolve()
        rel = parts[1:]
        where = "the bundled library"
    else:
        base = importer.parent.resolve()
        rel = parts
        where = f"{base}"
    if not rel:
        return None, Diagnostic("E013", "`import std` needs a module: `import std.llama`", imp.span)
    candidate = base.joinpath(*rel[:-1], rel[-1] + ".dfl")
    try:
        exists = candidate.exists()
        real = candidate.resolve() if exists else candidate
    except OSError as err:  # a name too long for the file system, a loop of links
        return None, Diagnostic("E013", f"cannot look up `{'.'.join(parts)}`: {err.strerror}", imp.span)
    if not exists:
        available = ""
        if parts[0] == "std":
            names = sorted(p.stem for p in stdlib_dir().glob("*.dfl"))
            available = "the bundled library has: " + ", ".join(f"std.{n}" for n in names)
        return None, Diagnostic(
            "E013", f"cannot find `{'.'.join(parts)}` ({candidate.name} in {where})", imp.span,
            available or "imports name files under the importing file's folder: `import blocks.attention`",
        )
    if not real.is_relative_to(base):
        return None, Diagnostic(
            "E015",
            f"`{'.'.join(parts)}` resolves to {real}, outside {where}",
            imp.span,
            "imports may only reach the bundled library or files under the importing file's folder",
        )
    if not real.is_file():  # a folder, a pipe or a device would hang or mislead the parser
        return None, Diagnostic("E013", f"`{'.'.join(parts)}` names {real}, which is not a regular file",
                                imp.span, "an import names a .dfl file")
    return real, None


def load(path: Path) -> Program:
    """Parse `path` and its imports; raise `DfslError` with every problem found."""
    path = Path(path)
    errors = Collector()
    files: dict[Path, ast.File] = {}
    main = parse_file(path)
    files[path.resolve()] = main

    def visit(file: ast.File, chain: tuple[Path, ...]) -> None:
        for item in file.items:
            if not isinstance(item, ast.Import):
                continue
            target, problem = _resolve_import(item, file.path)
            if problem is not None:
                errors.diagnostics.append(problem)
                continue
            assert target is not None
            if target in chain:
                cycle = " -> ".join(p.name for p in (*chain[chain.index(target):], target))
                errors.error("E014", f"import cycle: {cycle}", item.span, "remove one of these imports")
                continue
            if target in files:
                continue
            if len(files) >= MAX_FILES:
                errors.error("E017", f"more than {MAX_FILES} files in one model (the file and its imports)",
                             item.span)
                return
            try:
                files[target] = parse_file(target)
            except DfslError as err:
                errors.diagnostics.extend(err.diagnostics)
                continue
            visit(files[target], (*chain, target))

    visit(main, (path.resolve(),))

    definitions: dict[str, ast.Definition] = {}
    consts: list[ast.Const] = []
    # Imported files first, so a file's constants can use those of the files it imports.
    for file in reversed(files.values()):
        for item in file.items:
            if isinstance(item, ast.Definition):
                if item.name in definitions:
                    other = definitions[item.name].span
                    errors.error(
                        "E004", f"`{item.name}` is defined twice (also at {other.path}:{other.line})",
                        item.name_span, "rename one of them",
                    )
                    continue
                definitions[item.name] = item
            elif isinstance(item, ast.Const):
                consts.append(item)
    errors.check()
    return Program(main, tuple(files.values()), definitions, tuple(consts))
