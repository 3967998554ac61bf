"""pcp-osc: audience emotion to live-show cues over OSC."""

import os as _os

__version__ = "0.1.0"

# onnxruntime (1.32 here) opens a telemetry store in ~/.cache/Microsoft/DeveloperTools
# the moment it is imported, recording events that name this process. A show machine
# sends and keeps nothing it was not asked to: telemetry is off before any part of
# pcp-osc imports onnxruntime (an operator's own ORT_DISABLE_TELEMETRY still wins).
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
