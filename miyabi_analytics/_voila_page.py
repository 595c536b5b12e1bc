"""Where a Voila kernel's page is: :func:`wait_for_page_request` (re-exported by widgets)."""

from __future__ import annotations

import importlib
import os
from typing import Any
from urllib.parse import urlsplit

__all__ = ["wait_for_page_request"]


def wait_for_page_request() -> str | None:
    """Under Voila, the server URL of the page this kernel serves; ``None`` elsewhere, at once.

    ``miyabi-analytics serve`` has Voila run the dashboard notebook in a kernel before anyone
    asks for the page, so the page opens at once: in such a preheated kernel this waits for the
    page's request, and the cells after it run when it came (see
    :meth:`~miyabi_analytics.widgets.DashboardView.serve_page`). A kernel Voila started for a
    request (the preheated one was taken) knows its page already and returns at once. In
    JupyterLab: ``None`` at once.

    Returns:
        The base URL the page was requested at (``http://127.0.0.1:8866/``), or ``None``.
    """
    base = os.environ.get("VOILA_BASE_URL") or "/"
    if os.environ.get("VOILA_PREHEAT") == "True":
        voila_utils: Any = importlib.import_module("voila.utils")  # untyped: Any, not a stub
        voila_utils.wait_for_request()  # sets the request's SERVER_NAME, SERVER_PORT, ...
        host = os.environ.get("SERVER_NAME") or os.environ.get("VOILA_APP_IP") or "127.0.0.1"
        port = os.environ.get("SERVER_PORT") or os.environ.get("VOILA_APP_PORT", "")
        return f"http://{host}{':' + port if port else ''}{base}"
    request = urlsplit(os.environ.get("VOILA_REQUEST_URL", ""))
    if request.scheme in ("http", "https") and request.netloc:
        return f"{request.scheme}://{request.netloc}{base}"
    return None
