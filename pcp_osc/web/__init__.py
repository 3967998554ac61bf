"""The operator's web dashboard and the browser camera page (aiohttp).

``WebDashboard(daemon, web_cfg)`` is a part of the show (pcp_osc/parts.py; show.assemble adds it). See server.py.
"""

from .server import WebDashboard

__all__ = ["WebDashboard"]
