"""Benchmarks and simulators for pcp-osc: the commands that print the README's figures.

Kept out of the product package (``pcp_osc``) so the show code reads on its own; shipped in the
same distribution so ``pcp-osc bench`` works from an installed copy.

    perception.py   ``pcp-osc bench``: frames per second, faces found, fer side by side
    daemon.py       frame-to-OSC latency and the daemon's peak memory (used by perception.py)
    backgrounds.py  ``pcp-osc bench --backgrounds``: procedural and Stable Diffusion timings
    comfyui.py      ``pcp-osc bench --backgrounds --comfyui``: ComfyUI round trips, one and two servers
    sinks.py        ``python -m pcp_bench.sinks``: NDI frame latency, OSC route send cost
    showlog.py      ``python -m pcp_bench.showlog``: show-log write cost, report and dashboard times
    dashboard_bomb.py ``python -m pcp_bench.dashboard_bomb``: the daemon's peak memory under a decompression-bomb upload
    showsim.py      ``python -m pcp_bench.showsim OUT.db``: a simulated show log (report preview, tests)
"""
