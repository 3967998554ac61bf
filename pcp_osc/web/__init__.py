"""The operator's web dashboard and the browser camera page (aiohttp).

``WebDashboard(daemon, web_cfg)`` is a daemon part (start/stop). See server.py.
"""

from .server import WebDashboard

__all__ = ["WebDashboard"]
