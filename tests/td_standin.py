"""STAND-IN for TouchDesigner's Python API -- TouchDesigner cannot run on this machine
(no GPU, no display, no licence, Linux). It is just enough of ``td`` for
touchdesigner/build_pcp_osc.py to run outside TouchDesigner and leave a record of
what it built: operators (by TouchDesigner type name), parameters set, expressions,
connections, text of DATs, tables, saves, OSC sent.

Each operator type knows only the parameters listed in KNOWN_PARAMETERS, taken from
Derivative's documentation pages of those operators (derivative.ca/UserGuide/<Name>).
Asking for any other parameter raises AttributeError, as TouchDesigner does, so a
misspelt parameter in the build script fails the tests here instead of on show day.

What the real API returns is modelled where the build depends on it:
  * versions: KNOWN_PARAMETERS is TouchDesigner 2023 and later; ``Network(td="2022")``
    gives the 2022 names (Constant CHOP ``name0``/``value0`` before the 2023 rename to
    ``const0name``/``const0value``; no OSC In CHOP ``stripsegments``);
  * ``Par.menuNames`` is a list only for menu parameters (MENU_PARAMETERS) and None for
    every other parameter, as in TouchDesigner;
  * ``project.save()`` returns whether the file was written (``Project.save_result``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KNOWN_PARAMETERS: dict[str, set[str]] = {
    "baseCOMP": set(),
    "oscinCHOP": {"active", "protocol", "netaddress", "port", "localaddress", "queued", "stripsegments"},
    "renameCHOP": {"renamefrom", "renameto"},
    "nullCHOP": set(),
    "selectCHOP": {"chop", "channames", "renameto"},
    "lagCHOP": {"lag1", "lag2", "overshoot1", "overshoot2"},
    "constantCHOP": {"const0name", "const0value", "const1name", "const1value"},
    "textDAT": {"file", "language"},
    "tableDAT": {"file"},
    "oscinDAT": {"protocol", "address", "port", "shared", "active", "callbacks"},
    "oscoutDAT": {"protocol", "address", "port", "shared", "active"},
    "panelexecuteDAT": {"active", "panels", "panelvalue", "offtoon", "ontooff", "whileon", "whileoff", "valuechange"},
    "syphonspoutinTOP": {"active", "sendername"},
    "ndiinTOP": {"active", "name", "extraips", "bandwidth", "hwdecode"},
    "moviefileinTOP": {"file", "reloadpulse", "play", "index"},
    "crossTOP": {"cross"},
    "switchTOP": {"index", "blend"},
    "constantTOP": {"colorr", "colorg", "colorb", "alpha", "outputresolution", "resolutionw", "resolutionh"},
    "multiplyTOP": set(),
    "nullTOP": set(),
    "outTOP": set(),
    "buttonCOMP": {"label", "value0", "buttontype", "buttongroup"},
}

# TouchDesigner 2022: the names that changed in 2023.
TD2022_PARAMETERS: dict[str, set[str]] = {
    "constantCHOP": {"name0", "value0", "name1", "value1"},
    "oscinCHOP": KNOWN_PARAMETERS["oscinCHOP"] - {"stripsegments"},
}

# Parameters that are menus: only these have a list in menuNames (None elsewhere).
MENU_PARAMETERS = {
    ("ndiinTOP", "name"), ("syphonspoutinTOP", "sendername"), ("constantTOP", "outputresolution"),
    ("buttonCOMP", "buttontype"), ("oscinCHOP", "protocol"), ("oscinDAT", "protocol"), ("oscoutDAT", "protocol"),
    ("textDAT", "language"), ("ndiinTOP", "bandwidth"), ("panelexecuteDAT", "panelvalue"),
}

# Number of inputs each operator type takes (TOP/CHOP filters; generators take none).
MAX_INPUTS = {
    "nullCHOP": 1, "renameCHOP": 1, "selectCHOP": 1, "lagCHOP": 1, "crossTOP": 2, "multiplyTOP": 2, "switchTOP": 99,
    "nullTOP": 1, "outTOP": 1,
}


class OpType:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


class ParModeStandIn:
    CONSTANT = "CONSTANT"
    EXPRESSION = "EXPRESSION"


class Par:
    def __init__(self, owner: "Op", name: str) -> None:
        self.owner, self.name = owner, name
        self.val: Any = None
        self.expr: str | None = None
        self.mode = ParModeStandIn.CONSTANT
        self.pulses = 0
        # A menu lists its entries (none found yet: empty); any other parameter has None.
        self.menuNames: list[str] | None = [] if (owner.OPType, name) in MENU_PARAMETERS else None

    def eval(self) -> Any:
        return self.val

    def pulse(self) -> None:
        self.pulses += 1


class Pars:
    def __init__(self, owner: "Op") -> None:
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_pars", {})

    def __getattr__(self, name: str) -> Par:
        owner = object.__getattribute__(self, "_owner")
        if name not in owner.network.parameters[owner.OPType]:
            raise AttributeError(f"{owner.OPType} has no parameter {name!r}")
        pars = object.__getattribute__(self, "_pars")
        if name not in pars:
            pars[name] = Par(owner, name)
        return pars[name]

    def __setattr__(self, name: str, value: Any) -> None:
        getattr(self, name).val = value

    def set_names(self) -> dict[str, Par]:
        return dict(object.__getattribute__(self, "_pars"))


class Cell:
    def __init__(self, table: "Op", r: int, c: int) -> None:
        self.table, self.r, self.c = table, r, c

    @property
    def val(self) -> str:
        return self.table.rows[self.r][self.c]


class Connector:
    def __init__(self, owner: "Op", index: int, is_input: bool) -> None:
        self.owner, self.index, self.is_input = owner, index, is_input

    def connect(self, other: Any) -> None:
        net = self.owner.network
        if self.is_input:
            src = other.owner if isinstance(other, Connector) else other
            net.connections.append((src, self.owner, self.index))
        else:
            assert isinstance(other, Connector) and other.is_input, "an output connects to an input connector"
            net.connections.append((self.owner, other.owner, other.index))


class Connectors:
    def __init__(self, owner: "Op", is_input: bool) -> None:
        self.owner, self.is_input = owner, is_input

    def __getitem__(self, i: int) -> Connector:
        limit = MAX_INPUTS.get(self.owner.OPType, 0) if self.is_input else 1
        if i >= limit:
            raise IndexError(f"{self.owner.OPType} {self.owner.name} has no {'input' if self.is_input else 'output'} {i}")
        return Connector(self.owner, i, self.is_input)


class Op:
    def __init__(self, network: "Network", op_type: str, name: str, parent: "Op | None") -> None:
        self.network, self.OPType, self.name, self.parent_op = network, op_type, name, parent
        self.children: dict[str, Op] = {}
        self.par = Pars(self)
        self.nodeX = self.nodeY = 0
        self.text = ""
        self.rows: list[list[str]] = []
        self.destroyed = False
        self.sent: list[tuple[str, list]] = []
        self.inputConnectors = Connectors(self, True)
        self.outputConnectors = Connectors(self, False)

    @property
    def path(self) -> str:
        return (self.parent_op.path.rstrip("/") if self.parent_op else "") + "/" + self.name

    def create(self, op_type: OpType, name: str) -> "Op":
        assert op_type.name in KNOWN_PARAMETERS, f"stand-in does not know {op_type.name}"
        node = Op(self.network, op_type.name, name, self)
        self.children[name] = node
        self.network.created.append(node)
        return node

    def op(self, name: str) -> "Op | None":
        return self.children.get(name)

    def destroy(self) -> None:
        self.destroyed = True
        if self.parent_op:
            self.parent_op.children.pop(self.name, None)

    # tables
    def clear(self) -> None:
        self.rows = []

    def appendRow(self, values: list[Any]) -> None:
        self.rows.append([str(v) for v in values])

    def row(self, key: str):
        return next((r for r in self.rows if r and r[0] == key), None)

    @property
    def numRows(self) -> int:
        return len(self.rows)

    def _index(self, r: Any) -> int:
        if isinstance(r, int):
            return r
        for i, row in enumerate(self.rows):
            if row and row[0] == r:
                return i
        raise KeyError(r)

    def __getitem__(self, rc: tuple) -> Cell:
        return Cell(self, self._index(rc[0]), rc[1])

    def __setitem__(self, rc: tuple, value: Any) -> None:
        self.rows[self._index(rc[0])][rc[1]] = str(value)

    # OSC Out DAT
    def sendOSC(self, address: str, args: list) -> None:
        self.sent.append((address, list(args)))


@dataclass
class Project:
    folder: str
    saved: list[str] = field(default_factory=list)
    save_result: bool = True  # False: a folder TouchDesigner cannot write to

    def save(self, path: str) -> bool:
        if self.save_result:
            self.saved.append(path)
        return self.save_result


class Network:
    """The TouchDesigner session the build script runs in."""

    def __init__(self, project_folder: str, td: str = "2023") -> None:
        if td not in ("2022", "2023"):
            raise ValueError(f"stand-in models TouchDesigner 2022 and 2023, not {td!r}")
        self.parameters = dict(KNOWN_PARAMETERS) | (TD2022_PARAMETERS if td == "2022" else {})
        self.root = Op(self, "root", "", None)
        self.project1 = Op(self, "containerCOMP", "project1", self.root)
        self.root.children["project1"] = self.project1
        self.created: list[Op] = []
        self.connections: list[tuple[Op, Op, int]] = []
        self.project = Project(project_folder)

    def op(self, path: str) -> Op | None:
        node = self.root
        for part in [p for p in path.split("/") if p]:
            node = node.children.get(part)
            if node is None:
                return None
        return node

    def namespace(self) -> dict[str, Any]:
        ns: dict[str, Any] = {name: OpType(name) for name in KNOWN_PARAMETERS}
        ns.update(op=self.op, project=self.project, ParMode=ParModeStandIn)
        return ns

    def alive(self) -> list[Op]:
        return [n for n in self.created if not n.destroyed]

    def dat_namespace(self, dat: Op, seconds: float = 12.5) -> dict[str, Any]:
        """Globals a DAT's script sees: op() relative to the DAT's parent, absTime."""
        class AbsTime:
            pass

        t = AbsTime()
        t.seconds = seconds  # type: ignore[attr-defined]
        return {"op": lambda name: dat.parent_op.op(name), "absTime": t, "me": dat}


@dataclass
class PanelValue:
    owner: Op
    name: str = "state"
    val: float = 1.0
