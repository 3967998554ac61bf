"""Make ultralytics work with no network at all, then import it.

A show machine is often air-gapped, and a test must never fetch anything. Left
alone, ultralytics reaches the network in several places: a DNS probe at import
(``is_online``), pip auto-install of missing requirements, the AMP self-check
(downloads yolo26n.pt on a GPU), the plot font (``check_font`` HEADs and
downloads Arial.ttf on every training run), pretrained weight downloads for a
bare model name, the anonymous analytics and hub/Platform sync. Each is shut
here, and ultralytics keeps its settings file in a folder of ours instead of
``~/.config/Ultralytics``.

Call :func:`ultralytics_offline` (or :func:`configure`) before anything imports
ultralytics; every pcp-osc module that uses ultralytics goes through it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

CONFIG_DIR_ENV = "PCP_OSC_YOLO_DIR"
# ultralytics looks for these names in its settings folder before it downloads them.
_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
_INTEGRATIONS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")

_configured = False


class OfflineError(RuntimeError):
    """ultralytics wanted something from the network; the message says what and how to supply it locally."""


def config_dir() -> Path:
    """Where ultralytics keeps its settings: $PCP_OSC_YOLO_DIR, else a per-user temp folder."""
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        return Path(env).expanduser()
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"pcp-osc-ultralytics-{uid}"


def _set_environment(folder: Path) -> None:
    os.environ["YOLO_OFFLINE"] = "1"  # is_online() -> False without a DNS probe
    os.environ["YOLO_AUTOINSTALL"] = "False"  # never pip-install a missing requirement
    os.environ["YOLO_CONFIG_DIR"] = str(folder)
    os.environ.pop("ULTRALYTICS_API_KEY", None)  # no Platform streaming of training runs


def _local_font() -> Path | None:
    """A TTF that is already on disk: matplotlib's DejaVu Sans (matplotlib is an ultralytics dependency)."""
    try:
        import matplotlib

        font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return font if font.is_file() else None
    except Exception:  # matplotlib missing or broken: plots are off anyway
        return None


def _place_fonts(settings_dir: Path) -> None:
    """Put a local font under the names ultralytics would otherwise download."""
    font = _local_font()
    if font is None:
        return
    for name in _FONT_NAMES:
        target = settings_dir / name
        if not target.exists():
            try:
                shutil.copyfile(font, target)
            except OSError as e:  # read-only folder: check_font's patch below still never downloads
                log.debug("could not place font %s: %s", target, e)


def _patch(ultralytics_pkg: ModuleType) -> None:
    """Replace every function that may fetch from the network with a local-only one."""
    import ultralytics.utils as uu
    import ultralytics.utils.checks as checks
    import ultralytics.utils.downloads as downloads

    for module_name in ("ultralytics.utils", "ultralytics.utils.checks", "ultralytics.utils.events"):
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, "ONLINE"):
            module.ONLINE = False  # in case ultralytics was imported before us

    font = _local_font()

    def check_font(font_name: str = "Arial.ttf"):
        local = uu.USER_CONFIG_DIR / Path(font_name).name
        return local if local.exists() else (font or None)

    def check_amp(model) -> bool:
        # The real check downloads yolo26n.pt to compare fp16/fp32; AMP is for CUDA only.
        try:
            device = next(model.parameters()).device
        except Exception:
            return False
        return device.type == "cuda"

    def attempt_download_asset(file, *args, **kwargs):
        path = Path(str(file).strip().replace("'", ""))
        if path.exists():
            return str(path)
        raise OfflineError(
            f"model file {str(file)!r} not found; pcp-osc never downloads weights. Give a path to a .pt you have, "
            f"or an architecture YAML such as yolo11n.yaml to train from scratch"
        )

    def refuse_download(url="", *args, **kwargs):
        raise OfflineError(f"pcp-osc keeps ultralytics offline; refusing to download {url!r}")

    def is_url(url, check: bool = False) -> bool:
        from urllib import parse

        result = parse.urlparse(str(url))
        return bool(result.scheme and result.netloc) and not check

    checks.check_font = check_font
    checks.check_amp = check_amp
    downloads.attempt_download_asset = attempt_download_asset
    downloads.safe_download = refuse_download
    downloads.download = refuse_download
    downloads.is_url = is_url
    # Modules that imported these names directly keep their own reference: patch those too.
    for module_name, names in {
        "ultralytics.data.utils": ("check_font", "safe_download", "download", "is_url"),
        "ultralytics.utils.plotting": ("check_font",),
        "ultralytics.engine.trainer": ("check_amp",),
        "ultralytics.utils.checks": ("is_url",),
    }.items():
        module = __import__(module_name, fromlist=["_"])
        replacements = {
            "check_font": check_font,
            "check_amp": check_amp,
            "safe_download": refuse_download,
            "download": refuse_download,
            "is_url": is_url,
        }
        for name in names:
            if hasattr(module, name):
                setattr(module, name, replacements[name])

    settings = uu.SETTINGS
    here = uu.USER_CONFIG_DIR  # nothing of ultralytics' lands in the working folder or ~
    wanted = {
        "sync": False, "api_key": "", **{k: False for k in _INTEGRATIONS},
        "datasets_dir": str(here / "datasets"), "weights_dir": str(here / "weights"), "runs_dir": str(here / "runs"),
    }
    wanted = {k: v for k, v in wanted.items() if k in settings and settings[k] != v}
    if wanted:
        settings.update(wanted)


def configure() -> Path:
    """Set ultralytics up to work offline (idempotent). Returns the settings folder in use."""
    global _configured
    folder = config_dir()
    if _configured:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    _set_environment(folder)
    (folder / "Ultralytics").mkdir(parents=True, exist_ok=True)  # ultralytics' own sub-folder
    _place_fonts(folder / "Ultralytics")
    try:
        # ultralytics binds its log handler to sys.stdout at import; bind it to stderr instead, so
        # a command's stdout (JSON from `detect --json`, `export --json`) stays clean
        with contextlib.redirect_stdout(sys.stderr):
            import ultralytics
    except ImportError as e:
        raise ImportError(
            "the YOLO backend needs ultralytics: install the extra with `pip install 'pcp-osc[yolo]'` "
            f"({e})"
        ) from e
    _patch(ultralytics)
    _configured = True
    log.debug("ultralytics %s offline, settings in %s", ultralytics.__version__, folder)
    return folder


def ultralytics_offline() -> ModuleType:
    """The ultralytics package, configured to never touch the network."""
    configure()
    import ultralytics

    return ultralytics
