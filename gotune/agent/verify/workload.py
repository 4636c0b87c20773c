"""A generated Go service to build: ~200 packages with a dependency graph, and its modules.

A machine without Go projects still gets measured on something shaped like real
work, not only a one-file module: ``generate(root, go_line)`` writes, from a fixed
seed, the same tree every time (so its build cache entries stay valid between verify
runs):

- ``service/``: the module ``gotune.invalid/service``: ``SERVICE_PACKAGES`` packages
  under ``internal/`` in ``LAYERS`` layers (a package imports a few from the layers
  below it, the standard library and dependency packages), one ``cmd/server`` main;
  ``go.mod`` and a complete ``go.sum``;
- ``proxy/``: a GOPROXY tree (``$module/@v/$version.{info,mod,zip}``, ``list``) of
  ``DEP_MODULES`` dependency modules that also require each other, so
  ``GOPROXY=file://.../proxy`` fills a module cache with no network at all.

Sizes. Files per package and bytes per file follow the shape of Go code measured
with this very toolchain's standard library (Go 1.27, non-test files outside cmd/:
399 packages, median 2 and mean 7.4 files per package; median 3.0 KB and mean
9.2 KB per file), scaled down to a service's smaller packages: ``FILES_PER_PACKAGE``
(mean 3.3) and ``FILE_BYTES`` (median 3 KB): about 650 files and 2 MB of Go, the
size of a mid-size service; a cold build is a few minutes of CPU on 2 cores, a no-op
build touches every file and cache entry, which is what storage placement changes.

Module paths end in ``.invalid`` (RFC 2606): they can never clash with a real module.
Standard library only: it runs on targets inside the agent zipapp.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import random
import re
import zipfile
from dataclasses import dataclass

# Bump when the generated code changes: the stamp makes old trees regenerate.
GENERATOR_VERSION = 1
SEED = 20240229
SERVICE_MODULE = "gotune.invalid/service"
DEP_PREFIX = "gotune.invalid/dep"
DEP_VERSION = "v1.4.2"
SERVICE_PACKAGES = 200
# Ten times that is a big monorepo: more is a typo (--workload-packages, settings).
MAX_WORKLOAD_PACKAGES = 2000
# Leaves at the bottom, handlers at the top: imports only go downwards, as Go requires.
LAYERS = 8
# Each package imports this many packages of the layers below it (when there are any).
IMPORTS_PER_PACKAGE = (1, 4)
DEP_MODULES = 12
# Packages per dependency module: its root package and a few subpackages.
DEP_PACKAGES = (1, 3)
# (files, weight): most packages hold 2-4 files, a few a dozen.
FILES_PER_PACKAGE = ((1, 14), (2, 24), (3, 22), (4, 16), (5, 10), (6, 7), (8, 5), (12, 2))
# A file grows by functions until it passes its drawn size: median ~3 KB, tail to ~10 KB.
FILE_BYTES = (1200, 10000)
# Standard library packages the service uses; each generated file uses one or two.
STD_PACKAGES = ("fmt", "strings", "strconv", "sort", "errors", "sync", "time", "bytes",
                "context", "encoding/json", "math", "unicode/utf8")
# The zip and info timestamp of every dependency version (fixed: the tree is reproducible).
DEP_TIME = "2024-02-29T12:00:00Z"
ZIP_DATE = (2024, 2, 29, 12, 0, 0)
STAMP = ".gotune-workload"
# Go before 1.21 rejects ``go 1.N.M`` in go.mod: only major.minor is ever written.
GO_LINE = re.compile(r"^1\.\d+$")


@dataclass(frozen=True)
class GoPackage:
    """One generated package: import path, name, directory and what it imports."""

    path: str
    name: str
    directory: str  # relative to its module root ("" for the root package)
    imports: tuple[str, ...]  # gotune.invalid/... packages


def _weighted(rng: random.Random, table: tuple[tuple[int, int], ...]) -> int:
    total = sum(w for _, w in table)
    pick = rng.randrange(total)
    for value, weight in table:
        pick -= weight
        if pick < 0:
            return value
    return table[-1][0]


def _alias(path: str) -> str:
    """A unique Go identifier for an imported package path."""
    return re.sub(r"[^a-z0-9]", "", path.removeprefix("gotune.invalid/"))


def dependency_modules(rng: random.Random) -> dict[str, list[GoPackage]]:
    """module path -> its packages; module i may import packages of modules below i."""
    out: dict[str, list[GoPackage]] = {}
    below: list[str] = []
    for i in range(DEP_MODULES):
        module = f"{DEP_PREFIX}{i:02d}"
        pkgs = []
        for j in range(rng.randint(*DEP_PACKAGES)):
            directory = "" if j == 0 else f"sub{j}"
            imports = tuple(rng.sample(below, min(len(below), rng.randint(0, 2))))
            path = f"{module}/{directory}" if directory else module
            pkgs.append(GoPackage(path, f"d{i:02d}{directory}", directory, imports))
        out[module] = pkgs
        below += [p.path for p in pkgs]
    return out


def service_packages(rng: random.Random, deps: list[str],
                     count: int = SERVICE_PACKAGES) -> list[GoPackage]:
    """The service's ``count`` packages, layer by layer, then its main package."""
    per_layer = max(1, count // LAYERS)
    layers: list[list[str]] = []
    out: list[GoPackage] = []
    for layer in range(LAYERS):
        made = []
        for k in range(per_layer):
            name = f"l{layer}p{k:02d}"
            path = f"{SERVICE_MODULE}/internal/l{layer}/{name}"
            lower = [p for lay in layers[-3:] for p in lay]  # mostly near layers, as real code
            own = rng.sample(lower, min(len(lower), rng.randint(*IMPORTS_PER_PACKAGE)))
            ext = rng.sample(deps, rng.randint(0, 2))
            out.append(GoPackage(path, name, f"internal/l{layer}/{name}", tuple(own + ext)))
            made.append(path)
        layers.append(made)
    main_imports = tuple(layers[-1]) + tuple(rng.sample(layers[-2], min(3, len(layers[-2]))))
    out.append(GoPackage(f"{SERVICE_MODULE}/cmd/server", "main", "cmd/server", main_imports))
    return out


def _function(rng: random.Random, prefix: str, n: int, std: str) -> str:
    """One exported function of ordinary shape: a loop, a switch, a use of ``std``."""
    use = {
        "fmt": 'out = append(out, fmt.Sprintf("%d:%s", i, s))',
        "strings": "out = append(out, strings.ToUpper(s))",
        "strconv": "out = append(out, strconv.Itoa(i+len(s)))",
        "sort": "sort.Strings(out)",
        "errors": 'if s == "" { return nil, errors.New("empty") }',
        "sync": "var mu sync.Mutex; mu.Lock(); out = append(out, s); mu.Unlock()",
        "time": "out = append(out, time.Duration(i).String())",
        "bytes": "out = append(out, string(bytes.TrimSpace([]byte(s))))",
        "context": "if ctx := context.Background(); ctx.Err() != nil { return nil, ctx.Err() }",
        "encoding/json": "b, _ := json.Marshal(s); out = append(out, string(b))",
        "math": "out = append(out, strconv.FormatFloat(math.Sqrt(float64(i)), 'f', 2, 64))",
        "unicode/utf8": "out = append(out, strconv.Itoa(utf8.RuneCountInString(s)))",
    }[std]
    cases = "\n".join(f'\t\tcase "{prefix}{n}c{c}":\n\t\t\tout = append(out, "{c * 7}")'
                      for c in range(rng.randint(2, 6)))
    return (f"// {prefix.title()}{n} transforms its input as a handler of this service would.\n"
            f"func {prefix.title()}{n}(in []string) ([]string, error) {{\n"
            f"\tout := make([]string, 0, len(in))\n"
            f"\tfor i, s := range in {{\n"
            f"\t\tswitch s {{\n{cases}\n\t\tdefault:\n\t\t\t{use}\n\t\t}}\n"
            f"\t\t_ = i\n\t}}\n\treturn out, nil\n}}\n")


def _imports_block(std: list[str], own: list[str]) -> str:
    lines = [f'\t"{p}"' for p in sorted(set(std))]
    if own:
        lines.append("")
        lines += [f'\t{_alias(p)} "{p}"' for p in own]
    return "import (\n" + "\n".join(lines) + "\n)\n"


def package_files(rng: random.Random, pkg: GoPackage) -> dict[str, str]:
    """File name -> Go source of one package; its first file uses every imported package."""
    files: dict[str, str] = {}
    count = 1 if pkg.name == "main" else _weighted(rng, FILES_PER_PACKAGE)
    for f in range(count):
        std = rng.sample(STD_PACKAGES, rng.randint(1, 2))
        if {"math", "unicode/utf8"} & set(std) and "strconv" not in std:
            std.append("strconv")  # their snippets format numbers with strconv
        own = list(pkg.imports) if f == 0 else []
        body = [f"package {pkg.name}\n", _imports_block(std, own)]
        if f == 0 and pkg.name == "main":
            calls = " + ".join(f"{_alias(p)}.Value()" for p in own) or "0"
            body.append(f'func main() {{\n\tprintln("service", {calls})\n}}\n')
        elif f == 0:
            calls = "".join(f" + {_alias(p)}.Value()" for p in own)
            body.append(f"// Value ties the package into the graph.\n"
                        f"func Value() int {{ return {len(pkg.name)}{calls} }}\n")
        size = rng.randint(*FILE_BYTES) if rng.random() < 0.3 else rng.randint(1500, 4500)
        n = 0
        while sum(len(b) for b in body) < size or n < len(std):
            body.append(_function(rng, f"f{f}x", n, std[n % len(std)]))
            n += 1
        files[f"{pkg.name}{f}.go" if f else f"{pkg.name}.go"] = "\n".join(body)
    return files


def go_mod(module: str, go_line: str, requires: list[str]) -> str:
    req = "".join(f"\t{r} {DEP_VERSION}\n" for r in sorted(requires))
    return f"module {module}\n\ngo {go_line}\n" + (f"\nrequire (\n{req})\n" if req else "")


def hash1(files: dict[str, bytes]) -> str:
    """Go's ``h1:`` hash (golang.org/x/mod/sumdb/dirhash Hash1) of named file contents."""
    summary = "".join(f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n"
                      for name in sorted(files))
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def module_zip(module: str, files: dict[str, bytes]) -> bytes:
    """A module zip as a proxy serves it: every entry under ``module@version/``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(f"{module}@{DEP_VERSION}/{name}", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[name])
    return buf.getvalue()


def _write(path: str, data: str | bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)


def _dep_requires(pkgs: list[GoPackage]) -> list[str]:
    mods = {re.sub(r"/sub\d+$", "", imp) for p in pkgs for imp in p.imports}
    return sorted(mods)


def _module_sources(rng: random.Random, module: str, pkgs: list[GoPackage],
                    go_line: str, requires: list[str]) -> dict[str, bytes]:
    files: dict[str, bytes] = {"go.mod": go_mod(module, go_line, requires).encode()}
    for pkg in pkgs:
        for name, text in package_files(rng, pkg).items():
            files[f"{pkg.directory}/{name}" if pkg.directory else name] = text.encode()
    return files


def stamp_text(go_line: str, packages: int) -> str:
    return json.dumps({"generator": GENERATOR_VERSION, "seed": SEED, "go": go_line,
                       "packages": packages, "deps": DEP_MODULES}, sort_keys=True)


def generate(root: str, go_line: str, packages: int | None = None) -> dict[str, object]:
    """Write the service and its GOPROXY tree below ``root`` unless they are there already.

    + root: a directory of the user's own (created); ``service/`` and ``proxy/`` go below it
    + go_line: the ``go`` directive, ``1.N`` (the oldest Go that will build it)
    + packages: the service's size (default ``SERVICE_PACKAGES``; fewer for a quick check)

    Returns ``{"service", "proxy", "packages", "files", "bytes", "generated"}``.
    """
    count = packages or SERVICE_PACKAGES
    if not GO_LINE.match(go_line):
        raise ValueError(f"go line {go_line!r}: want 1.N (Go before 1.21 rejects 1.N.M)")
    stamp = os.path.join(root, STAMP)
    service, proxy = os.path.join(root, "service"), os.path.join(root, "proxy")
    sizes = os.path.join(root, "sizes.json")
    with contextlib.suppress(OSError, ValueError), open(stamp, encoding="utf-8") as fh:
        if fh.read() == stamp_text(go_line, count):
            with open(sizes, encoding="utf-8") as sz:
                return {"service": service, "proxy": proxy, "generated": False, **json.load(sz)}
    for d in (service, proxy):
        _remove(d)
    rng = random.Random(SEED)  # noqa: S311 (a reproducible tree, not a secret)
    deps = dependency_modules(rng)
    gosum: list[str] = []
    for module, pkgs in deps.items():
        files = _module_sources(rng, module, pkgs, go_line, _dep_requires(pkgs))
        vdir = os.path.join(proxy, module, "@v")
        _write(os.path.join(vdir, f"{DEP_VERSION}.info"),
               json.dumps({"Version": DEP_VERSION, "Time": DEP_TIME}) + "\n")
        _write(os.path.join(vdir, f"{DEP_VERSION}.mod"), files["go.mod"])
        _write(os.path.join(vdir, f"{DEP_VERSION}.zip"), module_zip(module, files))
        _write(os.path.join(vdir, "list"), f"{DEP_VERSION}\n")
        zipped = {f"{module}@{DEP_VERSION}/{n}": b for n, b in files.items()}
        gosum.append(f"{module} {DEP_VERSION} {hash1(zipped)}\n")
        gosum.append(f"{module} {DEP_VERSION}/go.mod {hash1({'go.mod': files['go.mod']})}\n")
    dep_pkgs = [p.path for pkgs in deps.values() for p in pkgs]
    pkgs = service_packages(rng, dep_pkgs, count)
    files = _module_sources(rng, SERVICE_MODULE, pkgs, go_line, list(deps))
    for name, data in files.items():
        _write(os.path.join(service, name), data)
    _write(os.path.join(service, "go.sum"), "".join(sorted(gosum)))
    go_files = [b for n, b in files.items() if n.endswith(".go")]
    info = {"packages": len(pkgs), "files": len(go_files),
            "bytes": sum(len(b) for b in go_files), "modules": len(deps)}
    _write(sizes, json.dumps(info))
    _write(stamp, stamp_text(go_line, count))
    return {"service": service, "proxy": proxy, "generated": True, **info}


def _remove(path: str) -> None:
    """rm -rf of a generated tree (ours: plain files and directories)."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
