"""A tiny Stable Diffusion pipeline from small random components, saved locally.

The real diffusers classes (UNet2DConditionModel, AutoencoderKL, CLIPTextModel,
CLIPTokenizer, schedulers) with a few thousand weights each, so the generator's
real loading and generation code runs in a second on a CPU and nothing is
downloaded. The tokenizer's vocabulary is a byte-level BPE built here.
"""

from __future__ import annotations

import json
from pathlib import Path


def _bytes_to_unicode() -> list[str]:
    # CLIP's (GPT-2's) reversible byte -> printable character map.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_tokenizer(folder: Path) -> None:
    """vocab.json + merges.txt for a CLIPTokenizer: every byte, every byte as a word end,
    a few merges for common letters, and the start/end tokens."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = _bytes_to_unicode()
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    merges = ["e r", "i n", "o r", "a n", "t h", "o n", "e n"]
    for m in merges:
        vocab[m.replace(" ", "")] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def build_tiny_pipeline(seed: int = 0):
    """A StableDiffusionPipeline of tiny random components (VAE scale factor 2)."""
    import tempfile

    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=2,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=2,
            pad_token_id=1,
            vocab_size=1000,
            max_position_embeddings=77,
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer(Path(tmp))
        tokenizer = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"), model_max_length=77)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_pipeline(folder: Path, seed: int = 0) -> Path:
    """Build and save in diffusers layout; returns the folder (with model_index.json)."""
    pipe = build_tiny_pipeline(seed)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def save_tiny_taesd(folder: Path, seed: int = 0) -> Path:
    """A tiny AutoencoderTiny whose scale factor (2) matches the tiny pipeline."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    taesd = AutoencoderTiny(
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1),
        latent_channels=4,
    )
    taesd.save_pretrained(str(folder), safe_serialization=True)
    return folder


# --------------------------------------------------------------------------- one original-layout checkpoint file
#
# The key mapping of diffusers' scripts/convert_diffusers_to_original_stable_diffusion.py
# (diffusers ships only the other direction), generalised from SD 1.x's fixed four
# blocks of two resnets to any block count and layers_per_block read from the
# configs, so the tiny pipeline becomes the kind of .safetensors file VJs download.

_UNET_TOP = {  # diffusers -> original (LDM)
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}
_UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
                "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
_VAE_ATTENTION = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out.",
                  # names of older diffusers releases
                  "query.": "q.", "key.": "k.", "value.": "v.", "proj_attn.": "proj_out."}


def _rename_by_prefix(key: str, prefixes: dict[str, str]) -> str:
    # The longest matching prefix wins ("down_blocks.1.resnets.1." before "down_blocks.1.").
    for old in sorted(prefixes, key=len, reverse=True):
        if key.startswith(old):
            return prefixes[old] + key[len(old):]
    raise KeyError(f"no original-layout name for {key!r}")


def unet_to_original(state: dict, config: dict) -> dict:
    """UNet2DConditionModel keys -> model.diffusion_model.* keys."""
    per_block = config["layers_per_block"]
    n_blocks = len(config["block_out_channels"])
    prefixes = dict(_UNET_TOP)
    for i in range(n_blocks):
        for j in range(per_block):
            sd_index = (per_block + 1) * i + j + 1
            prefixes[f"down_blocks.{i}.resnets.{j}."] = f"input_blocks.{sd_index}.0."
            prefixes[f"down_blocks.{i}.attentions.{j}."] = f"input_blocks.{sd_index}.1."
        if i < n_blocks - 1:
            prefixes[f"down_blocks.{i}.downsamplers.0.conv."] = f"input_blocks.{(per_block + 1) * (i + 1)}.0.op."
        for j in range(per_block + 1):
            sd_index = (per_block + 1) * i + j
            prefixes[f"up_blocks.{i}.resnets.{j}."] = f"output_blocks.{sd_index}.0."
            prefixes[f"up_blocks.{i}.attentions.{j}."] = f"output_blocks.{sd_index}.1."
        if i < n_blocks - 1:
            # the upsampler follows the block's last resnet, and its attention when it has one
            has_attention = any(k.startswith(f"up_blocks.{i}.attentions.") for k in state)
            sd_index = (per_block + 1) * i + per_block
            prefixes[f"up_blocks.{i}.upsamplers.0."] = f"output_blocks.{sd_index}.{2 if has_attention else 1}."
    prefixes["mid_block.resnets.0."] = "middle_block.0."
    prefixes["mid_block.attentions.0."] = "middle_block.1."
    prefixes["mid_block.resnets.1."] = "middle_block.2."
    out = {}
    for key, value in state.items():
        name = key
        if "resnets." in key:
            head, _, tail = key.rpartition("resnets.")
            index, _, rest = tail.partition(".")
            part, _, leaf = rest.partition(".")
            name = f"{head}resnets.{index}.{_UNET_RESNET.get(part, part)}.{leaf}"
        out["model.diffusion_model." + _rename_by_prefix(name, prefixes)] = value
    return out


def vae_to_original(state: dict, config: dict) -> dict:
    """AutoencoderKL keys -> first_stage_model.* keys; attention projections become 1x1 convs."""
    per_block = config["layers_per_block"]
    n_blocks = len(config["block_out_channels"])
    prefixes = {
        "encoder.conv_norm_out.": "encoder.norm_out.",
        "decoder.conv_norm_out.": "decoder.norm_out.",
    }
    for part in ("encoder.conv_in.", "encoder.conv_out.", "decoder.conv_in.", "decoder.conv_out.", "quant_conv.", "post_quant_conv."):
        prefixes[part] = part
    for coder in ("encoder", "decoder"):
        prefixes[f"{coder}.mid_block.attentions.0."] = f"{coder}.mid.attn_1."
        for k in range(2):
            prefixes[f"{coder}.mid_block.resnets.{k}."] = f"{coder}.mid.block_{k + 1}."
    for i in range(n_blocks):
        for j in range(per_block):
            prefixes[f"encoder.down_blocks.{i}.resnets.{j}."] = f"encoder.down.{i}.block.{j}."
        for j in range(per_block + 1):  # the original numbers the decoder's blocks in reverse
            prefixes[f"decoder.up_blocks.{i}.resnets.{j}."] = f"decoder.up.{n_blocks - 1 - i}.block.{j}."
        if i < n_blocks - 1:
            prefixes[f"encoder.down_blocks.{i}.downsamplers.0."] = f"encoder.down.{i}.downsample."
            prefixes[f"decoder.up_blocks.{i}.upsamplers.0."] = f"decoder.up.{n_blocks - 1 - i}.upsample."
    out = {}
    for key, value in state.items():
        name = _rename_by_prefix(key, prefixes).replace("conv_shortcut", "nin_shortcut")
        if ".mid.attn_1." in name:
            head, _, leaf = name.partition(".mid.attn_1.")
            leaf = _rename_by_prefix(leaf, _VAE_ATTENTION)
            name = f"{head}.mid.attn_1.{leaf}"
            if leaf.split(".")[0] in ("q", "k", "v", "proj_out") and leaf.endswith("weight") and value.ndim == 2:
                value = value.reshape(*value.shape, 1, 1)  # linear -> the original's 1x1 conv
        out["first_stage_model." + name] = value
    return out


def text_encoder_to_original(state: dict) -> dict:
    """CLIPTextModel keys -> cond_stage_model.transformer.text_model.* (SD 1.x layout).
    transformers >= 5.6 saves CLIPTextModel without its text_model. wrapper; the
    original file has it."""
    out = {}
    for key, value in state.items():
        if key.endswith("position_ids"):
            continue  # a buffer, not a weight; the loader makes its own
        name = key if key.startswith("text_model.") else "text_model." + key
        out["cond_stage_model.transformer." + name] = value
    return out


def save_single_file(pipe_dir: Path, out_path: Path) -> Path:
    """The diffusers pipeline in ``pipe_dir`` (UNet, VAE, CLIP text encoder) as ONE
    original-layout .safetensors checkpoint at ``out_path``; returns out_path."""
    from safetensors.torch import load_file, save_file

    pipe_dir = Path(pipe_dir)

    def part(sub: str) -> tuple[dict, dict]:
        folder = pipe_dir / sub
        weights = sorted(folder.glob("*.safetensors"))
        if len(weights) != 1:
            raise FileNotFoundError(f"{folder}: expected one .safetensors weights file, found {len(weights)}")
        return load_file(str(weights[0])), json.loads((folder / "config.json").read_text(encoding="utf-8"))

    unet, unet_cfg = part("unet")
    vae, vae_cfg = part("vae")
    text, _ = part("text_encoder")
    state = {**unet_to_original(unet, unet_cfg), **vae_to_original(vae, vae_cfg), **text_encoder_to_original(text)}
    if len(state) != len(unet) + len(vae) + len([k for k in text if not k.endswith("position_ids")]):
        raise AssertionError("two weights were given the same original-layout name")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out_path))
    return out_path
