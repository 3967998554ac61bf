"""pcp-osc: audience emotion to live-show cues over OSC."""

__version__ = "0.1.0"
