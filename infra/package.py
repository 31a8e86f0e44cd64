"""Build one deployable zip per Lambda function, and the template that deploys them.

    python infra/package.py [--out .package] [--host] [--layer] [--no-pin] [names...]

Each `<out>/<name>.zip` holds the function's own modules (`functions/<name>/*.py`, with
`handler.py` at the root so the handler is `handler.handler`), the whole `izgens` package,
and only the third-party distributions that function imports. Those are found by reading
the code, not by a hand-kept list: every `import` in the function's modules and in the
`izgens` modules they reach (lazy imports inside functions included, `if TYPE_CHECKING:`
blocks excluded) is mapped to its distribution in the current environment, and pinned to
the version installed there, so what ships is what the tests ran against. pip resolves them
for Lambda (arm64, CPython 3.12, binary wheels only); `--host` resolves them for this
machine instead, so an artifact can be imported and exercised locally (tests/infra).

botocore ships the models of ~450 AWS services (~20 MB); only those the code creates
clients for (`client("s3")`, `client("secretsmanager")`, found the same way) and STS/SSO are
kept (`--full-botocore` keeps all). boto3 itself is bundled, not taken from the runtime:
its version is then the one tested here, and izgens.storage needs botocore >= 1.36
(`request_checksum_calculation`), newer than some runtime releases carried.

Modules are precompiled to `.pyc` (unchecked-hash, so zip timestamps never invalidate them)
with a CPython of the target version: /var/task is read-only, so a Lambda without them
compiles every module on every cold start. Zips are reproducible (sorted entries, fixed
timestamps and modes): an unchanged function yields the same bytes, so `sam deploy` neither
re-uploads it nor publishes (and SnapStart-snapshots) a new version.

`<out>/template.yaml` is infra/template.yaml with each function's CodeUri pointing at its
zip: deploy it with `sam deploy -t <out>/template.yaml`. `--layer` additionally builds the
alternative layout (one `layer.zip` with every dependency + thin function zips) for size
comparison; see docs/deploy.md for the measurements and the choice.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = ROOT / "functions"
LIBRARY_DIR = ROOT / "shared" / "izgens"
TEMPLATE = ROOT / "infra" / "template.yaml"

LAMBDA_PYTHON = "3.12"
# Lambda's python3.12 runs on Amazon Linux 2023 (glibc 2.34). pip does not widen a
# --platform tag to older manylinux levels, so each level wheels are published for is named.
LAMBDA_PLATFORMS = (
    "manylinux2014_aarch64",
    "manylinux_2_28_aarch64",
    "manylinux_2_34_aarch64",
)
# Extras our code relies on without importing them by name: psycopg's C build, and the
# `cryptography` backend PyJWT needs for ES256/RS256 JWKS keys.
EXTRAS = {"psycopg": "binary", "pyjwt": "crypto"}
# Modules the Lambda runtime provides (SnapStart runtime hooks); never packaged.
RUNTIME_PROVIDED = {"snapshot_restore_py", "awslambdaric", "bootstrap"}
# botocore service models kept whatever the code names (credential refresh may need them).
ALWAYS_KEEP_SERVICES = {"sts", "sso", "sso-oidc"}
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
SKIP_DIRS = {"__pycache__", "tests", "test"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- finding what a function imports ------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        for name in names:
            if isinstance(name, ast.Name) and name.id in ("ImportError", "ModuleNotFoundError"):
                return True
    return False


@dataclass
class Imports:
    required: set[str] = field(default_factory=set)  # dotted module names
    optional: set[str] = field(default_factory=set)  # inside try/except ImportError


class _ImportVisitor(ast.NodeVisitor):
    """Collects every import of a module, however deep (lazy imports inside functions too)."""

    def __init__(self, path: Path, package: str | None) -> None:
        self.path = path
        self.package = package
        self.found = Imports()
        self.optional = 0

    def _add(self, names: set[str]) -> None:
        (self.found.optional if self.optional else self.found.required).update(names)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):  # annotations only: not needed at run time
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Try(self, node: ast.Try) -> None:
        if not _catches_import_error(node):
            self.generic_visit(node)
            return
        self.optional += 1
        for child in node.body:
            self.visit(child)
        self.optional -= 1
        for child in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(child)

    visit_TryStar = visit_Try

    def visit_Import(self, node: ast.Import) -> None:
        self._add({alias.name for alias in node.names})

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            if not self.package:
                raise SystemExit(f"{self.path}: relative import outside a package")
            parts = self.package.split(".")
            if node.level > len(parts):
                raise SystemExit(f"{self.path}: relative import beyond the top package")
            base = ".".join(parts[: len(parts) - node.level + 1])
            module = f"{base}.{node.module}" if node.module else base
        else:
            module = node.module or ""
        # `from izgens import storage` imports a module, not only a name
        self._add({module} | {f"{module}.{alias.name}" for alias in node.names})


def _module_imports(path: Path, package: str | None) -> Imports:
    visitor = _ImportVisitor(path, package)
    visitor.visit(ast.parse(path.read_text(), filename=str(path)))
    return visitor.found


def _library_module(dotted: str) -> tuple[Path, str] | None:
    """(file, package for its relative imports) of an izgens module, if it is one."""
    parts = dotted.split(".")
    if parts[0] != "izgens":
        return None
    base = LIBRARY_DIR.joinpath(*parts[1:])
    if base.with_suffix(".py").is_file() and len(parts) > 1:
        return base.with_suffix(".py"), ".".join(parts[:-1])
    if (base / "__init__.py").is_file():
        return base / "__init__.py", dotted
    return None


def function_modules(name: str) -> list[Path]:
    folder = FUNCTIONS_DIR / name
    return sorted(p for p in folder.glob("*.py") if p.name != "__init__.py")


def third_party_imports(name: str) -> tuple[set[str], set[str], set[Path]]:
    """Top-level third-party module names (required, optional) of one function, and the
    files of ours it reaches."""
    local = {p.stem for p in function_modules(name)}
    stdlib = set(sys.stdlib_module_names)
    required: set[str] = set()
    optional: set[str] = set()
    queue: list[tuple[Path, str | None, bool]] = [(p, None, False) for p in function_modules(name)]
    seen: set[Path] = set()
    while queue:
        path, package, is_optional = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        found = _module_imports(path, package)
        for group, group_optional in ((found.required, is_optional), (found.optional, True)):
            for dotted in group:
                top = dotted.split(".")[0]
                if not top or top in stdlib or top in local or top == "__future__":
                    continue
                if top == "izgens":
                    module = _library_module(dotted)
                    if module is not None:
                        queue.append((*module, group_optional))
                    continue
                if top not in RUNTIME_PROVIDED:
                    (optional if group_optional else required).add(top)
    return required, optional - required, seen


def aws_services(files: set[Path]) -> set[str] | None:
    """The boto3 services our code creates clients for; None if it cannot tell."""
    services: set[str] = set()
    for path in files:
        text = path.read_text()
        services |= set(re.findall(r"\bclient\(\s*[\"']([a-z0-9-]+)[\"']", text))
        dynamic = re.search(r"(?<!def )\b(client|resource)\(\s*[a-z_]", text)
        if dynamic and "boto" in text:
            return None  # a client named by a variable: keep every service model
    return services


def requirements(name: str, *, pin: bool) -> list[str]:
    """pip requirement strings for the distributions one function imports."""
    mapping = importlib.metadata.packages_distributions()
    required, optional, _ = third_party_imports(name)
    specs: dict[str, str] = {}
    for module in sorted(required | optional):
        dists = mapping.get(module)
        if not dists:
            if module in optional:
                continue
            raise SystemExit(
                f"{name}: cannot tell which distribution provides `import {module}`; "
                "install the project (pip install -e '.[test]') first"
            )
        dist = importlib.metadata.distribution(dists[0])
        key = _normalize(dist.metadata["Name"])
        extra = f"[{EXTRAS[key]}]" if key in EXTRAS else ""
        version = f"=={dist.version}" if pin else ""
        specs[key] = f"{dist.metadata['Name']}{extra}{version}"
    return [specs[k] for k in sorted(specs)]


# --- building ------------------------------------------------------------------------------


def _constraints_file(directory: Path) -> Path:
    """Pin every transitive dependency to the version installed here (what tests ran on)."""
    lines = sorted(
        {
            f"{_normalize(d.metadata['Name'])}=={d.version}"
            for d in importlib.metadata.distributions()
            if d.metadata["Name"] and _normalize(d.metadata["Name"]) != "izgens"
        }
    )
    path = directory / "constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _target_python(host: bool) -> str | None:
    """An interpreter of the target version to precompile with (None: ship no .pyc)."""
    if host:
        return sys.executable
    candidates = [
        os.environ.get("IZGENS_LAMBDA_PYTHON"),
        shutil.which(f"python{LAMBDA_PYTHON}"),
        # pyenv installs that are not the selected version (the shim then refuses to run)
        *sorted(
            str(p)
            for p in Path.home().glob(
                f".pyenv/versions/{LAMBDA_PYTHON}.*/bin/python{LAMBDA_PYTHON}"
            )
        ),
    ]
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == LAMBDA_PYTHON:
            return candidate
    return None


def _compile(directory: Path, python: str | None) -> None:
    if python is None:
        return
    subprocess.run(
        # -s/-p: record paths relative to the code root (/var/task on Lambda), not this
        # build directory, so the bytes do not depend on where the build ran
        [
            python,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(directory),
            "-p",
            "/var/task",
            str(directory),
        ],
        check=False,  # a file some wheel ships for another Python version must not stop us
        stdout=subprocess.DEVNULL,
    )


def trim_botocore(target: Path, services: set[str] | None) -> None:
    """Drop the service models (~20 MB) of AWS services the code never creates a client for.

    Every other data file (endpoints, partitions, retry and default configuration) stays.
    """
    if services is None:
        return
    keep = services | ALWAYS_KEEP_SERVICES
    for data in (target / "botocore" / "data", target / "boto3" / "data"):
        if not data.is_dir():
            continue
        for entry in data.iterdir():
            if entry.is_dir() and entry.name not in keep:
                shutil.rmtree(entry)


def install_dependencies(
    reqs: list[str],
    *,
    cache: Path,
    host: bool,
    constraints: Path | None,
    python: str | None,
    services: set[str] | None = None,
) -> Path:
    """pip install `reqs` into a directory keyed by what it holds (shared across functions)."""
    platform = "host" if host else "lambda-arm64-cp312"
    kept = "all" if services is None else ",".join(sorted(services))
    key = hashlib.sha256("\n".join([platform, kept, *reqs]).encode()).hexdigest()[:16]
    target = cache / f"deps-{key}"
    if (target / ".complete").exists():
        return target
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    if not reqs:
        (target / ".complete").write_text("")
        return target
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--no-warn-conflicts",
        "--no-warn-script-location",
        "--target",
        str(target),
    ]
    if not host:
        for tag in LAMBDA_PLATFORMS:
            command += ["--platform", tag]
        command += [
            "--only-binary=:all:",
            "--python-version",
            LAMBDA_PYTHON,
            "--implementation",
            "cp",
        ]
    if constraints is not None:
        command += ["--constraint", str(constraints)]
    result = subprocess.run([*command, *reqs], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        noise = "is ignored: it is neither a file nor a directory"
        stderr = "\n".join(line for line in result.stderr.splitlines() if noise not in line)
        raise SystemExit(f"pip failed for {reqs}:\n{stderr}")
    for junk in ("bin",):
        shutil.rmtree(target / junk, ignore_errors=True)
    for cache_dir in target.rglob("__pycache__"):
        shutil.rmtree(cache_dir, ignore_errors=True)
    trim_botocore(target, services)
    _compile(target, python)
    (target / ".complete").write_text("")
    return target


def _files(root: Path, prefix: str = "") -> dict[str, Path]:
    """archive name -> file, for everything under root (sorted walk, junk skipped)."""
    out: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS or d == "__pycache__")
        for filename in sorted(filenames):
            if filename == ".complete":
                continue
            path = Path(dirpath) / filename
            out[prefix + path.relative_to(root).as_posix()] = path
    return out


def write_zip(destination: Path, entries: dict[str, Path]) -> None:
    tmp = destination.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, entries[name].read_bytes(), compresslevel=9)
    tmp.replace(destination)


def stage_code(name: str, staging: Path, python: str | None, *, with_library: bool) -> Path:
    """The function's own modules (and izgens) in a directory, precompiled."""
    root = staging / name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for module in function_modules(name):
        shutil.copy2(module, root / module.name)
    if with_library:
        shutil.copytree(
            LIBRARY_DIR, root / "izgens", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    _compile(root, python)
    return root


@dataclass
class Artifact:
    name: str
    path: Path
    unzipped: int
    files: int
    requirements: list[str]


def _artifact(name: str, path: Path, entries: dict[str, Path], reqs: list[str]) -> Artifact:
    return Artifact(name, path, sum(p.stat().st_size for p in entries.values()), len(entries), reqs)


def build_function(
    name: str,
    out: Path,
    *,
    host: bool,
    pin: bool,
    constraints: Path | None,
    python: str | None,
    full_botocore: bool = False,
) -> Artifact:
    reqs = requirements(name, pin=pin)
    services = None if full_botocore else aws_services(third_party_imports(name)[2])
    deps = install_dependencies(
        reqs,
        cache=out / ".cache",
        host=host,
        constraints=constraints,
        python=python,
        services=services,
    )
    code = stage_code(name, out / ".staging", python, with_library=True)
    entries = _files(deps)
    own = _files(code)
    clash = sorted(set(entries) & set(own))
    if clash:
        raise SystemExit(f"{name}: dependency files collide with our code: {clash[:5]}")
    entries.update(own)
    destination = out / f"{name}.zip"
    write_zip(destination, entries)
    return _artifact(name, destination, entries, reqs)


def build_layer_variant(
    names: list[str],
    out: Path,
    *,
    host: bool,
    pin: bool,
    constraints: Path | None,
    python: str | None,
    full_botocore: bool = False,
) -> list[Artifact]:
    """The alternative: one layer with every dependency (+ izgens), thin function zips."""
    reqs = sorted({r for name in names for r in requirements(name, pin=pin)})
    services: set[str] | None = set()
    for name in names:
        found = None if full_botocore else aws_services(third_party_imports(name)[2])
        services = None if (found is None or services is None) else services | found
    deps = install_dependencies(
        reqs,
        cache=out / ".cache",
        host=host,
        constraints=constraints,
        python=python,
        services=services,
    )
    library = out / ".staging" / "_layer_library"
    if library.exists():
        shutil.rmtree(library)
    shutil.copytree(LIBRARY_DIR, library / "izgens", ignore=shutil.ignore_patterns("__pycache__"))
    _compile(library, python)
    layer_entries = _files(deps, "python/") | _files(library, "python/")
    layer_dir = out / "layer-variant"
    layer_dir.mkdir(parents=True, exist_ok=True)
    write_zip(layer_dir / "layer.zip", layer_entries)
    artifacts = [_artifact("(layer)", layer_dir / "layer.zip", layer_entries, reqs)]
    for name in names:
        code = stage_code(name, out / ".staging", python, with_library=False)
        entries = _files(code)
        write_zip(layer_dir / f"{name}.zip", entries)
        artifacts.append(_artifact(name, layer_dir / f"{name}.zip", entries, []))
    return artifacts


def write_template(out: Path, built: set[str]) -> Path | None:
    text = TEMPLATE.read_text()
    referenced = set(re.findall(r"CodeUri:\s*\.\./functions/(\w+)/?\s*$", text, re.M))
    missing = sorted(referenced - built)
    if missing:
        say(f"note: no artifact for {', '.join(missing)}: {out / 'template.yaml'} not written")
        return None
    text = re.sub(
        r"(CodeUri:\s*)\.\./functions/(\w+)/?\s*$",
        lambda m: f"{m.group(1)}{m.group(2)}.zip",
        text,
        flags=re.M,
    )
    header = "# GENERATED by infra/package.py from infra/template.yaml; do not edit.\n"
    path = out / "template.yaml"
    path.write_text(header + text)
    return path


def say(text: str = "", *, err: bool = False) -> None:
    """A CLI's output (the project lint forbids print() outside benchmarks)."""
    (sys.stderr if err else sys.stdout).write(text + "\n")


def _mb(size: int) -> str:
    return f"{size / 1_000_000:8.2f}"


def print_table(title: str, artifacts: list[Artifact]) -> None:
    say(f"\n{title}")
    say(f"{'artifact':<16} {'zip MB':>8} {'unzip MB':>8} {'files':>6}  dependencies")
    for a in artifacts:
        deps = " ".join(r.split("==")[0] for r in a.requirements) or "-"
        say(f"{a.name:<16} {_mb(a.path.stat().st_size)} {_mb(a.unzipped)} {a.files:>6}  {deps}")
    total = sum(a.path.stat().st_size for a in artifacts)
    say(f"{'total':<16} {_mb(total)}")


def available_functions() -> list[str]:
    return sorted(
        p.name for p in FUNCTIONS_DIR.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="functions to build (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / ".package")
    parser.add_argument(
        "--host",
        action="store_true",
        help="resolve wheels for this machine instead of Lambda arm64 (local tests)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="let pip choose versions instead of pinning to this environment's",
    )
    parser.add_argument(
        "--full-botocore",
        action="store_true",
        help="keep every AWS service model (default: only those the code creates clients for)",
    )
    parser.add_argument(
        "--layer",
        action="store_true",
        help="also build the shared-layer variant (layer.zip + thin zips) for comparison",
    )
    args = parser.parse_args(argv)

    names = args.names or available_functions()
    unknown = [n for n in names if not (FUNCTIONS_DIR / n).is_dir()]
    if unknown:
        parser.error(f"no such function: {', '.join(unknown)}")
    ready = [n for n in names if (FUNCTIONS_DIR / n / "handler.py").is_file()]
    skipped = sorted(set(names) - set(ready))
    if skipped and args.names:
        parser.error(f"no handler.py yet: {', '.join(skipped)}")

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    python = _target_python(args.host)
    if python is None:
        say(
            f"warning: no python{LAMBDA_PYTHON} found (set IZGENS_LAMBDA_PYTHON): artifacts "
            "carry no .pyc, so Lambda compiles every module at init",
            err=True,
        )
    with tempfile.TemporaryDirectory() as tmp:
        constraints = None if args.no_pin else _constraints_file(Path(tmp))
        artifacts = [
            build_function(
                name,
                out,
                host=args.host,
                pin=not args.no_pin,
                constraints=constraints,
                python=python,
                full_botocore=args.full_botocore,
            )
            for name in ready
        ]
        target = "host" if args.host else f"Lambda arm64, python{LAMBDA_PYTHON}"
        print_table(f"per-function artifacts ({target}) in {out}", artifacts)
        if args.layer and ready:
            variant = build_layer_variant(
                ready,
                out,
                host=args.host,
                pin=not args.no_pin,
                constraints=constraints,
                python=python,
                full_botocore=args.full_botocore,
            )
            print_table("shared-layer variant (for comparison; not deployed)", variant)
    for name in skipped:
        say(f"skipped {name}: functions/{name}/handler.py does not exist yet")
    if not args.host:
        template = write_template(out, set(ready))
        if template is not None:
            say(f"\ndeploy with: sam deploy -t {template} --guided")
    return 0


if __name__ == "__main__":
    sys.exit(main())
