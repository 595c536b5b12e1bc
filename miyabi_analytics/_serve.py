"""``miyabi-analytics serve``: the dashboard notebook as a web app (Voila), offline and fast.

Two things Voila does not do out of the box, and why:

* **Nothing from outside.** Voila's ``lab`` template links Font Awesome's CSS from a CDN (two
  failed requests and a console error on a machine without internet). The ``miyabi`` template
  shipped in ``_voila/`` extends it without those links (Voila's JavaScript bundle already
  carries Font Awesome with its fonts) and hides the cells tagged ``remove-cell``.
* **The page opens at once.** A kernel started on request spends most of the page's wait in
  imports and the first queries (17-25 s on the demo database, on two cores). With a
  preheated kernel (``--preheat_kernel``, a pool of one) Voila runs the notebook before anyone
  asks for the page; the notebook then waits for the request
  (:func:`~miyabi_analytics.widgets.wait_for_page_request`) and only reads the data again, so
  the page shows current data within a few seconds. After each page Voila preheats the next
  kernel. (Preheating rules out progressive rendering: figures filled before the page connects
  reach it through their synced state, see :func:`~miyabi_analytics.widgets.replace_figure`.)
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, Final

from sqlalchemy import URL

from miyabi_analytics._db.engine import resolve_url
from miyabi_analytics._extras import needs, require
from miyabi_analytics.errors import ValidationError

__all__ = [
    "FILL_DELAY_SECONDS",
    "PLOTLY_WIDGET_ROUTE",
    "POOL_SIZE",
    "READY",
    "TEMPLATE",
    "UNUSED_EXTENSIONS",
    "plotly_module_url",
    "serve_dashboard",
    "voila_argv",
    "voila_data_dirs",
]

TEMPLATE: Final = "miyabi"
"""The Voila template shipped in ``_voila/voila/templates/``."""
POOL_SIZE: Final = 1
"""Preheated kernels kept waiting for a page; each runs the dashboard notebook once."""
FILL_DELAY_SECONDS: Final = 10
"""After a page took the preheated kernel, wait this long before preheating the next one, so
that preheating (imports, queries: CPU) does not slow the page down while it draws."""
UNUSED_EXTENSIONS: Final = ("jupyterlab-plotly", "jupyterlab_pygments")
"""JupyterLab extensions the page does not load: the dashboard draws with FigureWidgets (not
plotly's mimetype renderer, a second 4.8 MB plotly.js) and shows no code to highlight."""
PLOTLY_WIDGET_ROUTE: Final = "miyabi/plotly/widgetbundle.js"
"""Where the server serves plotly's FigureWidget module (see :func:`plotly_module_url`)."""
READY: Final = "the dashboard is ready"
"""Printed (stderr) once the first preheated kernel has run the notebook and waits for a page."""
_OUR_DATA_DIR: Final = Path(__file__).resolve().parent / "_voila"


def _voila_data_dir() -> Path | None:
    """The ``share/jupyter`` of Voila's installation prefix (its templates and labextensions)."""
    voila: Any = require("serve", "voila")
    for parent in Path(voila.__file__).resolve().parents:
        candidate = parent / "share" / "jupyter"
        if (candidate / "voila" / "templates" / "lab").is_dir():
            return candidate
    return None


def voila_data_dirs() -> list[str]:
    """``JUPYTER_PATH`` for Voila: the shipped template first, then what was there.

    Voila finds templates and widget labextensions in the Jupyter data directories, which
    include ``sys.prefix/share/jupyter``; an interpreter whose packages live in another prefix
    (a venv using another's site-packages, ``pip --target``) does not see Voila's own, so that
    one is added too when it is missing.
    """
    from jupyter_core.paths import jupyter_path

    existing = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    dirs = [str(_OUR_DATA_DIR), *existing]
    voila_dir = _voila_data_dir()
    known = {str(Path(p).resolve()) for p in jupyter_path()}
    if voila_dir is not None and str(voila_dir) not in known:
        dirs.append(str(voila_dir))
    return list(dict.fromkeys(dirs))


def voila_argv(notebook: Path, *, port: int, host: str) -> list[str]:
    """The Voila command line of :func:`serve_dashboard` (loopback, one port, preheated)."""
    return [
        str(notebook),
        f"--port={port}",
        f"--Voila.ip={host}",
        "--Voila.port_retries=0",
        "--no-browser",
        "--show_tracebacks=False",
        f"--template={TEMPLATE}",
        "--theme=light",
        "--preheat_kernel=True",
        f"--pool_size={POOL_SIZE}",
        f"--VoilaKernelManager.fill_delay={FILL_DELAY_SECONDS}",
        *(f"--VoilaConfiguration.extension_denylist={name}" for name in UNUSED_EXTENSIONS),
        "--progressive_rendering=False",
    ]


def plotly_module_url(base_url: str) -> str:
    """The URL of plotly's FigureWidget JavaScript module on the server at ``base_url``.

    Every FigureWidget carries that module (5 MB) in its state, so a dashboard of seven figures
    sent 35 MB through the kernel's websocket for the browser to parse seven times. Given this
    URL as the widget's module instead (anywidget imports an ``http(s)`` module by URL), the
    browser fetches and evaluates it once, and the ``miyabi`` template has it start loading
    with the page (the same URL: a module is evaluated once per URL).
    """
    return f"{base_url.rstrip('/')}/{PLOTLY_WIDGET_ROUTE}"


def _plotly_widget_dir() -> Path:
    """The ``package_data`` folder of plotly, where ``plotly.basewidget`` has its module."""
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data"


@needs("serve")
def serve_dashboard(
    url: str | URL | None = None, *, port: int = 8866, host: str = "127.0.0.1"
) -> None:
    """Serve ``dashboard.ipynb`` as a web app with Voila until interrupted (blocks).

    Binds ``host`` (loopback by default) on ``port``; fails rather than picking another port.
    The dashboard's kernels read the database URL from ``MIYABI_DATABASE_URL``, which this sets
    in the current process's environment (they inherit it), a SQLite path made absolute.
    Prints :data:`READY` on stderr once a preheated kernel waits for the first page.
    """
    from miyabi_analytics._notebook_files import kernel_url, notebook_path

    resolved = resolve_url(url)
    source = notebook_path("dashboard.ipynb")
    if not source.is_file():
        raise ValidationError("notebook", str(source), "no such notebook")
    os.environ["MIYABI_DATABASE_URL"] = kernel_url(resolved)
    os.environ["JUPYTER_PATH"] = os.pathsep.join(voila_data_dirs())
    # The kernels' own output (ipykernel's warnings, a traceback when one is stopped mid-cell on
    # Ctrl-C) goes to a file, not the terminal: cell errors show on the page and in Voila's log.
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed below, after Voila stops)
        prefix="miyabi-serve-kernels-", suffix=".log", delete=False
    )
    print(f"kernel output goes to {log.name}", file=sys.stderr)
    try:
        app = _voila_app_class(log)
        app.launch_instance(argv=voila_argv(source, port=port, host=host))
    finally:
        log.close()
        if os.path.getsize(log.name) == 0:
            os.unlink(log.name)


def _voila_app_class(kernel_log: IO[bytes]) -> Any:
    """Voila's app, saying :data:`READY` when a preheated kernel first waits for its page."""
    # voila ships no type information: imported by name, it is Any without a mypy override.
    voila_app: Any = require("serve", "voila.app")
    waiting: Any = require("serve", "voila.request_info_handler")
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
    from tornado.ioloop import PeriodicCallback

    class DashboardKernels(AsyncMappingKernelManager):
        # jupyter_client types start_kernel as the sync manager's; this is the async one.
        async def start_kernel(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            kwargs.setdefault("stdout", kernel_log)
            kwargs.setdefault("stderr", kernel_log)
            return await super().start_kernel(*args, **kwargs)

    class DashboardVoila(voila_app.Voila):  # type: ignore[misc]
        def init_settings(self) -> Any:
            self.voila_configuration.multi_kernel_manager_class = DashboardKernels
            return super().init_settings()

        def init_handlers(self) -> list[Any]:
            from jupyter_server.utils import url_path_join
            from tornado.web import StaticFileHandler

            # First: the notebook's own handler, last in Voila's list, matches every path.
            folder, name = PLOTLY_WIDGET_ROUTE.rsplit("/", 1)
            pattern = url_path_join(self.server_url, folder, f"({re.escape(name)})")
            files = {"path": str(_plotly_widget_dir())}
            return [(pattern, StaticFileHandler, files), *super().init_handlers()]

        def start(self) -> None:
            def check() -> None:
                # A kernel that ran the cells before wait_for_page_request() connects here.
                if getattr(waiting.RequestInfoSocketHandler, "_waiters", None):
                    host = f"[{self.ip}]" if ":" in self.ip else self.ip
                    print(f"{READY} at http://{host}:{self.port}/", file=sys.stderr)
                    poll.stop()

            poll = PeriodicCallback(check, 200)
            poll.start()
            super().start()

    return DashboardVoila
