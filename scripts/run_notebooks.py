#!/usr/bin/env python
"""Execute the course notebooks with papermill, at learner scale or at smoke scale.

    python scripts/run_notebooks.py [--scale learner|smoke] [--out build/notebooks] [-p NAME=VALUE ...] [names...]

``names`` are file names, stems or number prefixes (``30``, ``30_probability…``); none = all of
notebooks/generative/. Smoke scale injects ``SMOKE = True`` (and ``DATASET = "digits"`` where the
notebook's ``parameters`` cell defines ``DATASET``); ``-p NAME=VALUE`` (a Python literal) sets any
parameter on top of that, e.g. ``-p DATASET=mnist -p EPOCHS=2``. Executed copies go to ``--out``; the committed
notebooks are never written. Each notebook runs in its own folder, with matplotlib's inline backend
(headless; figures are embedded in the executed copy),
in a kernel that uses this very interpreter. Exit status: 0 all passed, 1 some failed, 2 bad usage.

Tests import :func:`run_notebook` from this file.
"""

from __future__ import annotations

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"  # headless, and keeps figures in the copy

import argparse
import ast
import atexit
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks" / "generative"
DEFAULT_OUT = REPO / "build" / "notebooks"
PRIVATE_KERNEL = "genlab-python"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_kernel_cache: str | None = None


class NotebookExecutionError(RuntimeError):
    """A notebook failed. ``str()`` starts with one summary line naming the notebook and the cell."""

    def __init__(self, summary: str, details: str = ""):
        super().__init__(summary + ("\n" + details if details else ""))
        self.summary = summary


# ----------------------------------------------------------------------------- parameters cell
def parameters_cells(nb) -> list:
    """The code cells tagged ``parameters`` (papermill's convention; there should be one)."""
    return [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]


def assigned_names(source: str) -> set[str]:
    """Names assigned at top level of a cell (``SMOKE = False`` → ``{"SMOKE"}``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics etc.: fall back to a line-based look
        return set(re.findall(r"^([A-Za-z_]\w*)\s*(?::[^=]*)?=(?!=)", source, flags=re.M))
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Name):
                    names.add(sub.id)
    return names


def smoke_parameters(nb) -> dict:
    """What smoke scale injects: ``SMOKE=True``, plus ``DATASET="digits"`` if the notebook has a DATASET knob."""
    params: dict = {"SMOKE": True}
    cells = parameters_cells(nb)
    if cells and "DATASET" in assigned_names(cells[0].source):
        params["DATASET"] = "digits"
    return params


# ---------------------------------------------------------------------------------- the kernel
def _runs_this_python(argv: list[str]) -> bool:
    """Whether a kernelspec's command starts this interpreter (``sys.executable``)."""
    if not argv:
        return False
    exe = argv[0]
    # jupyter_client itself replaces these bare names by sys.executable when it starts a kernel.
    if exe in {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}:
        return True
    found = shutil.which(exe)
    if not found:
        return False
    # A venv's python is a symlink to the base interpreter: compare the folders as well.
    same_dir = Path(found).absolute().parent.resolve() == Path(sys.executable).absolute().parent.resolve()
    return same_dir and os.path.realpath(found) == os.path.realpath(sys.executable)


def _write_private_kernelspec() -> str:
    """A kernelspec for sys.executable in a temporary folder put first on JUPYTER_PATH."""
    folder = Path(tempfile.mkdtemp(prefix="genlab-kernels-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    spec_dir = folder / "kernels" / PRIVATE_KERNEL
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python ({sys.executable})", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(folder) + (os.pathsep + old if old else "")
    return PRIVATE_KERNEL


def kernel_name(refresh: bool = False) -> str:
    """A kernel name whose kernel runs this interpreter: ``python3`` if it does, else a private one."""
    global _kernel_cache
    if _kernel_cache is None or refresh:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        try:
            argv = KernelSpecManager().get_kernel_spec("python3").argv
        except NoSuchKernel:
            argv = []
        _kernel_cache = "python3" if _runs_this_python(argv) else _write_private_kernelspec()
    return _kernel_cache


@contextlib.contextmanager
def _environment(**values: str | None):
    """Temporarily set (or, with None, remove) environment variables; the kernel inherits them."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----------------------------------------------------------------------------------- execution
def _first_line(source: str) -> str:
    lines = [s.strip() for s in source.splitlines() if s.strip()]
    return lines[0][:80] if lines else ""


def _describe_failure(path: Path, nb, error, output: Path) -> NotebookExecutionError:
    """Name the notebook and the failing cell as the learner sees it (1-based, injected cell not counted)."""
    same = [i for i, c in enumerate(nb.cells) if c.source == error.source]
    index = min(same, key=lambda i: abs(i - error.cell_index)) if same else error.cell_index
    summary = (
        f"{path.name}: cell {index + 1} (In [{error.exec_count}], `{_first_line(error.source)}`) "
        f"raised {error.ename}: {_first_line(str(error.evalue)) or '(no message)'}"
    )
    tail = _ANSI.sub("", "\n".join(error.traceback or [])).splitlines()[-25:]
    return NotebookExecutionError(summary, "\n".join(tail + [f"executed copy: {output}"]))


def run_notebook(path: str | os.PathLike, smoke: bool, out_dir: str | os.PathLike,
                 cell_timeout: float | None = None, threads: int | None = None,
                 parameters: dict | None = None) -> float:
    """Execute one notebook; returns its wall time in seconds.

    ``smoke`` injects the smoke parameters (:func:`smoke_parameters`); ``parameters`` are injected
    on top of those (they win), e.g. ``{"DATASET": "mnist"}`` to run at smoke scale on MNIST. The
    executed copy is written to ``out_dir/<name>``. ``threads`` limits the kernel's BLAS/OpenMP
    threads (e.g. 1 per pytest worker). The kernel inherits this process's environment (so
    ``GENLAB_DATA`` set here is seen by the notebook). Raises :class:`NotebookExecutionError`
    naming the notebook and the failing cell.
    """
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    path = Path(path).resolve()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / path.name
    nb = nbformat.read(path, as_version=4)
    params = {**(smoke_parameters(nb) if smoke else {}), **(parameters or {})}
    n = str(threads) if threads else None
    start = time.perf_counter()
    try:
        with _environment(MPLBACKEND=INLINE_BACKEND, OMP_NUM_THREADS=n or os.environ.get("OMP_NUM_THREADS"),
                          MKL_NUM_THREADS=n or os.environ.get("MKL_NUM_THREADS")):
            pm.execute_notebook(
                str(path), str(output), parameters=params, kernel_name=kernel_name(), cwd=str(path.parent),
                progress_bar=False, log_output=False, execution_timeout=cell_timeout,
            )
    except PapermillExecutionError as err:
        raise _describe_failure(path, nb, err, output) from None
    except Exception as err:  # the kernel died, a cell timed out, the file is not a notebook…
        summary = f"{path.name}: {type(err).__name__}: {_first_line(str(err))}"
        raise NotebookExecutionError(summary, f"executed copy: {output}") from err
    return time.perf_counter() - start


# -------------------------------------------------------------------------------- command line
def course_notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The notebooks in ``folder`` in course order (file names start with their number)."""
    return sorted(folder.glob("*.ipynb"))


def select(names: list[str], available: list[Path]) -> list[Path]:
    """Match names (file name, stem, or number prefix) to notebooks; unknown names raise ValueError."""
    if not names:
        return available
    chosen = []
    for name in names:
        stem = Path(name).name.removesuffix(".ipynb")
        hits = [p for p in available if p.stem == stem or p.stem.split("_", 1)[0] == stem]
        if not hits:
            listing = ", ".join(p.stem.split("_", 1)[0] for p in available) or "none"
            raise ValueError(f"no notebook matches {name!r} in {NOTEBOOK_DIR} (available: {listing})")
        chosen += [p for p in hits if p not in chosen]
    return chosen


def parse_overrides(items: list[str]) -> dict:
    """``["EPOCHS=3", "DATASET=mnist"]`` → ``{"EPOCHS": 3, "DATASET": "mnist"}`` (literals, else strings)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"bad parameter {item!r}; write NAME=VALUE, e.g. EPOCHS=3")
        try:
            out[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[name] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="notebooks to run (file name, stem or number); default: all")
    parser.add_argument("--scale", choices=("learner", "smoke"), default="learner",
                        help="learner: the notebooks' own defaults; smoke: SMOKE=True (CI size)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for executed copies")
    parser.add_argument("--cell-timeout", type=float, default=None, help="seconds allowed per cell (default: none)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="set a parameter (VALUE is a Python literal; a bare word is taken as a string)")
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.param)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    try:
        notebooks = select(args.names, course_notebooks())
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not notebooks:
        print(f"error: no notebooks in {NOTEBOOK_DIR}", file=sys.stderr)
        return 2

    print(f"running {len(notebooks)} notebook(s) at {args.scale} scale with {sys.executable} → {args.out}", flush=True)
    failures, total = [], time.perf_counter()
    for i, path in enumerate(notebooks, 1):
        prefix = f"[{i}/{len(notebooks)}] {path.name}"
        start = time.perf_counter()
        try:
            seconds = run_notebook(path, smoke=args.scale == "smoke", out_dir=args.out,
                                   cell_timeout=args.cell_timeout, parameters=overrides)
            print(f"{prefix}  ok  {seconds:6.1f} s", flush=True)
        except NotebookExecutionError as err:
            print(f"{prefix}  FAILED  {time.perf_counter() - start:6.1f} s\n{err}", flush=True)
            failures.append(err.summary)
    passed = len(notebooks) - len(failures)
    print(f"{len(notebooks)} notebook(s): {passed} passed, {len(failures)} failed "
          f"in {time.perf_counter() - total:.1f} s")
    for summary in failures:
        print(f"FAILED {summary}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
