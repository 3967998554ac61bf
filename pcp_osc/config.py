"""One TOML file, typed and validated; every key has a default.

Each section is a dataclass below. ``load_config(path)`` reads the file, refuses
any key it does not know, checks every value's type and range, and raises
:class:`ConfigError` naming the key, the value and what is allowed. With no file,
``Config()`` is the whole default show: demo source when no camera, OSC to
TouchDesigner on 127.0.0.1:9011, control on UDP 9010.

Field metadata understood by the validator:
  ``range=(lo, hi)``     inclusive numeric range
  ``choices=(...)``      allowed values
  ``check=callable``     extra check, returns an error string or None
  ``doc="..."``          one line shown by ``pcp-osc config --defaults``
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .emotions import EMOTIONS, UnknownEmotion, parse_emotion


class ConfigError(ValueError):
    """A wrong key or value in the configuration; the message says what is allowed."""


def _emotion_check(v: Any) -> str | None:
    try:
        parse_emotion(v)
    except UnknownEmotion as e:
        return str(e)
    return None


def _region_check(v: Any) -> str | None:
    from .perception.region import polygon_problem

    return polygon_problem(v)


def _hostport_check(v: Any) -> str | None:
    try:
        parse_hostport(v)
    except ValueError as e:
        return str(e)
    return None


def parse_hostport(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """"HOST:PORT" or "PORT" -> (host, port). Raises ValueError naming the text."""
    t = str(text).strip()
    host, sep, port = t.rpartition(":")
    if not sep:
        host, port = default_host, t
    host = host.strip("[]") or default_host
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT with a port 1..65535")
    return host, int(port)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def opt(default: Any = dataclasses.MISSING, *, factory: Any = None, doc: str = "", **meta: Any) -> Any:
    """A config field with a default and validator metadata."""
    md = dict(meta, doc=doc)
    if factory is not None:
        return field(default_factory=factory, metadata=md)
    return field(default=default, metadata=md)


# --------------------------------------------------------------------------- sections


@dataclass
class CaptureConfig:
    source: str = opt(
        "auto",
        doc='"auto" (camera 0, else the demo), "demo", a camera index ("0"), a video file, '
        "an image folder, an rtsp:// or http:// URL, or \"browser\" (frames posted by the web page)",
    )
    loop: bool = opt(True, doc="loop a video file or image folder at its end")
    fps: float = opt(30.0, range=(0.5, 240.0), doc="pace for files, folders and the demo")
    width: int = opt(0, range=(0, 7680), doc="ask the camera for this width (0: its default)")
    height: int = opt(0, range=(0, 4320), doc="ask the camera for this height (0: its default)")
    reconnect_min_s: float = opt(0.5, range=(0.05, 60.0), doc="first wait before reopening a lost camera or stream")
    reconnect_max_s: float = opt(10.0, range=(0.1, 600.0), doc="longest wait between reopen attempts")
    demo_faces: int = opt(6, range=(0, 64), doc="faces in the built-in demo crowd")
    rotate: int = opt(0, choices=(0, 90, 180, 270), doc="turn every picture clockwise by this many degrees before anything looks at it (a camera hung upside down from a truss: 180)")


@dataclass
class ClassifierConfig:
    """[perception.classifier]: the expression model read on each face (the shipped one, or your own ONNX)."""

    model: str = opt("", doc="an ONNX expression model of your own (empty: the shipped FER2013 mini-Xception)")
    classes: list[str] = opt(factory=list, doc="its class names in output order; each must name one of the five emotions (e.g. happiness, surprise, contempt)")
    size_px: int = opt(0, range=(0, 1024), doc="its input side in pixels (0: read from the model)")
    colour: str = opt("auto", choices=("auto", "gray", "rgb", "bgr"), doc="its input colour (auto: gray for 1 channel, rgb for 3)")
    mean: list[float] = opt(factory=list, doc="per-channel mean on 0..1 pixels, e.g. ImageNet's [0.485, 0.456, 0.406] (empty: 0)")
    std: list[float] = opt(factory=list, doc="per-channel std on 0..1 pixels, e.g. [0.229, 0.224, 0.225] (empty: 1)")
    margin: float = opt(0.0, range=(0.0, 1.0), doc="added to each side of the face box, as a share of its longer side")
    square: str = opt("expand", choices=("expand", "pad", "stretch"), doc="expand: a square of the frame around the face; pad: the box padded to a square; stretch: the box resized as it is")
    output: str = opt("auto", choices=("auto", "probabilities", "logits"), doc="what the model returns (auto: logits unless rows are probabilities)")
    mirror: bool = opt(True, doc="average each face with its mirror image (same batch; steadier readings)")
    light: str = opt("stretch", choices=("off", "equalize", "clahe", "stretch"), doc="normalise each face crop's light before the model (stage washes, dim rooms): stretch its range, equalize its histogram, clahe (clip-limited), or off (as read before)")
    noise_floor: float = opt(10.0, range=(0.0, 40.0), doc="also read each face with fixed noise of this sigma added (0..255 scale), readings averaged: a dark camera's grain changes the reading less (0: off)")


# Keys of [perception.classifier] that describe an own model; the shipped one has its own.
_OWN_MODEL_KEYS = ("classes", "size_px", "colour", "mean", "std", "margin", "square", "output")


@dataclass
class PerceptionConfig:
    backend: str = opt("default", choices=("default", "yolo"), doc="default (shipped ONNX models) or yolo")
    weights: str = opt("", doc="YOLO weights (.pt or .onnx) for backend = yolo")
    yolo_mode: str = opt("auto", choices=("auto", "detector", "classifier"), doc="read from the model, or forced; classifier with a detect model: it reads each face crop (its most confident box's classes)")
    yolo_conf: float = opt(0.25, range=(0.001, 0.99), doc="YOLO detector: least class probability to keep a box")
    yolo_iou: float = opt(0.5, range=(0.05, 0.95), doc="YOLO detector: overlap (IoU) above which a weaker box of the same face is dropped")
    device: str = opt("cpu", doc='"cpu", "cuda", "cuda:0", "mps" or "auto"')
    face_threshold: float = opt(0.5, range=(0.01, 0.99), doc="face detector confidence to keep a face")
    min_face_px: int = opt(12, range=(4, 512), doc="smallest face height kept, in frame pixels")
    detect_scale: float = opt(0.5, range=(0.1, 2.0), doc="the whole frame is searched at this scale every frame (0.5: faces from ~64 px are found at once; the detector needs ~30 px)")
    small_faces: str = opt("sweep", choices=("sweep", "full", "off"), doc="faces too small for detect_scale: sweep = live video: known faces are followed every picture and the picture is searched piece by piece (search_s) and whole when it changes or time allows; full = the whole-picture search (coarse to fine, see perception/search.py) on every picture (photographs); off")
    small_face_scale: float = opt(1.6, range=(0.5, 4.0), doc="the smallest face searched for is 32 / this px (1.6: 20 px): live tiles are seen at this scale; the whole-picture search looks for candidates at this x 20/32 (1x) and verifies them")
    search_s: float = opt(2.0, range=(0.2, 60.0), doc="live video: every part of the picture is searched for new faces, small ones included, at least once in this many seconds (at any frame rate)")
    search_budget: float = opt(0.5, range=(0.05, 1.0), doc="live video: share of the time between two pictures a whole-picture search may take; when its measured cost fits, every picture is searched whole (a folder, a phone's browser camera)")
    cut_change: float = opt(0.35, range=(0.01, 1.0), doc="live video: change of the picture's content between two pictures taken as a camera cut (0..1; brightness and contrast, e.g. a lighting cue, do not count; a 3 px/frame pan is ~0.1, a cut ~0.5): the faces' tracks end and the whole picture is searched at once")
    reread_s: float = opt(0.1, range=(0.0, 5.0), doc="live video: each followed face's expression is read again this often (new faces at once; in between a face keeps its latest reading, and the mood smooths each person over mood.face_smoothing_s anyway); 0: every picture")
    track_hold_s: float = opt(0.5, range=(0.0, 10.0), doc="live video: a followed face that is not found again is looked for this long before its track ends (it is not reported meanwhile)")
    region: list[list[float]] = opt(factory=list, check=_region_check, doc="audience region: polygon of 3..64 [x, y] points as fractions of the picture (0..1; [0, 0] top left) in order around the audience, e.g. [[0, 0.35], [1, 0.35], [1, 1], [0, 1]]; nothing outside is searched or counted (empty: the whole picture)")
    region_mask: str = opt("", doc="audience region as a mask image (white = audience, black = not; stretched to the picture); instead of region")
    detect_side: int = opt(1280, range=(160, 4096), doc="longest side the detector sees at once; a larger (scaled) frame is tiled, or shrunk to it when tile = false")
    tile: bool = opt(True, doc="tile frames larger than detect_side instead of shrinking them (keeps small faces in 4K)")
    threads: int = opt(0, range=(0, 64), doc="onnxruntime intra-op threads (0: one per core, at most 4)")
    weights_dir: str = opt("", doc="folder with the shipped ONNX weights (default: the repository's weights/, or $PCP_OSC_WEIGHTS)")
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)


@dataclass
class MoodConfig:
    window_s: float = opt(15.0, range=(1.0, 300.0), doc="cue window length in seconds (the original's 15 s)")
    intent: str = opt("neutral", check=_emotion_check, doc="the performance's intended emotion at start")
    smoothing_s: float = opt(1.5, range=(0.0, 60.0), doc="time constant of the smoothed live stream")
    face_smoothing_s: float = opt(1.0, range=(0.0, 30.0), doc="each followed face's emotion scores are smoothed over this time constant before they count (0: each frame as read)")
    override_timeout_s: float = opt(0.0, range=(0.0, 86400.0), doc="an override without seconds ends after this (0: only on release)")
    min_face_confidence: float = opt(0.0, range=(0.0, 1.0), doc="faces whose top emotion score is below this are ignored")
    intent_confidence: float = opt(0.8, range=(0.0, 1.0), doc="confidence (so brightness) of a cue that the intent fills in")


@dataclass
class PaletteConfig:
    joy: str = opt("#ffd400", doc="joy colour (the original: yellow)")
    anxiety: str = opt("#ffffff", doc="anxiety colour (the original: white)")
    anger: str = opt("#ff6a00", doc="anger colour (the original: orange)")
    sadness: str = opt("#1f4fff", doc="sadness colour (the original: blue)")
    neutral: str = opt("#8a2be2", doc="neutral colour (the original: purple)")
    blend: float = opt(0.0, range=(0.0, 1.0), doc="0: audience colour only, 1: intended emotion's colour only")
    min_brightness: float = opt(0.2, range=(0.0, 1.0), doc="brightness at confidence 0 (1.0 at confidence 1)")
    gamma: float = opt(1.0, range=(0.1, 5.0), doc="confidence -> brightness curve")


@dataclass
class OscConfig:
    prefix: str = opt("/pcp", doc="address prefix of every message")
    target: str = opt("127.0.0.1:9011", check=_hostport_check, doc="TouchDesigner's OSC In (HOST:PORT)")
    extra_targets: list[str] = opt(factory=list, doc="more HOST:PORT receivers of the full address map")
    control_host: str = opt("0.0.0.0", doc="address the show-control receiver binds")
    control_port: int = opt(9010, range=(0, 65535), doc="UDP port for show control (0: pick a free one)")
    allowed_senders: list[str] = opt(factory=list, doc='if set, only these may control the show: IPs, CIDR ranges ("127.0.0.0/8") or host names (resolved once at start)')
    max_bundle_messages: int = opt(32, range=(1, 4096), doc="messages handled from one datagram; a bigger bundle's rest is dropped and counted")
    max_messages_per_s: float = opt(100.0, range=(1.0, 100000.0), doc="show-control messages one sender address may send a second (a one-second burst as well)")
    max_control_cues_per_s: float = opt(4.0, range=(0.1, 100.0), doc="cues show control may cause a second, all senders together; a faster override storm collapses to its latest state")
    max_pongs_per_s: float = opt(10.0, range=(0.1, 1000.0), doc="/pcp/pong replies a second to one sender address; faster pings share one later pong")
    live_rate_hz: float = opt(10.0, range=(0.0, 120.0), doc="live stream messages per second (0: off)")
    heartbeat: bool = opt(True, doc="send /pcp/heartbeat once a second")
    bundle: bool = opt(False, doc="wrap each cue and live frame to target and extra_targets in OSC bundles, each within 512 bytes (routes: options.bundle)")


@dataclass
class GeneratorConfig:
    kind: str = opt("procedural", choices=("procedural", "diffusion", "comfyui", "off"), doc="background generator (comfyui: see [comfyui])")
    width: int = opt(1920, range=(64, 3840), doc="background width in pixels")
    height: int = opt(1080, range=(64, 2160), doc="background height in pixels")
    every_cue: bool = opt(True, doc="make a new background for each cue")
    crossfade_s: float = opt(2.0, range=(0.0, 60.0), doc="crossfade time for streaming sinks")
    seed: int = opt(-1, range=(-1, 2**31 - 1), doc="fixed seed (-1: a new seed each time, recorded)")
    # Stable Diffusion (kind = "diffusion"); see pcp_osc/backgrounds/diffusion.py.
    model: str = opt("", doc="diffusers folder, .safetensors/.ckpt file, or a hub id cached on this machine")
    model_config: str = opt("", doc="local diffusers folder (configs and tokenizer) for a single-file model, so nothing is downloaded")
    allow_download: bool = opt(False, doc="let a hub id be downloaded (off: only what is on this machine)")
    device: str = opt("auto", doc='"auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:1" or "mps"')
    dtype: str = opt("auto", choices=("auto", "float16", "bfloat16", "float32"), doc="auto: float16 on cuda/mps, float32 on cpu")
    schedule: str = opt("auto", choices=("auto", "turbo", "lcm", "lcm-lora", "classic"), doc="auto: turbo/lcm from the model name, lcm-lora when lcm_lora is set, else classic")
    steps: int = opt(0, range=(0, 200), doc="denoising steps (0: the schedule's default: turbo 1, lcm 4, classic 25)")
    guidance: float = opt(-1.0, range=(-1.0, 30.0), doc="classifier-free guidance (-1: the schedule's default: turbo 0, lcm 1, classic 7.5)")
    lcm_lora: str = opt("", doc="LCM-LoRA weights file or folder (schedule lcm-lora)")
    tiny_vae: str = opt("", doc="local AutoencoderTiny (TAESD) folder: much faster decoding")
    sd_width: int = opt(512, range=(64, 2048), doc="diffusion image width (multiple of 8); upscaled to width x height")
    sd_height: int = opt(512, range=(64, 2048), doc="diffusion image height (multiple of 8)")
    strength: float = opt(0.6, range=(0.05, 1.0), doc="img2img strength from the procedural background of the same cue (1.0: ignore it)")
    colour_match: float = opt(0.5, range=(0.0, 1.0), doc="pull the output's colour statistics toward the cue's procedural background (0: off)")
    prompt: str = opt(
        "art style background of feeling the emotion of {emotion} with {confidence_pct}% {colour_word}, "
        "{brightness_word} {colour_word} light, mood of {intent} with {intent_colour_word} accents, abstract stage backdrop",
        doc="prompt template; fields: {emotion} {intent} {confidence_pct} {colour_word} {intent_colour_word} {brightness_word} {hex}",
    )
    prompts: dict[str, str] = opt(factory=dict, doc="per-emotion prompt templates, e.g. {joy = \"...\"}; others use prompt")
    negative_prompt: str = opt("text, letters, watermark, logo, people, faces, frame, border", doc="what the image must not show")
    threads: int = opt(0, range=(0, 256), doc="torch CPU threads for diffusion (0: torch default); leave a core to perception")

    def __post_init__(self) -> None:
        from .emotions import parse_emotion as _parse

        for key, template in self.prompts.items():
            try:
                _parse(key)
            except UnknownEmotion as e:
                raise ConfigError(f"generator.prompts: {e}") from None
            if not isinstance(template, str):
                raise ConfigError(f"generator.prompts.{key} = {template!r} must be a string")
        for key in ("sd_width", "sd_height"):
            if getattr(self, key) % 8:
                raise ConfigError(f"generator.{key} = {getattr(self, key)} must be a multiple of 8 (e.g. 512)")


def _server_url_check(v: Any) -> str | None:
    from urllib.parse import urlsplit

    u = urlsplit(str(v).strip())
    try:
        port = u.port
    except ValueError:
        port = -1
    if u.scheme not in ("http", "https") or not u.hostname or port == -1 or u.path not in ("", "/") or u.query:
        return "a ComfyUI server is written http://HOST:PORT (e.g. \"http://127.0.0.1:8188\")"
    return None


@dataclass
class ComfyUIConfig:
    """generator.kind = "comfyui": backgrounds from ComfyUI servers; see pcp_osc/backgrounds/comfyui/."""

    servers: list[str] = opt(factory=lambda: ["http://127.0.0.1:8188"], doc="ComfyUI servers (http://HOST:PORT); the first free one takes the newest cue")
    workflow: str = opt("", doc='workflow exported from ComfyUI with "Save (API)" (.json); nodes titled pcp:prompt, pcp:negative, pcp:seed, pcp:size, pcp:denoise, pcp:colour, pcp:init get the cue\'s values')
    bind: dict[str, Any] = opt(factory=dict, doc='more bindings, value = "NODE_ID.INPUT" or a list of them, e.g. {seed = "3.seed", colour_hex = "12.text"}; values: ' + "prompt negative seed width height denoise colour colour_hex red green blue init emotion intent confidence")
    output: str = opt("", doc="node id whose image is the background (empty: a node titled pcp:output, else SaveImageWebsocket, else the first saved image)")
    width: int = opt(0, range=(0, 3840), doc="size the workflow is asked for (pcp:size; 0: generator.width); the result is scaled to generator.width x height")
    height: int = opt(0, range=(0, 2160), doc="(0: generator.height)")
    denoise: float = opt(0.6, range=(0.0, 1.0), doc="value for pcp:denoise: how far the sampler moves from the init image (1.0: ignore it)")
    init_format: str = opt("jpg", choices=("jpg", "png"), doc="pcp:init upload: jpg (quality 95, ~15x faster to encode at 1080p) or png (lossless)")
    timeout_s: float = opt(120.0, range=(1.0, 3600.0), doc="longest a background may take on a server before it is cancelled and the procedural one stands in")
    connect_timeout_s: float = opt(3.0, range=(0.1, 60.0), doc="longest wait for a server to answer a request")
    retry_min_s: float = opt(0.5, range=(0.05, 60.0), doc="first wait before reconnecting to a server that is down")
    retry_max_s: float = opt(10.0, range=(0.1, 600.0), doc="longest wait between reconnect attempts")


@dataclass
class SinksConfig:
    kinds: list[str] = opt(factory=list, doc='texture sinks: "ndi", "syphon", "spout", "file" (empty: platform default)')
    name: str = opt("pcp-osc", doc="sender name for Syphon, Spout and NDI")
    file_dir: str = opt("", doc="folder for the file sink (empty: a temp folder)")
    file_format: str = opt("png", choices=("png", "jpg"), doc="file sink image format")
    file_keep: int = opt(10, range=(1, 10000), doc="newest files kept by the file sink")
    ndi_extra_ips: list[str] = opt(factory=list, doc="extra IPs for NDI discovery where mDNS is blocked")
    names: dict[str, str] = opt(factory=dict, doc='per-kind sender names that replace `name`, e.g. {ndi = "StageBG"}')
    stream_fps: float = opt(30.0, range=(1.0, 120.0), doc="frames per second NDI, Syphon and Spout re-send the picture at")


@dataclass
class RouteConfig:
    preset: str = opt("custom", doc="eos, grandma3, magicq, qlc, resolume, looks or custom")
    target: str = opt("127.0.0.1:8000", check=_hostport_check, doc="receiver HOST:PORT")
    protocol: str = opt("udp", choices=("udp", "tcp"), doc="udp, or tcp with SLIP framing")
    addresses: list[str] = opt(factory=list, doc="templates like '/eos/chan/1/param/red {r100}'")
    options: dict[str, Any] = opt(factory=dict, doc="preset options (channel, playback, universe, ...)")


@dataclass
class LogConfig:
    path: str = opt("", doc="show log SQLite file (empty: shows/show-YYYYmmdd-HHMMSS.db)")
    enabled: bool = opt(True, doc="write the show log")
    live_sample_hz: float = opt(1.0, range=(0.0, 30.0), doc="live distribution samples per second in the log")


MIN_TOKEN_CHARS = 8  # a fixed dashboard token shorter than this is refused


@dataclass
class WebConfig:
    enabled: bool = opt(False, doc="serve the operator dashboard")
    bind: str = opt("127.0.0.1:8080", check=_hostport_check, doc="HOST:PORT for the dashboard")
    token: str = opt("", doc="control token (empty: a new random one at each start, carried by the address printed then)")
    require_token: bool = opt(True, doc="every /api/ call needs the token, on loopback too (false: no token, allowed only with bind on loopback; osc.allowed_senders then applies to the page's controls)")
    hosts: list[str] = opt(factory=list, doc="more names the dashboard answers to (Host header), e.g. [\"show-laptop.local\"]; its own address, localhost and loopback always work")
    blur_faces: bool = opt(True, doc="blur faces in the preview")
    allow_unblurred: bool = opt(False, doc="let the page's 'blur faces' switch show faces sharp (off: the server blurs them whatever the page asks)")
    tls_cert: str = opt("", doc="PEM certificate: serve HTTPS (a phone's browser camera needs it off localhost)")
    tls_key: str = opt("", doc="PEM private key for tls_cert")
    max_frame_bytes: int = opt(8_000_000, range=(10_000, 100_000_000), doc="largest frame the camera page may post")
    max_frame_pixels: int = opt(8_294_400, range=(10_000, 100_000_000), doc="largest frame in pixels, width x height read from the image header before decoding (3840x2160 = 8294400)")
    max_decodes: int = opt(2, range=(1, 16), doc="camera frames read and decoded at once; more are refused with HTTP 503 and the page tries again")


@dataclass
class PrivacyConfig:
    store_frames: bool = opt(False, doc="write audience frames to disk (off: nothing of the audience is ever written)")
    store_dir: str = opt("", doc="where stored frames go when store_frames is on")
    keep_hours: float = opt(24.0, range=(0.0, 8760.0), doc="delete stored frames older than this")


@dataclass
class Config:
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    mood: MoodConfig = field(default_factory=MoodConfig)
    palette: PaletteConfig = field(default_factory=PaletteConfig)
    osc: OscConfig = field(default_factory=OscConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    comfyui: ComfyUIConfig = field(default_factory=ComfyUIConfig)
    sinks: SinksConfig = field(default_factory=SinksConfig)
    routes: list[RouteConfig] = field(default_factory=list)
    log: LogConfig = field(default_factory=LogConfig)
    web: WebConfig = field(default_factory=WebConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)


# --------------------------------------------------------------------------- validation

# Keys of earlier versions, and what replaced them (an old config gets told, not just refused).
REPLACED_KEYS = {
    ("PerceptionConfig", "sweep_every"): "the small-face search is now paced by time: perception.search_s "
                                         "(every part of the picture searched within this many seconds, default 2)",
    ("PerceptionConfig", "full_search_every"): "the whole-picture search is now planned by time and change: "
                                               "perception.search_s, perception.search_budget and perception.cut_change",
}

_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _check_value(where: str, tp: Any, value: Any, meta: dict) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return _build(tp, value, where)
    if origin in (list, typing.List):
        (item_tp,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list):
            raise ConfigError(f"{where} = {value!r} must be a list")
        items = [_check_value(f"{where}[{i}]", item_tp, v, {}) for i, v in enumerate(value)]
        problem = meta["check"](items) if "check" in meta else None
        if problem:
            raise ConfigError(f"{where} {problem}")
        return items
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} = {value!r} must be a table")
        return dict(value)
    if tp is Any:
        return value
    if isinstance(tp, types.UnionType) or origin is typing.Union:
        return value
    ok = (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (tp is str and isinstance(value, str))
    )
    if tp is str and isinstance(value, int) and not isinstance(value, bool):
        value, ok = str(value), True  # source = 0 means camera 0
    if not ok:
        raise ConfigError(f"{where} = {value!r} must be {_TYPE_WORDS.get(tp, tp)}")
    if tp is float:
        value = float(value)
    if "range" in meta:
        lo, hi = meta["range"]
        if not lo <= value <= hi:
            raise ConfigError(f"{where} = {value!r} is out of range; allowed {lo}..{hi}")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{where} = {value!r} is not allowed; choose one of: {', '.join(map(str, meta['choices']))}")
    if "check" in meta:
        problem = meta["check"](value)
        if problem:
            raise ConfigError(f"{where} = {value!r}: {problem}")
    return value


def _build(cls: type, table: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in table.items():
        path = f"{where}.{key}" if where else key
        if key not in fields and (cls.__name__, key) in REPLACED_KEYS:
            raise ConfigError(f"{path} is no longer used: {REPLACED_KEYS[(cls.__name__, key)]}")
        if key not in fields:
            allowed = ", ".join(fields)
            raise ConfigError(f"unknown key {path!r}; allowed keys{' in [' + where + ']' if where else ''}: {allowed}")
        kwargs[key] = _check_value(path, hints[key], value, dict(fields[key].metadata))
    obj = cls(**kwargs)
    _post_check(obj, where)
    return obj


def _post_check(obj: Any, where: str) -> None:
    if isinstance(obj, PaletteConfig):
        from .types import Colour

        for name in EMOTIONS:
            try:
                Colour.from_hex(getattr(obj, name))
            except ValueError:
                raise ConfigError(
                    f"{where}.{name} = {getattr(obj, name)!r} is not a colour; write it as \"#rrggbb\""
                ) from None
    if isinstance(obj, PerceptionConfig) and obj.region and obj.region_mask:
        raise ConfigError(f"{where}.region and {where}.region_mask are both set; give one of them (a polygon or a mask image)")
    if isinstance(obj, PerceptionConfig) and obj.region_mask:
        from pathlib import Path as _Path

        if not _Path(obj.region_mask).expanduser().is_file():
            raise ConfigError(f"{where}.region_mask = {obj.region_mask!r} does not exist; give a PNG or JPEG "
                              f"(white where the audience is, black elsewhere)")
    if isinstance(obj, ComfyUIConfig):
        if not obj.servers:
            raise ConfigError(f"{where}.servers is empty; list at least one ComfyUI server, e.g. [\"http://127.0.0.1:8188\"]")
        for url in obj.servers:
            problem = _server_url_check(url)
            if problem:
                raise ConfigError(f"{where}.servers: {url!r}: {problem}")
        if len({u.strip().rstrip("/") for u in obj.servers}) != len(obj.servers):
            raise ConfigError(f"{where}.servers lists a server twice: {obj.servers!r}")
        if obj.retry_min_s > obj.retry_max_s:
            raise ConfigError(f"{where}.retry_min_s must not exceed {where}.retry_max_s")
        from .backgrounds.comfyui.workflow import check_bind_table

        problem = check_bind_table(obj.bind)
        if problem:
            raise ConfigError(f"{where}.bind: {problem}")
    if isinstance(obj, ClassifierConfig):
        default = ClassifierConfig()
        for i, name in enumerate(obj.classes):
            try:
                parse_emotion(name)
            except UnknownEmotion as e:
                raise ConfigError(f"{where}.classes: class {i} {name!r} names none of the five emotions: {e}") from None
        if not obj.model:
            set_keys = [k for k in _OWN_MODEL_KEYS if getattr(obj, k) != getattr(default, k)]
            if set_keys:
                raise ConfigError(
                    f"{where}.{set_keys[0]} describes a model of your own, but {where}.model is empty "
                    f"(the shipped model has its own classes and input); set {where}.model = \"your_model.onnx\""
                )
        elif not obj.classes:
            raise ConfigError(f"{where}.model = {obj.model!r} needs {where}.classes: the model's class names in output order")
        channels = {"gray": 1, "rgb": 3, "bgr": 3}.get(obj.colour)
        for key in ("mean", "std"):
            values = getattr(obj, key)
            if values and (len(values) not in (1, 3) or (channels and len(values) not in (1, channels))):
                raise ConfigError(f"{where}.{key} = {values!r} must have 1 value or one per channel ({channels or 3} for {obj.colour})")
        if any(v <= 0 for v in obj.std):
            raise ConfigError(f"{where}.std = {obj.std!r}: every value must be above 0")
    if isinstance(obj, CaptureConfig) and obj.reconnect_min_s > obj.reconnect_max_s:
        raise ConfigError(f"{where}.reconnect_min_s must not exceed {where}.reconnect_max_s")
    if isinstance(obj, WebConfig) and not obj.require_token:
        host = parse_hostport(obj.bind)[0]
        if not _is_loopback(host):
            raise ConfigError(
                f"{where}.require_token = false is allowed only on loopback, but {where}.bind = {obj.bind!r}: "
                "anyone on the show network could drive the show; keep the token, or bind 127.0.0.1")
        if obj.token:
            raise ConfigError(f"{where}.token is set but {where}.require_token = false; keep one of the two")
    if isinstance(obj, WebConfig) and obj.token and (len(obj.token) < MIN_TOKEN_CHARS or obj.token != obj.token.strip()):
        raise ConfigError(
            f"{where}.token is {len(obj.token)} characters{' with spaces at an end' if obj.token != obj.token.strip() else ''}: "
            f"a fixed token needs at least {MIN_TOKEN_CHARS} (anyone who guesses it drives the show); "
            f"leave it empty for a new random one at each start")
    if isinstance(obj, WebConfig):
        for h in obj.hosts:
            text = str(h).strip().strip("[]")
            if not text or "/" in text or (":" in text and not _is_ip(text)) or " " in text:
                raise ConfigError(f"{where}.hosts: {h!r} is not a host name or address; write the name alone, "
                                  "without scheme or port (e.g. \"show-laptop.local\" or \"192.168.1.20\")")
    if isinstance(obj, OscConfig):
        if not obj.prefix.startswith("/") or obj.prefix.endswith("/") or " " in obj.prefix:
            raise ConfigError(f"{where}.prefix = {obj.prefix!r} must start with '/' and not end with '/' (e.g. \"/pcp\")")
        for t in obj.extra_targets:
            problem = _hostport_check(t)
            if problem:
                raise ConfigError(f"{where}.extra_targets: {problem}")
        for key, t in [("target", obj.target)] + [("extra_targets", t) for t in obj.extra_targets]:
            host, port = parse_hostport(t)
            if port == obj.control_port and (_is_loopback(host) or host in (obj.control_host, "0.0.0.0")):
                raise ConfigError(
                    f"{where}.{key} = {t!r} is this daemon's own show-control port ({where}.control_port = {port}): "
                    f"its cues would come back to it as show control. Send cues to TouchDesigner's OSC In "
                    f"(--target, default 127.0.0.1:9011), or move show control (--control-port)")


def config_from_dict(data: dict) -> Config:
    """Build a validated :class:`Config` from a parsed TOML table."""
    return _build(Config, data, "")


def load_config(path: str | Path | None) -> Config:
    """Read and validate a TOML config file; ``None`` gives the defaults."""
    if path is None:
        return Config()
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(p)!r} is not UTF-8 text") from None
    return config_from_dict(data)


def defaults_toml() -> str:
    """Every key with its default and a comment: what `pcp-osc config --defaults` prints."""
    lines = ["# pcp-osc configuration: every key, with its default.", ""]
    cfg = Config()
    for f in dataclasses.fields(Config):
        value = getattr(cfg, f.name)
        if isinstance(value, list):
            lines.append(f"# [[{f.name}]]  (repeatable)")
            for rf in dataclasses.fields(RouteConfig):
                lines.append(f"# {rf.name} = {_toml_value(getattr(RouteConfig(), rf.name))}  # {rf.metadata.get('doc', '')}")
            lines.append("")
            continue
        _section_lines(lines, f.name, value)
    return "\n".join(lines)


def _section_lines(lines: list[str], name: str, value: Any) -> None:
    """One [section] with every key; a nested table ([perception.classifier]) after its parent's keys."""
    lines.append(f"[{name}]")
    nested = []
    for sf in dataclasses.fields(value):
        sub = getattr(value, sf.name)
        if dataclasses.is_dataclass(sub):
            nested.append((f"{name}.{sf.name}", sub))
            continue
        doc = sf.metadata.get("doc", "")
        lines.append(f"{sf.name} = {_toml_value(sub)}" + (f"  # {doc}" if doc else ""))
    lines.append("")
    for sub_name, sub in nested:
        _section_lines(lines, sub_name, sub)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return repr(v)
