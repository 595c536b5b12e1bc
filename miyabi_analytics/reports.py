"""Scheduled reports: run the report notebook with papermill, export it, record the run.

:func:`generate_report` runs ``report.ipynb`` (shipped in the package) for a data window,
writes a self-contained HTML file (code hidden, plotly.js inlined once, nothing fetched from
the network) or the executed notebook, and records the run in ``report_runs``
(:func:`~miyabi_analytics.read_report_runs`). :func:`serve_dashboard` serves
``dashboard.ipynb`` as a web app with Voila.

The database URL reaches the notebook's kernel through ``MIYABI_DATABASE_URL`` in the kernel's
environment, never as a parameter, so no executed notebook holds a password. The heavy jupyter
imports happen inside the functions that need them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Literal

from sqlalchemy import URL
from sqlalchemy.exc import SQLAlchemyError

from miyabi_analytics._db.engine import connect, mask_url
from miyabi_analytics._db.migrate import migrate
from miyabi_analytics._extras import needs
from miyabi_analytics._notebook_files import kernel_url, notebook_path
from miyabi_analytics._outputs import check_output_file
from miyabi_analytics.errors import MiyabiError, ValidationError
from miyabi_analytics.report_runs import ReportRunStatus, finish_run, start_run
from miyabi_analytics.report_scope import DEFAULT_DAYS as DEFAULT_DAYS
from miyabi_analytics.report_scope import ReportScope as ReportScope
from miyabi_analytics.report_scope import report_scope
from miyabi_analytics.report_scope import report_window as report_window

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_TITLE",
    "FORMATS",
    "ReportError",
    "ReportScope",
    "generate_report",
    "notebook_path",
    "report_scope",
    "report_window",
    "serve_dashboard",
]

DEFAULT_TITLE: Final = "Miyabi agents report"
FORMATS: Final = ("html", "ipynb")
CELL_TIMEOUT_SECONDS: Final = 600
KERNEL_START_TIMEOUT_SECONDS: Final = 120

# lab/index.html.j2 loads require.js, MathJax and mermaid from CDNs: the report needs none.
_OFFLINE_TEMPLATE: Final = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""
REMOVE_CELL_TAG: Final = "remove-cell"
"""Cells with this tag (notes for notebook readers) are left out of the exported HTML."""


class ReportError(MiyabiError):
    """The report notebook failed; ``cell`` names the cell (``None`` if not one cell's fault)."""

    def __init__(self, cell: str | None, reason: str, run_id: uuid.UUID | None = None) -> None:
        super().__init__(cell, reason, run_id)
        self.cell = cell
        self.reason = reason
        self.run_id = run_id

    def __str__(self) -> str:
        return f"{self.cell}: {self.reason}" if self.cell else self.reason


def _output_path(output: str | os.PathLike[str] | None, fmt: str) -> Path:
    return check_output_file("output", output if output is not None else f"miyabi-report.{fmt}")


@needs("report")
def generate_report(
    url: str | URL | None = None,
    *,
    since: object = None,
    until: object = None,
    repository_id: object = None,
    title: str | None = None,
    output: str | os.PathLike[str] | None = None,
    format: Literal["html", "ipynb"] = "html",
    notebook: str | os.PathLike[str] | None = None,
) -> Path:
    """Run the report notebook for a data window and write it; returns the output path.

    Args:
        url: Database URL (default: ``$MIYABI_DATABASE_URL``, ``$DATABASE_URL``, the
            embedded SQLite file). The database is migrated first (idempotent).
        since: First instant included (see :func:`report_window`).
        until: First instant excluded (see :func:`report_window`).
        repository_id: One repository's UUID; ``None`` reports on all.
        title: The report's heading and HTML title.
        output: Where to write (default ``miyabi-report.html`` or ``.ipynb`` in the working
            directory). Written to a temporary file first and renamed into place, so a failed
            run never leaves a partial file (an older report at that path stays as it was).
        format: ``html`` (self-contained, code hidden) or ``ipynb`` (the executed notebook).
        notebook: Another report notebook with the same parameters (default: the shipped one).

    Raises:
        MissingExtraError: The ``[report]`` extra is not installed (nothing was run or recorded).
        ValidationError: A bad parameter (nothing was run or recorded).
        ReportError: A cell raised, the kernel died or a cell timed out (recorded as failed).
    """
    if format not in FORMATS:
        raise ValidationError("format", format, f"expected one of {', '.join(FORMATS)}")
    heading = _check_title(title)
    scope = report_scope(since, until, repository_id)
    path = _output_path(output, format)
    source = Path(notebook) if notebook is not None else notebook_path("report.ipynb")
    if not source.is_file():
        raise ValidationError("notebook", str(source), "no such notebook")

    engine = connect(url)
    try:
        migrate(engine)
        requested = {
            "url": mask_url(engine.url),
            "since": _iso(since),
            "until": _iso(until),
            "repository_id": None if scope.repository_id is None else str(scope.repository_id),
            "title": heading,
            "format": format,
            "output": str(path),
        }
        run_id = start_run(engine, parameters=requested, since=scope.start, until=scope.end)
        parameters = {
            "database_url": None,  # the kernel gets the URL from its environment
            "since": scope.start.isoformat(),
            "until": scope.end.isoformat(),
            "repository_id": requested["repository_id"],
            "title": heading,
        }
        try:
            kernel_env = {"MIYABI_DATABASE_URL": kernel_url(engine.url)}
            executed = _execute(source, parameters, kernel_env)
            executed.metadata["title"] = heading
            text = _to_html(executed) if format == "html" else _to_ipynb(executed)
            _write_atomically(path, text)
        except BaseException as exc:  # recorded as failed, then re-raised unchanged
            if isinstance(exc, ReportError):
                exc.run_id = run_id
            _record_failure(engine, run_id, exc)
            raise
        finish_run(engine, run_id, ReportRunStatus.COMPLETED, output_path=str(path))
    finally:
        engine.dispose()
    return path


def _check_title(title: object) -> str:
    if title is None:
        return DEFAULT_TITLE
    if not isinstance(title, str) or not title.strip():
        raise ValidationError("title", title, "expected non-empty text")
    return title


def _iso(value: object) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _one_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = mask_url(lines[0] if lines else "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _record_failure(engine: Any, run_id: uuid.UUID, exc: BaseException) -> None:
    error = str(exc) if isinstance(exc, MiyabiError) else f"{type(exc).__name__}: {exc}"
    try:
        finish_run(engine, run_id, ReportRunStatus.FAILED, error=_one_line(error, 1000))
    except SQLAlchemyError as recording:
        exc.add_note(f"(the failure could not be recorded in report_runs: {recording})")


def _kernel_manager_class(env: Mapping[str, str], log: IO[bytes]) -> type[AsyncKernelManager]:
    """A kernel manager running this interpreter's ipykernel, whatever kernelspecs exist.

    ``env`` is added to the kernel's environment; its own stderr (log lines, not cell output)
    goes to ``log`` instead of this process's terminal.
    """
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    spec = KernelSpec(
        argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        display_name="Python 3 (ipykernel)",
        language="python",
    )

    class ReportKernelManager(AsyncKernelManager):
        @property
        def kernel_spec(self) -> KernelSpec:
            return spec

        # jupyter_client types start_kernel as the sync manager's; this is the async one.
        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            kw["env"] = {**os.environ, **kw.get("env", {}), **env}
            kw.setdefault("stdout", subprocess.DEVNULL)
            kw.setdefault("stderr", log)
            await super().start_kernel(**kw)

    return ReportKernelManager


def _execute(source: Path, parameters: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    """The executed notebook (papermill), or :class:`ReportError` naming the failing cell."""
    import nbformat
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    original = nbformat.read(source, as_version=4)  # type: ignore[no-untyped-call]
    with tempfile.TemporaryFile() as log:
        try:
            return papermill.execute_notebook(
                str(source),
                None,
                parameters=dict(parameters),
                kernel_name="python3",
                language="python",
                progress_bar=False,
                log_output=False,
                start_timeout=KERNEL_START_TIMEOUT_SECONDS,
                execution_timeout=CELL_TIMEOUT_SECONDS,
                kernel_manager_class=_kernel_manager_class(env, log),
            )
        except PapermillExecutionError as exc:
            cell = _cell_name(original, exc.source, exc.cell_index)
            raise ReportError(cell, _one_line(f"{exc.ename}: {exc.evalue}")) from None
        except CellTimeoutError as exc:
            raise ReportError(None, _one_line(f"a cell timed out: {exc}")) from None
        except (DeadKernelError, RuntimeError, TimeoutError) as exc:
            # Cell errors are PapermillExecutionError: these come from the kernel itself (it
            # died, or did not start: "Kernel died before replying to kernel_info", timeout).
            log.seek(0)
            last = [line for line in log.read().decode(errors="replace").splitlines() if line]
            detail = f" ({_one_line(last[-1])})" if last else ""
            reason = _one_line(str(exc) or type(exc).__name__)
            raise ReportError(None, f"the notebook's kernel failed: {reason}{detail}") from None


def _cell_name(notebook: Any, source: str, executed_index: int) -> str:
    """``cell 5 (kpis)``: the position and id of the failing cell in the source notebook."""
    for position, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type == "code" and cell.source == source:
            cell_id = cell.get("id")
            return f"cell {position} ({cell_id})" if cell_id else f"cell {position}"
    if "injected-parameters" in str(source) or executed_index == 0:
        return "the injected parameters cell"
    return f"cell {executed_index + 1} of the executed notebook"


def _to_html(notebook: Any) -> str:
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = {REMOVE_CELL_TAG}
    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        config=config,
        template_name="lab",
        extra_loaders=[DictLoader({"miyabi_report.html.j2": _OFFLINE_TEMPLATE})],
        template_file="miyabi_report.html.j2",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    body, _ = exporter.from_notebook_node(notebook)
    return str(body)


def _to_ipynb(notebook: Any) -> str:
    import nbformat

    return str(nbformat.writes(notebook))  # type: ignore[no-untyped-call]


def _write_atomically(path: Path, text: str) -> None:
    """Write next to ``path``, then rename over it: readers see the old file or the new one."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else _file_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _file_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def serve_dashboard(
    url: str | URL | None = None, *, port: int = 8866, host: str = "127.0.0.1"
) -> None:
    """Serve ``dashboard.ipynb`` as a web app with Voila until interrupted (blocks).

    Binds ``host`` (loopback by default) on ``port``; fails rather than picking another port.
    Nothing is fetched from outside the server, and a preheated kernel makes the page open at
    once: see :mod:`miyabi_analytics._serve`.
    """
    from miyabi_analytics._serve import serve_dashboard as serve

    serve(url, port=port, host=host)
