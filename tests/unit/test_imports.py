"""The agent does not import the server: no module of the node side (agent, kernel, plan,
reconcile, model, ipam, wire) imports `dvrnet.api`, `dvrnet.store`, FastAPI or SQLAlchemy, not
even inside a function, and importing the agent loads none of them."""
from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import dvrnet

SRC = pathlib.Path(dvrnet.__file__).parent
NODE_SIDE = ("agent", "kernel", "plan", "reconcile", "model", "ipam", "wire")
SERVER = ("dvrnet.api", "dvrnet.store", "fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn")


def _imports(path: pathlib.Path) -> list[str]:
    """Absolute names of every module the file imports (relative imports resolved)."""
    pkg = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                up = parts[: len(parts) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            out += [base] + [f"{base}.{a.name}" for a in node.names]
    return out


def test_node_side_modules_never_import_the_server():
    bad = []
    for d in NODE_SIDE:
        for f in sorted((SRC / d).rglob("*.py")):
            bad += [f"{f.relative_to(SRC)}: {m}" for m in _imports(f)
                    if any(m == s or m.startswith(s + ".") for s in SERVER)]
    assert not bad, "\n".join(bad)


def test_importing_the_agent_loads_nothing_of_the_server():
    p = subprocess.run([sys.executable, "-X", "importtime", "-c",
                        "import dvrnet.agent.loop, dvrnet.agent.feed, dvrnet.wire"],
                       capture_output=True, text=True, check=True)
    loaded = [line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if "|" in line]
    assert "dvrnet.agent.loop" in loaded and "dvrnet.wire.codec" in loaded
    bad = [m for m in loaded if any(m == s or m.startswith(s + ".") for s in SERVER)]
    assert not bad, bad
