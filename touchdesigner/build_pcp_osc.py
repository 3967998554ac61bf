"""Builds the pcp-osc TouchDesigner network and saves it as pcp_osc.toe.

Run it inside TouchDesigner (a .toe can only be written by TouchDesigner):
  * Textport (Alt+T):
        p = r'C:/path/to/pcp-osc/touchdesigner/build_pcp_osc.py'
        exec(open(p).read(), dict(globals(), __file__=p))
  * or drop this file on the network as a Text DAT and choose "Run Script".
It (re)creates /project1/pcp_osc and saves pcp_osc.toe next to this file (or in the
project folder). See touchdesigner/README.md for the network and its diagram.

The network (all inside /project1/pcp_osc):
  osc_numbers   OSC In CHOP on NUMBERS_PORT (9011, pcp-osc's default TouchDesigner target):
                colour, shares, confidence as channels, the prefix stripped (Strip Segments;
                a Rename CHOP on builds without it) -> numbers -> live (lagged)
  osc_words     OSC In DAT on WORDS_PORT (9012, pcp-osc's osc.extra_targets in
                pcp-osc-touchdesigner.toml): emotion, source, hex, the background file and
                sender, status -> `state` table, `cue_log` table, background reloads
  bg_texture    Syphon Spout In TOP (Syphon on macOS, Spout on Windows), sender SENDER
  bg_ndi        NDI In TOP, source "<machine> (SENDER)", Extra Search IPs NDI_EXTRA_IPS
  bg_file_a/b   Movie File In TOPs: each /pcp/background/path loads the idle one and
                bg_file_fade (Cross TOP) fades over CROSSFADE_S (xfade_target -> xfade Lag CHOP)
  bg            Switch TOP: which background source (settings table, row "source")
  tint          Constant TOP in the live colour; tinted = bg x tint (Multiply TOP);
  lit           Cross TOP from bg to tinted by the "tint" setting; stage (Null TOP) -> out1 (Out TOP)
  buttons       intent_<emotion>, override_<emotion>, release, generate (Button COMPs) ->
                buttons_exec (Panel Execute DAT) -> control_out (OSC Out DAT) to CONTROL_PORT (9010)

Only stock operators; parameters are set through setp(), which fails loudly (naming the
operator and parameter) if this TouchDesigner build lacks one, so a silent half-built
network never reaches a show.
"""

import os
import sys

# --------------------------------------------------------------------------- settings
# Ports and names match pcp-osc's defaults (pcp_osc/config.py; tests check they agree).
NUMBERS_PORT = 9011  # osc.target: the OSC In CHOP
WORDS_PORT = 9012  # osc.extra_targets in pcp-osc-touchdesigner.toml: the OSC In DAT
CONTROL_HOST = '127.0.0.1'  # where pcp-osc runs
CONTROL_PORT = 9010  # osc.control_port
SENDER = 'pcp-osc'  # sinks.name: the Syphon / Spout / NDI sender
NDI_EXTRA_IPS = '127.0.0.1'  # space-separated; add pcp-osc's machine when mDNS is blocked
CROSSFADE_S = 2.0  # generator.crossfade_s, for the file source (streams arrive crossfaded)
TINT = 0.6  # 0: background as is, 1: fully multiplied by the live colour
WIDTH, HEIGHT = 1920, 1080
PREFIX = '/pcp'
EMOTIONS = ('joy', 'anxiety', 'anger', 'sadness', 'neutral')  # pcp_osc/emotions.py's order; a test keeps them equal

# OSC addresses this network reads and sends (every one is in docs/OSC.md).
NUMBER_ADDRESSES = [
    PREFIX + '/live/color/r', PREFIX + '/live/color/g', PREFIX + '/live/color/b',
    PREFIX + '/live/faces', PREFIX + '/live/valence', PREFIX + '/live/arousal',
] + [PREFIX + '/live/' + e for e in EMOTIONS] + [
    PREFIX + '/cue/color/r', PREFIX + '/cue/color/g', PREFIX + '/cue/color/b',
    PREFIX + '/cue/confidence', PREFIX + '/cue/index', PREFIX + '/cue/id', PREFIX + '/heartbeat',
]
WORD_ADDRESSES = [
    PREFIX + '/cue/id', PREFIX + '/cue/emotion', PREFIX + '/cue/source', PREFIX + '/cue/confidence',
    PREFIX + '/cue/hex', PREFIX + '/background/id', PREFIX + '/background/path', PREFIX + '/background/sender',
    PREFIX + '/status', PREFIX + '/heartbeat',
]
CONTROL_ADDRESSES = [PREFIX + '/intent', PREFIX + '/override', PREFIX + '/release', PREFIX + '/generate']


def default_source():
    # Syphon on a Mac and Spout on Windows share textures on one machine; elsewhere NDI.
    return 'texture' if sys.platform in ('darwin', 'win32') else 'ndi'


SOURCES = ('texture', 'ndi', 'file')  # the bg Switch TOP's inputs, in order


# --------------------------------------------------------------------------- helpers

def setp(node, name, value):
    """Set a parameter; fail with the operator and parameter named if it does not exist."""
    par = getattr(node.par, name, None)
    if par is None:
        raise AttributeError('pcp-osc build: %s (%s) has no parameter %r; is this TouchDesigner too old?'
                             % (node.path, node.OPType, name))
    par.val = value
    return par


def setp_any(node, names, value):
    """Set the first of ``names`` this build has (names that moved between TouchDesigner versions)."""
    for name in names:
        if getattr(node.par, name, None) is not None:
            return setp(node, name, value)
    raise AttributeError('pcp-osc build: %s has none of the parameters %s' % (node.path, names))


def has_par(node, name):
    return getattr(node.par, name, None) is not None


def expr(node, name, expression):
    par = setp(node, name, 0)
    par.expr = expression
    par.mode = ParMode.EXPRESSION
    return par


def place(node, col, row):
    node.nodeX, node.nodeY = col * 200, -row * 140
    return node


def wire(src, dst, index=0):
    dst.inputConnectors[index].connect(src)


# --------------------------------------------------------------------------- scripts put in DATs

WORDS_CALLBACKS = '''# OSC In DAT callbacks (built by build_pcp_osc.py): words from pcp-osc.
EMOTIONS = %(emotions)r
PREFIX = %(prefix)r

def remember(key, value):
    state = op('state')
    if state.row(key) is None:
        state.appendRow([key, value])
    else:
        state[key, 1] = value

def xfade_value():
    # The Constant CHOP's first value: const0value since TouchDesigner 2023, value0 before.
    target = op('xfade_target')
    par = getattr(target.par, 'const0value', None)
    return par if par is not None else target.par.value0

def load_background(path):
    # Load the new picture into the Movie File In that is not showing, then fade to it.
    value = xfade_value()
    showing_b = float(value.eval()) > 0.5
    idle = op('bg_file_a') if showing_b else op('bg_file_b')
    idle.par.file = path
    idle.par.reloadpulse.pulse()
    value.val = 0 if showing_b else 1

def pick_sender(name):
    # NDI lists "MACHINE (name)"; Syphon lists "app:name" or the name. menuNames is None
    # for a parameter that is not a menu (or lists nothing yet): then the name is set as is.
    ndi = op('bg_ndi').par.name
    match = [n for n in (ndi.menuNames or []) if n.endswith('(' + name + ')')]
    if match:
        ndi.val = match[0]
    tex = op('bg_texture').par.sendername
    match = [n for n in (tex.menuNames or []) if n == name or n.endswith(':' + name)]
    tex.val = match[0] if match else name

def onReceiveOSC(dat, rowIndex, message, byteData, timeStamp, address, args, peer):
    if not address.startswith(PREFIX + '/') or address.startswith(PREFIX + '/live/'):
        return
    key = address[len(PREFIX) + 1:]
    value = args[0] if args else ''
    if address == PREFIX + '/background/path':
        load_background(str(value))
    elif address == PREFIX + '/background/sender':
        pick_sender(str(value))
    remember(key, str(value))
    if address == PREFIX + '/cue/hex':
        # The last message of a cue (docs/OSC.md order): log the cue.
        s = op('state')
        get = lambda k: s[k, 1].val if s.row(k) is not None else ''
        op('cue_log').appendRow([absTime.seconds, get('cue/id'), get('cue/emotion'), get('cue/source'),
                                 get('cue/confidence'), get('cue/hex')])
    return
''' % {'emotions': EMOTIONS, 'prefix': PREFIX}

BUTTON_CALLBACKS = '''# Panel Execute DAT (built by build_pcp_osc.py): the show-control buttons -> pcp-osc.
PREFIX = %(prefix)r

def onOffToOn(panelValue):
    name = panelValue.owner.name
    kind, _, emotion = name.partition('_')
    out = op('control_out')
    if kind == 'intent':
        out.sendOSC(PREFIX + '/intent', [emotion])
    elif kind == 'override':
        out.sendOSC(PREFIX + '/override', [emotion])
    elif kind == 'release':
        out.sendOSC(PREFIX + '/release', [])
    elif kind == 'generate':
        out.sendOSC(PREFIX + '/generate', [])
    return
''' % {'prefix': PREFIX}


# --------------------------------------------------------------------------- the network

def build(parent_path='/project1', save_path=None):
    root = op(parent_path)
    old = root.op('pcp_osc')
    if old is not None:
        old.destroy()
    base = place(root.create(baseCOMP, 'pcp_osc'), 0, 0)

    # Numbers: OSC In CHOP, channel "live/color/r" for /pcp/live/color/r -> pick and smooth.
    numbers_in = place(base.create(oscinCHOP, 'osc_numbers'), 0, 0)
    setp(numbers_in, 'port', NUMBERS_PORT)
    if has_par(numbers_in, 'stripsegments'):
        # Strip Segments drops the prefix's segments from the channel names.
        setp(numbers_in, 'stripsegments', len(PREFIX.strip('/').split('/')))
        numbers = place(base.create(nullCHOP, 'numbers'), 1, 0)
    else:  # a build without Strip Segments: rename "pcp/live/color/r" to "live/color/r"
        numbers = place(base.create(renameCHOP, 'numbers'), 1, 0)
        setp(numbers, 'renamefrom', PREFIX.strip('/') + '/*')
        setp(numbers, 'renameto', '*')
    wire(numbers_in, numbers)
    live_pick = place(base.create(selectCHOP, 'live_pick'), 2, 0)
    wire(numbers, live_pick)
    setp(live_pick, 'channames', ' '.join(a[len(PREFIX) + 1:] for a in NUMBER_ADDRESSES if '/live/' in a))
    live = place(base.create(lagCHOP, 'live'), 3, 0)
    wire(live_pick, live)
    setp(live, 'lag1', 0.3)
    setp(live, 'lag2', 0.3)
    cue_pick = place(base.create(selectCHOP, 'cue_numbers'), 2, 1)
    wire(numbers, cue_pick)
    setp(cue_pick, 'channames', ' '.join(a[len(PREFIX) + 1:] for a in NUMBER_ADDRESSES if '/live/' not in a))

    # Words: OSC In DAT with callbacks -> state, cue log, background loading.
    callbacks = place(base.create(textDAT, 'osc_words_callbacks'), 0, 3)
    callbacks.text = WORDS_CALLBACKS
    words_in = place(base.create(oscinDAT, 'osc_words'), 0, 2)
    setp(words_in, 'port', WORDS_PORT)
    setp(words_in, 'callbacks', callbacks.name)
    state = place(base.create(tableDAT, 'state'), 1, 2)
    state.clear()
    state.appendRow(['key', 'value'])
    log = place(base.create(tableDAT, 'cue_log'), 1, 3)
    log.clear()
    log.appendRow(['time_s', 'cue', 'emotion', 'source', 'confidence', 'hex'])
    settings = place(base.create(tableDAT, 'settings'), 1, 4)
    settings.clear()
    settings.appendRow(['source', default_source()])
    settings.appendRow(['tint', str(TINT)])

    # Background sources.
    texture = place(base.create(syphonspoutinTOP, 'bg_texture'), 4, 0)
    setp(texture, 'sendername', SENDER)
    ndi = place(base.create(ndiinTOP, 'bg_ndi'), 4, 1)
    setp(ndi, 'extraips', NDI_EXTRA_IPS)
    file_a = place(base.create(moviefileinTOP, 'bg_file_a'), 4, 2)
    file_b = place(base.create(moviefileinTOP, 'bg_file_b'), 4, 3)
    xfade_target = place(base.create(constantCHOP, 'xfade_target'), 3, 2)
    # Constant CHOP: const0name/const0value since TouchDesigner 2023, name0/value0 before.
    setp_any(xfade_target, ('const0name', 'name0'), 'cross')
    setp_any(xfade_target, ('const0value', 'value0'), 0)
    xfade = place(base.create(lagCHOP, 'xfade'), 3, 3)
    wire(xfade_target, xfade)
    setp(xfade, 'lag1', CROSSFADE_S)
    setp(xfade, 'lag2', CROSSFADE_S)
    file_fade = place(base.create(crossTOP, 'bg_file_fade'), 5, 2)
    wire(file_a, file_fade, 0)
    wire(file_b, file_fade, 1)
    expr(file_fade, 'cross', "op('xfade')['cross']")
    bg = place(base.create(switchTOP, 'bg'), 6, 1)
    wire(texture, bg, 0)
    wire(ndi, bg, 1)
    file_fade.outputConnectors[0].connect(bg.inputConnectors[2])
    expr(bg, 'index', "%r.index(op('settings')['source', 1].val)" % (SOURCES,))

    # Light the picture with the live colour.
    tint = place(base.create(constantTOP, 'tint'), 6, 2)
    setp(tint, 'outputresolution', 'custom')
    setp(tint, 'resolutionw', WIDTH)
    setp(tint, 'resolutionh', HEIGHT)
    for ch in 'rgb':
        expr(tint, 'color' + ch, "op('live')['live/color/%s'] or 0" % ch)
    tinted = place(base.create(multiplyTOP, 'tinted'), 7, 2)
    wire(bg, tinted, 0)
    wire(tint, tinted, 1)
    lit = place(base.create(crossTOP, 'lit'), 8, 1)
    wire(bg, lit, 0)
    wire(tinted, lit, 1)
    expr(lit, 'cross', "float(op('settings')['tint', 1].val)")
    stage = place(base.create(nullTOP, 'stage'), 9, 1)
    wire(lit, stage)
    out = place(base.create(outTOP, 'out1'), 10, 1)
    wire(stage, out)

    # Show control: buttons -> Panel Execute -> OSC Out DAT to pcp-osc's control port.
    control_out = place(base.create(oscoutDAT, 'control_out'), 0, 6)
    setp_any(control_out, ('netaddress', 'address'), CONTROL_HOST)
    setp(control_out, 'port', CONTROL_PORT)
    names = ['intent_' + e for e in EMOTIONS] + ['override_' + e for e in EMOTIONS] + ['release', 'generate']
    for i, name in enumerate(names):
        b = place(base.create(buttonCOMP, name), 2 + i % 5, 6 + i // 5)
        setp(b, 'buttontype', 'momentary')
        setp(b, 'label', name.replace('_', ' '))
    buttons_exec = place(base.create(panelexecuteDAT, 'buttons_exec'), 1, 6)
    buttons_exec.text = BUTTON_CALLBACKS
    setp(buttons_exec, 'panels', ' '.join(names))
    setp(buttons_exec, 'panelvalue', 'state')
    setp(buttons_exec, 'offtoon', True)

    if save_path is None:
        here = os.path.dirname(os.path.abspath(globals().get('__file__') or os.path.join(project.folder, 'x')))
        save_path = os.path.join(here, 'pcp_osc.toe')
    # project.save() says False when TouchDesigner could not write the file: never claim it did.
    if project.save(save_path) is False:
        raise RuntimeError('pcp-osc build: built %s but TouchDesigner could not save %s; is the folder '
                           'writable? Save the project by hand (Ctrl+S) or run the script again' % (base.path, save_path))
    print('pcp-osc: built %s and saved %s' % (base.path, save_path))
    return base


BUILT = build()
