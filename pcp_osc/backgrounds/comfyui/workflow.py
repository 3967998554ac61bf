"""A ComfyUI workflow (API format) and where the cue's values go in it.

The artist marks nodes in ComfyUI itself by their title (in the API-format file:
each node's ``_meta.title``; one title may carry several marks and other words, e.g.
"Sampler pcp:seed pcp:denoise"); the config may add bindings by ``NODE_ID.INPUT``:

    title          input(s) set                        value
    pcp:prompt     text                                the prompt for the cue (generator.prompt templates)
    pcp:negative   text                                generator.negative_prompt
    pcp:seed       seed, or noise_seed                 the background's seed (recorded, so a look can be made again)
    pcp:size       width and height                    comfyui.width/height, else generator.width/height
    pcp:denoise    denoise                             comfyui.denoise
    pcp:colour     color (EmptyImage's 0xRRGGBB int)   the cue's colour (pcp:color works too)
    pcp:init       image (a LoadImage node)            the procedural background of the same cue, uploaded
    pcp:output     (none)                              this node's image is the background

:func:`load_workflow` reads and checks the file; :meth:`Workflow.check` checks the
bindings against it (at start-up, with a message that names what is missing);
:meth:`Workflow.fill` makes the prompt for one cue.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What a binding sets: value name -> (what it is, the Python type ComfyUI wants).
VALUES = {
    "prompt": "the prompt for the cue (text)",
    "negative": "generator.negative_prompt (text)",
    "seed": "the seed (integer)",
    "width": "the width in pixels (integer)",
    "height": "the height in pixels (integer)",
    "denoise": "comfyui.denoise (0..1)",
    "colour": "the cue's colour as an integer 0xRRGGBB (EmptyImage's color)",
    "colour_hex": "the cue's colour as text \"#rrggbb\"",
    "red": "the cue's red 0..255",
    "green": "the cue's green 0..255",
    "blue": "the cue's blue 0..255",
    "init": "the uploaded init image's name (a LoadImage node's image)",
    "emotion": "the cue's emotion (text)",
    "intent": "the performance's intended emotion (text)",
    "confidence": "the cue's confidence 0..1",
}

# Title -> [(value, input names that take it; the first present is used)].
TITLES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "pcp:prompt": [("prompt", ("text", "text_g", "prompt"))],
    "pcp:negative": [("negative", ("text", "text_g", "prompt"))],
    "pcp:seed": [("seed", ("seed", "noise_seed"))],
    "pcp:size": [("width", ("width",)), ("height", ("height",))],
    "pcp:denoise": [("denoise", ("denoise",))],
    "pcp:colour": [("colour", ("color", "colour"))],
    "pcp:color": [("colour", ("color", "colour"))],
    "pcp:init": [("init", ("image",))],
}
OUTPUT_TITLE = "pcp:output"
# Nodes whose images come back to the client (SaveImageWebsocket streams them on the WebSocket).
IMAGE_OUTPUT_TYPES = ("SaveImageWebsocket", "SaveImage", "PreviewImage")
WEBSOCKET_OUTPUT = "SaveImageWebsocket"


class WorkflowError(ValueError):
    """The workflow file or a binding is wrong; the message says what to change."""


@dataclass(frozen=True)
class Target:
    node: str
    input: str
    why: str  # "title pcp:seed" or "comfyui.bind"

    def __str__(self) -> str:
        return f"{self.node}.{self.input}"


def tags(title: str) -> list[str]:
    """The pcp: marks in a node title ("pcp:seed", or "Sampler pcp:seed pcp:denoise"), lower case."""
    return [m.lower() for m in re.findall(r"pcp:[A-Za-z_]+", title or "")]


def _targets(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        items = list(value)
    else:
        raise WorkflowError(f"{where} = {value!r} must be \"NODE_ID.INPUT\" or a list of them")
    for t in items:
        node, dot, name = t.strip().partition(".")
        if not dot or not node or not name:
            raise WorkflowError(f"{where} = {t!r} is not NODE_ID.INPUT (e.g. \"3.seed\")")
    return [t.strip() for t in items]


def check_bind_table(bind: dict) -> str | None:
    """The config's comfyui.bind table on its own (names and forms); None when fine."""
    for key, value in bind.items():
        if key not in VALUES:
            return f"unknown value {key!r}; allowed: {', '.join(VALUES)}"
        try:
            _targets(value, key)
        except WorkflowError as e:
            return str(e)
    return None


@dataclass
class Workflow:
    path: str
    nodes: dict[str, dict]
    bindings: dict[str, list[Target]] = field(default_factory=dict)  # value name -> inputs it sets
    output_node: str = ""  # node id whose image is the background ("" : the first image saved)
    warnings: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ reading

    def title(self, node_id: str) -> str:
        meta = self.nodes[node_id].get("_meta")
        return str(meta.get("title", "")) if isinstance(meta, dict) else ""

    def class_types(self) -> list[str]:
        return sorted({n["class_type"] for n in self.nodes.values()})

    def describe(self, node_id: str) -> str:
        title = self.title(node_id)
        return f"node {node_id} ({self.nodes[node_id]['class_type']}{', ' + repr(title) if title else ''})"

    @property
    def streams_output(self) -> bool:
        """True when the background comes over the WebSocket (a SaveImageWebsocket node)."""
        return bool(self.output_node) and self.nodes[self.output_node]["class_type"] == WEBSOCKET_OUTPUT

    @property
    def needs_init(self) -> bool:
        return bool(self.bindings.get("init"))

    # ------------------------------------------------------------------ checking

    def bind(self, bind_table: dict | None = None, output: str = "") -> "Workflow":
        """Find every binding (titles, then the config's table) and the output node.
        Raises WorkflowError naming what is missing or wrong."""
        bindings: dict[str, list[Target]] = {}
        problems: list[str] = []
        for node_id, node in self.nodes.items():
            title = self.title(node_id).strip()
            for key in tags(title):
                if key == OUTPUT_TITLE:
                    continue
                if key not in TITLES:
                    problems.append(
                        f"{self.describe(node_id)}: {key!r} in its title is not known; allowed: "
                        f"{', '.join(t for t in TITLES if t != 'pcp:color')}, {OUTPUT_TITLE}"
                    )
                    continue
                self._bind_title(node_id, key, bindings, problems)

        for value, spec in (bind_table or {}).items():
            if value not in VALUES:
                problems.append(f"comfyui.bind: unknown value {value!r}; allowed: {', '.join(VALUES)}")
                continue
            for t in _targets(spec, f"comfyui.bind.{value}"):
                node_id, _, name = t.partition(".")
                if node_id not in self.nodes:
                    problems.append(f"comfyui.bind.{value} = {t!r}: the workflow has no node {node_id!r} (its nodes: {', '.join(self.nodes)})")
                    continue
                if name not in self.nodes[node_id]["inputs"]:
                    problems.append(
                        f"comfyui.bind.{value} = {t!r}: {self.describe(node_id)} has no input {name!r} "
                        f"(it has: {', '.join(self.nodes[node_id]['inputs']) or 'none'})"
                    )
                    continue
                bindings.setdefault(value, []).append(Target(node_id, name, "comfyui.bind"))
        for value, targets in bindings.items():
            for t in targets:
                other = [v for v, ts in bindings.items() if v != value and any((x.node, x.input) == (t.node, t.input) for x in ts)]
                if other:
                    problems.append(f"{t} is bound to both {value} and {other[0]}")
        if problems:
            raise WorkflowError(f"workflow {self.path!r}: " + "; ".join(dict.fromkeys(problems)))
        if not any(v in bindings for v in ("prompt", "colour", "colour_hex", "red", "green", "blue", "init", "emotion")):
            raise WorkflowError(
                f"workflow {self.path!r} takes nothing from the cue: no node is titled pcp:prompt, pcp:colour or pcp:init "
                "(set the title in ComfyUI: right-click the node, Title) and comfyui.bind binds none of "
                "prompt, colour, colour_hex, red, green, blue, init, emotion"
                + ("; this file has no node titles at all (ComfyUI before 2024 saved none in API files): "
                   "bind by NODE_ID.INPUT, or export it again from a newer ComfyUI"
                   if not any(isinstance(n.get("_meta"), dict) for n in self.nodes.values()) else "")
            )
        self.bindings = bindings
        self.output_node = self._find_output(output)
        self.warnings = []
        if "seed" not in bindings and any("seed" in n["inputs"] or "noise_seed" in n["inputs"] for n in self.nodes.values()):
            self.warnings.append("no pcp:seed: the sampler's seed stays as saved, so the same cue gives the same picture")
        if "init" in bindings:
            for t in bindings["init"]:
                if self.nodes[t.node]["class_type"] != "LoadImage":
                    self.warnings.append(f"pcp:init is on {self.describe(t.node)}, not a LoadImage node")
        return self

    def _bind_title(self, node_id: str, key: str, bindings: dict, problems: list) -> None:
        node = self.nodes[node_id]
        for value, names in TITLES[key]:
            name = next((n for n in names if n in node["inputs"]), None)
            if name is None:
                problems.append(
                    f"{self.describe(node_id)} is marked {key} but has no input "
                    f"{' or '.join(repr(n) for n in names)} (it has: {', '.join(node['inputs']) or 'none'})"
                )
                continue
            if isinstance(node["inputs"][name], list):
                problems.append(
                    f"{self.describe(node_id)}: input {name!r} is wired to another node's output; "
                    f"{key} needs it as a widget value (convert the input back to a widget in ComfyUI)"
                )
                continue
            bindings.setdefault(value, []).append(Target(node_id, name, f"title {key}"))

    def _find_output(self, output: str) -> str:
        if output:
            if output not in self.nodes:
                raise WorkflowError(f"comfyui.output = {output!r}: the workflow has no such node (its nodes: {', '.join(self.nodes)})")
            return output
        marked = [i for i in self.nodes if OUTPUT_TITLE in tags(self.title(i))]
        if len(marked) > 1:
            raise WorkflowError(f"workflow {self.path!r}: {len(marked)} nodes are titled {OUTPUT_TITLE} ({', '.join(marked)}); mark one")
        if marked:
            return marked[0]
        outputs = [i for i, n in self.nodes.items() if n["class_type"] in IMAGE_OUTPUT_TYPES]
        if not outputs:
            # A custom output node may still report images in /history; take the first one then.
            self.warnings.append(
                "no SaveImage, PreviewImage or SaveImageWebsocket node: the first image the server reports is used"
            )
            return ""
        ws = [i for i in outputs if self.nodes[i]["class_type"] == WEBSOCKET_OUTPUT]
        if ws:
            return ws[0]
        return outputs[0]

    # ------------------------------------------------------------------ filling

    def fill(self, values: dict[str, Any]) -> dict:
        """The prompt to queue: a copy of the workflow with every bound input set.
        ``values`` holds at least the bound value names; ``_meta`` stays (ComfyUI ignores it)."""
        prompt = copy.deepcopy(self.nodes)
        for value, targets in self.bindings.items():
            if value not in values:
                raise WorkflowError(f"no value for {value} (bound to {', '.join(map(str, targets))})")
            for t in targets:
                prompt[t.node]["inputs"][t.input] = values[value]
        return prompt


def load_workflow(path: str | Path, bind_table: dict | None = None, output: str = "") -> Workflow:
    """Read an API-format workflow file and check its bindings. WorkflowError says what is wrong."""
    text_path = str(path)
    if not text_path:
        raise WorkflowError(
            "comfyui.workflow is empty: export your workflow from ComfyUI with \"Save (API)\" "
            "(enable the dev mode options in ComfyUI's settings to see it) and give its path"
        )
    p = Path(text_path).expanduser()
    if not p.is_file():
        raise WorkflowError(f"workflow file {text_path!r} does not exist (comfyui.workflow / --workflow)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise WorkflowError(f"workflow file {text_path!r} is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise WorkflowError(f"workflow file {text_path!r} is not valid JSON: {e}") from None
    return parse_workflow(data, text_path).bind(bind_table, output)


def parse_workflow(data: Any, path: str = "<workflow>") -> Workflow:
    """Check the shape of an API-format workflow (no bindings yet)."""
    if isinstance(data, dict) and "prompt" in data and isinstance(data["prompt"], dict) and "nodes" not in data:
        data = data["prompt"]  # a /prompt request body saved whole
    if isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data:
        raise WorkflowError(
            f"workflow file {path!r} is in ComfyUI's UI format (it has 'nodes' and 'links'); "
            "export it with \"Save (API)\" instead (enable the dev mode options in ComfyUI's settings to see it)"
        )
    if not isinstance(data, dict) or not data:
        raise WorkflowError(f"workflow file {path!r} is not an API-format workflow: expected an object of nodes by id")
    nodes: dict[str, dict] = {}
    for node_id, node in data.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str) or not isinstance(node.get("inputs"), dict):
            raise WorkflowError(
                f"workflow file {path!r}: node {node_id!r} has no class_type and inputs; "
                "is this an API-format file (\"Save (API)\")?"
            )
        nodes[str(node_id)] = node
    for node_id, node in nodes.items():
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int) and str(value[0]) not in nodes:
                raise WorkflowError(
                    f"workflow file {path!r}: node {node_id} input {name!r} is wired to node {value[0]!r}, which is not in the file"
                )
    return Workflow(path=path, nodes=nodes)
