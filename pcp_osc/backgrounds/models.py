"""Finding the Stable Diffusion model on this machine, before the generator loads it: what
``generator.model`` names (a diffusers folder, one checkpoint file, a cached hub id), a
checkpoint's architecture and configs, the device and precision, and whether it fits in
memory. Nothing here downloads unless ``generator.allow_download`` is on.

Every refusal is a :class:`GeneratorError` whose message says what to change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..config import GeneratorConfig
from . import GeneratorError

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt")

# Besides the weights, a 512x512 generation needs working memory for activations.
WORKING_MEMORY_BYTES = 1.5e9


def pick_device(wanted: str) -> str:
    import torch

    wanted = (wanted or "auto").strip().lower()
    if wanted == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise GeneratorError(f"generator.device = {wanted!r} but no CUDA GPU is available here; use \"auto\" or \"cpu\"")
    if wanted == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise GeneratorError("generator.device = \"mps\" but Apple MPS is not available here; use \"auto\" or \"cpu\"")
    if wanted != "cpu" and not wanted.startswith("cuda") and wanted != "mps":
        raise GeneratorError(f"generator.device = {wanted!r} is not known; use auto, cpu, cuda, cuda:N or mps")
    return wanted


def pick_dtype(wanted: str, device: str):
    import torch

    if wanted == "auto":
        # Half precision halves memory and is 2-4x faster on GPUs; CPUs gain nothing from it.
        return torch.float32 if device == "cpu" else torch.float16
    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[wanted]


def model_kind(model: str) -> tuple[str, str]:
    """("folder" | "file" | "hub", path or id), or GeneratorError for a wrong path."""
    text = (model or "").strip()
    if not text:
        raise GeneratorError(
            "generator.model is empty: set it to a diffusers folder, a .safetensors/.ckpt file, "
            "or a hub id already on this machine (e.g. \"stabilityai/sd-turbo\")"
        )
    p = Path(text).expanduser()
    if p.is_dir():
        if not (p / "model_index.json").is_file():
            raise GeneratorError(
                f"model folder {str(p)!r} is not in diffusers layout (no model_index.json); "
                "point generator.model at the folder that holds model_index.json, or at a .safetensors/.ckpt file"
            )
        return "folder", str(p)
    if p.is_file():
        if p.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise GeneratorError(
                f"model file {str(p)!r} is not a checkpoint; allowed: {', '.join(CHECKPOINT_SUFFIXES)} files or a diffusers folder"
            )
        return "file", str(p)
    looks_like_id = text.count("/") == 1 and not text.startswith((".", "/", "~")) and not p.suffix
    if not looks_like_id:
        raise GeneratorError(f"model path {text!r} does not exist (generator.model)")
    return "hub", text


def _weights_bytes(kind: str, where: str) -> int:
    """On-disk size of the weights that will be loaded (the biggest weight file per component)."""
    p = Path(where)
    if kind == "file":
        return p.stat().st_size
    if kind != "folder":
        return 0
    total = 0
    for sub in p.iterdir():
        if sub.is_dir() and sub.name != "safety_checker":
            sizes = [f.stat().st_size for f in sub.iterdir() if f.suffix in WEIGHT_SUFFIXES]
            total += max(sizes, default=0)
    return total


def _free_memory_bytes(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def check_memory(kind: str, where: str, device: str, dtype) -> None:
    """Refuse before loading when the weights clearly cannot fit: on Linux an over-large
    load is not an exception but the kernel killing the whole daemon mid-show."""
    import torch

    need = _weights_bytes(kind, where)
    if not need:
        return
    if dtype == torch.float32:
        need *= 2  # checkpoints are mostly stored in half precision
    need += WORKING_MEMORY_BYTES
    free = _free_memory_bytes(device) if device != "mps" else need
    if need > free:
        raise GeneratorError(
            f"not enough memory on {device} for {where!r}: needs about {need / 1e9:.1f} GB, "
            f"{free / 1e9:.1f} GB free; try dtype = \"float16\" on a GPU, a smaller model, or the procedural generator"
        )


def out_of_memory(e: BaseException, device: str) -> GeneratorError | None:
    text = str(e).lower()
    if isinstance(e, MemoryError) or "out of memory" in text or "not enough memory" in text or type(e).__name__ == "OutOfMemoryError":
        return GeneratorError(
            f"not enough memory on {device} to generate: {str(e).splitlines()[0][:160] if str(e) else type(e).__name__}; "
            "try smaller sd_width/sd_height, tiny_vae, or float16 on a GPU"
        )
    return None


class _LazySafetensors(Mapping):
    """A checkpoint's tensors read on demand, so naming its architecture does not load it twice."""

    def __init__(self, path: str) -> None:
        from safetensors import safe_open

        self._file = safe_open(path, framework="pt")
        self._keys = list(self._file.keys())
        self._set = set(self._keys)

    def __getitem__(self, key):
        if key not in self._set:
            raise KeyError(key)
        return self._file.get_tensor(key)

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key) -> bool:
        return key in self._set


def single_file_architecture(path: str) -> str:
    """diffusers' name for a checkpoint's architecture ("v1", "v2", "xl_base", ...)."""
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type, load_single_file_checkpoint

    checkpoint = _LazySafetensors(path) if path.lower().endswith(".safetensors") else load_single_file_checkpoint(path)
    return infer_diffusers_model_type(checkpoint)


def single_file_config(path: str, cfg: GeneratorConfig) -> tuple[str, str]:
    """(architecture, local diffusers folder with its configs) for a single checkpoint file."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_DEFAULT_PIPELINE_PATHS

    arch = single_file_architecture(path)
    if cfg.model_config:
        folder = Path(cfg.model_config).expanduser()
        if not (folder / "model_index.json").is_file():
            raise GeneratorError(
                f"generator.model_config = {cfg.model_config!r} is not a diffusers folder (no model_index.json); "
                "it must hold the configs and tokenizer of the checkpoint's architecture"
            )
        return arch, str(folder)
    repo = DIFFUSERS_DEFAULT_PIPELINE_PATHS[arch]["pretrained_model_name_or_path"]
    from huggingface_hub import snapshot_download

    patterns = ["**/*.json", "*.json", "*.txt", "**/*.txt", "**/*.model"]
    try:
        return arch, snapshot_download(repo, allow_patterns=patterns, local_files_only=not cfg.allow_download)
    except Exception:
        raise GeneratorError(
            f"checkpoint {path!r} ({arch}) needs the configs and tokenizer of {repo!r}, which are not on this machine; "
            f"set generator.model_config to a local diffusers folder of that architecture "
            f"(configs only are enough), or allow_download = true once"
        ) from None


def hub_offline(offline: bool) -> None:
    """Keep huggingface_hub off the network unless the operator allowed downloads: even
    with ``local_files_only`` it fetches an "agent harnesses" registry from the Hub while
    building request headers. Its switch is read at import, so set it both ways."""
    if not offline:
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    try:
        from huggingface_hub import constants
    except ImportError:
        return
    constants.HF_HUB_OFFLINE = True
    constants.HF_HUB_DISABLE_TELEMETRY = True
