"""Lambda package size of each function, as `sam build` makes it (unzipped) and as it would be uploaded (zipped).

sam build runs without Docker when a python3.12 is on PATH; aws-sam-cli lives in its own virtualenv
(.venv-sam, `make bench` and `make package-size` install it) so that its pins stay out of the dev environment.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from infra.settings import REPO_ROOT, Settings

# Lambda quotas: the function and its layers unzipped, and a .zip uploaded directly (not through S3).
UNZIPPED_LIMIT_BYTES = 262_144_000  # "250 MB"
DIRECT_UPLOAD_LIMIT_BYTES = 52_428_800  # "50 MB"
SAM = REPO_ROOT / ".venv-sam" / "bin" / "sam"


def python312() -> Path | None:
    """A python3.12 interpreter: on PATH, or one of pyenv's."""
    found = shutil.which("python3.12")
    if found and "shims" not in found:
        return Path(found)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = sorted(pyenv_root.glob("versions/3.12.*/bin/python3.12"))
    return candidates[-1] if candidates else (Path(found) if found else None)


def sam_build(build_dir: Path) -> None:
    python = python312()
    sam = SAM if SAM.exists() else shutil.which("sam")
    if python is None or sam is None:
        raise RuntimeError("sam build needs aws-sam-cli (.venv-sam) and a python3.12 on PATH")
    env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}", "SAM_CLI_TELEMETRY": "0"}
    done = subprocess.run(
        [
            str(sam),
            "build",
            "--template",
            str(REPO_ROOT / "template.yaml"),
            "--base-dir",
            str(REPO_ROOT),
            "--build-dir",
            str(build_dir),
            "--no-cached",  # nothing in the repository's .aws-sam
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"sam build failed:\n{done.stdout}\n{done.stderr}")


def tree_size(root: Path) -> tuple[int, int]:
    """Bytes and files under `root` (apparent sizes, as Lambda counts them)."""
    files = [path for path in root.rglob("*") if path.is_file() and not path.is_symlink()]
    return sum(path.stat().st_size for path in files), len(files)


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def zipped_size(root: Path, target: Path) -> int:
    """The size of a deflate .zip of `root`, as `sam package` uploads it."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root))
    return target.stat().st_size


def largest(root: Path, count: int = 5) -> list[dict[str, Any]]:
    """The biggest top-level entries (packages) of a function's directory."""
    sizes = [(tree_size(entry)[0] if entry.is_dir() else entry.stat().st_size, entry.name) for entry in root.iterdir()]
    return [{"name": name, "bytes": size} for size, name in sorted(sizes, reverse=True)[:count]]


def package_sizes() -> dict[str, Any]:
    """Each function's own package and the layers it uses. Lambda's unzipped limit counts the function and
    its layers together; the direct-upload limit applies to each .zip (function or layer) on its own."""
    functions = Settings().load_stack().functions
    with tempfile.TemporaryDirectory(prefix="leyline-bench-sam-") as workdir:
        build_dir = Path(workdir) / "build"
        sam_build(build_dir)
        zipped_by_digest: dict[str, int] = {}

        def measure(name: str) -> dict[str, Any]:
            root = build_dir / name
            unzipped, files = tree_size(root)
            digest = tree_digest(root)
            if digest not in zipped_by_digest:
                zipped_by_digest[digest] = zipped_size(root, Path(workdir) / f"{name}.zip")
            return {"unzipped_bytes": unzipped, "zipped_bytes": zipped_by_digest[digest], "files": files}

        layers = {
            layer: measure(layer) | {"largest": largest(build_dir / layer / "python")}
            for spec in functions.values()
            for layer in spec.layers
        }
        results = {}
        for name, spec in functions.items():
            own = measure(name)
            total = own["unzipped_bytes"] + sum(layers[layer]["unzipped_bytes"] for layer in spec.layers)
            zips = [own["zipped_bytes"], *(layers[layer]["zipped_bytes"] for layer in spec.layers)]
            results[name] = {
                **own,
                "layers": list(spec.layers),
                "with_layers_unzipped_bytes": total,
                "largest": largest(build_dir / name),
                "within_unzipped_limit": total < UNZIPPED_LIMIT_BYTES,
                "within_direct_upload_limit": max(zips) < DIRECT_UPLOAD_LIMIT_BYTES,
            }
    return {
        "method": "sam build (no Docker, python3.12 on PATH), then a deflate .zip of each function's and layer's "
        "build directory",
        "python": str(python312()),
        "sam": subprocess.run([str(SAM), "--version"], capture_output=True, text=True, check=False).stdout.strip()
        if SAM.exists()
        else "sam on PATH",
        "unzipped_limit_bytes": UNZIPPED_LIMIT_BYTES,
        "direct_upload_limit_bytes": DIRECT_UPLOAD_LIMIT_BYTES,
        "functions": results,
        "layers": layers,
    }
