"""`pcp-osc doctor`: what this machine can do for the show -- cameras, weights, runtimes, extras, sinks,
and the ComfyUI servers the show will use (reachable, version, the workflow's node types and models)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
from pathlib import Path

EXTRAS = [
    ("ultralytics", "yolo", "YOLO backend, training, export"),
    ("torch", "yolo / diffusion", "PyTorch"),
    ("diffusers", "diffusion", "Stable Diffusion backgrounds"),
    ("cyndilib", "ndi", "NDI texture sink"),
    ("syphon", "syphon", "Syphon texture sink (macOS)"),
    ("SpoutGL", "spout", "Spout texture sink (Windows)"),
    ("aiohttp", "web", "web dashboard and browser camera"),
    ("aiohttp", "comfyui", "ComfyUI backgrounds (generator.kind = \"comfyui\")"),
    ("matplotlib", "report", "post-show report plots"),
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check cameras, model weights, runtimes and optional parts")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--cameras", type=int, default=4, metavar="N", help="probe camera indices 0..N-1 (default 4)")
    p.add_argument("--config", default=None, help="TOML config: check its ComfyUI servers and workflow when generator.kind = \"comfyui\"")
    p.add_argument("--server", action="append", default=None, metavar="URL", help="ComfyUI server to check (repeatable; default: the config's)")
    p.add_argument("--workflow", default=None, help="ComfyUI workflow whose node types and models the servers must have")
    p.set_defaults(func=run)


def comfyui(args: argparse.Namespace) -> dict | None:
    """Each ComfyUI server: reachable, version (/system_stats), the workflow's node types and
    models present (/object_info). None when the show does not use ComfyUI."""
    import dataclasses

    from ..config import _server_url_check, load_config

    cfg = load_config(args.config)
    if not (args.server or args.workflow or cfg.generator.kind == "comfyui"):
        return None
    comfy = cfg.comfyui
    for url in args.server or []:
        problem = _server_url_check(url)
        if problem:
            raise ValueError(f"--server {url!r}: {problem}")
    comfy = dataclasses.replace(comfy, servers=list(dict.fromkeys(args.server or comfy.servers)),
                                workflow=args.workflow or comfy.workflow)
    out: dict = {"workflow": comfy.workflow, "workflow_error": "", "warnings": [], "servers": []}
    workflow = None
    if comfy.workflow:
        from ..backgrounds.comfyui.workflow import WorkflowError, load_workflow

        try:
            workflow = load_workflow(comfy.workflow, comfy.bind, comfy.output)
            out["warnings"] = list(workflow.warnings)
            out["node_types"] = workflow.class_types()
        except WorkflowError as e:
            out["workflow_error"] = str(e)
    if importlib.util.find_spec("aiohttp") is None:
        out["workflow_error"] = out["workflow_error"] or "aiohttp is missing: pip install 'pcp-osc[comfyui]'"
        return out
    from ..backgrounds.comfyui import check_servers

    out["servers"] = check_servers(comfy, workflow)
    return out


def cameras(n: int) -> list[dict]:
    from ..capture import camera_available

    return [{"index": i, "available": camera_available(i)} for i in range(n)]


def weights() -> list[dict]:
    try:
        from ..perception.doctor import weights_report
    except ImportError:
        return []
    return weights_report()


def onnx_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def torch_devices() -> dict:
    if importlib.util.find_spec("torch") is None:
        return {"installed": False}
    import torch

    return {
        "installed": True, "version": torch.__version__, "cuda": torch.cuda.is_available(),
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
    }


def extras() -> list[dict]:
    return [{"module": m, "extra": e, "for": what, "present": importlib.util.find_spec(m) is not None} for m, e, what in EXTRAS]


def sinks() -> list[dict]:
    try:
        from ..sinks import sinks_available
    except ImportError:
        return []
    return sinks_available()


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError

    try:
        comfy = comfyui(args)
    except (ConfigError, ValueError) as e:
        print(f"pcp-osc doctor: {e}", file=sys.stderr)
        return 2
    report = {
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.machine()}",
        "cameras": cameras(args.cameras),
        "weights": weights(),
        "onnxruntime_providers": onnx_providers(),
        "torch": torch_devices(),
        "extras": extras(),
        "sinks": sinks(),
    }
    if comfy is not None:
        report["comfyui"] = comfy
    problems = [w for w in report["weights"] if not w.get("ok", w.get("present"))]
    if comfy is not None and (comfy["workflow_error"] or not all(s["ok"] for s in comfy["servers"])):
        problems.append(comfy)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 1 if problems else 0
    ok, bad = "ok ", "-- "
    print(f"pcp-osc doctor: Python {report['python']} on {report['platform']}")
    print("\nCameras")
    found = [c["index"] for c in report["cameras"] if c["available"]]
    print(f"  {ok if found else bad}{'cameras ' + ', '.join(map(str, found)) if found else 'no camera found: pcp-osc run uses the built-in demo crowd'}")
    print("\nModel weights")
    if not report["weights"]:
        print(f"  {bad}no weight report available")
    for w in report["weights"]:
        good = w.get("ok", w.get("present"))
        detail = w.get("message") or w.get("sha256", "")
        print(f"  {ok if good else bad}{Path(str(w.get('file', '?'))).name}: {detail}")
    print("\nRuntimes")
    print(f"  {ok}onnxruntime providers: {', '.join(report['onnxruntime_providers']) or 'none'}")
    t = report["torch"]
    print(f"  {ok if t['installed'] else bad}torch: " + (f"{t['version']} (cuda {t['cuda']}, mps {t['mps']})" if t["installed"] else "not installed"))
    print("\nOptional parts")
    for e in report["extras"]:
        hint = "" if e["present"] else f"  (pip install 'pcp-osc[{e['extra'].split(' ')[0]}]')"
        print(f"  {ok if e['present'] else bad}{e['for']}{hint}")
    if report["sinks"]:
        print("\nTexture sinks on this machine")
        for s in report["sinks"]:
            print(f"  {ok if s.get('available') else bad}{s.get('kind')}: {s.get('detail', s.get('reason', ''))}")
    if comfy is not None:
        print("\nComfyUI")
        if comfy["workflow"]:
            good = not comfy["workflow_error"]
            detail = comfy["workflow_error"] or f"needs {', '.join(comfy.get('node_types', []))}"
            print(f"  {ok if good else bad}workflow {comfy['workflow']}: {detail}")
            for w in comfy["warnings"]:
                print(f"     note: {w}")
        else:
            print(f"  {bad}no workflow given (comfyui.workflow or --workflow): servers checked for reachability only")
        for s in comfy["servers"]:
            if s["ok"]:
                types = f"; all {len(comfy.get('node_types', []))} node types and their models present" if comfy["workflow"] and not comfy["workflow_error"] else ""
                print(f"  {ok}{s['url']}: {s['version']}, {s.get('node_types', 0)} node types{types}")
            else:
                head = f"{s['url']}: {s['version']}: " if s["version"] else f"{s['url']}: "
                print(f"  {bad}{head}{'; '.join(s['problems'])}")
    return 1 if problems else 0
