"""Check the `qlc` route preset against a real QLC+ (Debian's qlcplus, headless).

    unshare -rn sh -c 'ip link set lo up && exec .venv/bin/python tools/qlc_check.py'

Writes a QLC+ workspace with one Virtual Console slider per preset address (Level mode on a
generic dimmer channel), bound by hand to the input channel that pcp_osc.routes.qlc_channel
computes for the address -- exactly what docs/routes.md tells the operator to type in. Starts
QLC+ (`QT_QPA_PLATFORM=offscreen qlcplus -w -p -o WORKSPACE`), sends cues through the real
route sender (one message per packet, then bundled), and reads the DMX channels back over
QLC+'s web socket. Prints one line per cue and address: sent, expected, what QLC+ output.
Exit status 0 when every value arrived exactly.

Runs in a private network namespace: QLC+ announces itself (OS2L, Art-Net) on the network.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pcp_osc.config import RouteConfig  # noqa: E402
from pcp_osc.routes import RouteSender, compile_route, qlc_channel, sample_cue  # noqa: E402
from pcp_osc.types import Colour  # noqa: E402

WEB_PORT = 9999  # QLC+'s web access (fixed)
QLC_PORT = 7700  # universe 1


LOOK_FIXTURE_ADDRESS = 16  # DMX 17..21: one channel per emotion, set by that emotion's scene


def workspace(addresses: list[str], look_addresses: list[str]) -> str:
    """Sliders (Level) for every address on fixture 0; and for looks mode one scene per emotion
    (its own channel of fixture 1 at full) on a Flash button bound to the emotion's address."""
    scenes = "".join(f"""
  <Function ID="{k}" Type="Scene" Name="look {k}"><Speed FadeIn="0" FadeOut="0" Duration="0"/><FixtureVal ID="1">{k},255</FixtureVal></Function>"""
                     for k in range(len(look_addresses)))
    buttons = "".join(f"""
   <Button Caption="{address}" ID="{100 + k}" Icon="">
    <WindowState Visible="True" X="{10 + 70 * k}" Y="230" Width="60" Height="60"/>
    <Appearance><FrameStyle>None</FrameStyle><ForegroundColor>Default</ForegroundColor><BackgroundColor>Default</BackgroundColor><BackgroundImage>None</BackgroundImage><Font>Default</Font></Appearance>
    <Function ID="{k}"/>
    <Action>Flash</Action>
    <Intensity Adjust="False">100</Intensity>
    <Input Universe="0" Channel="{qlc_channel(address)}"/>
   </Button>""" for k, address in enumerate(look_addresses))
    sliders = []
    for i, address in enumerate(addresses):
        sliders.append(f"""
   <Slider Caption="{address}" ID="{i}" WidgetStyle="Slider" InvertedAppearance="false">
    <WindowState Visible="True" X="{10 + 70 * i}" Y="10" Width="60" Height="200"/>
    <Appearance><FrameStyle>None</FrameStyle><ForegroundColor>Default</ForegroundColor><BackgroundColor>Default</BackgroundColor><BackgroundImage>None</BackgroundImage><Font>Default</Font></Appearance>
    <Input Universe="0" Channel="{qlc_channel(address)}"/>
    <SliderMode ValueDisplayStyle="Exact" ClickAndGoType="None" Monitor="false">Level</SliderMode>
    <Level LowLimit="0" HighLimit="255" Value="0"><Channel Fixture="0">{i}</Channel></Level>
    <Playback><Function>4294967295</Function></Playback>
   </Slider>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE Workspace>
<Workspace xmlns="http://www.qlcplus.org/Workspace" CurrentWindow="VirtualConsole">
 <Creator><Name>Q Light Controller Plus</Name><Version>4.12.6</Version><Author>pcp-osc tools/qlc_check.py</Author></Creator>
 <Engine>
  <InputOutputMap>
   <Universe Name="Universe 1" ID="0">
    <Input Plugin="OSC" UID="127.0.0.1" Line="0"/>
   </Universe>
  </InputOutputMap>
  <Fixture>
   <Manufacturer>Generic</Manufacturer><Model>Generic</Model><Mode>Generic</Mode>
   <ID>0</ID><Name>dimmers</Name><Universe>0</Universe><Address>0</Address><Channels>{len(addresses)}</Channels>
  </Fixture>
  <Fixture>
   <Manufacturer>Generic</Manufacturer><Model>Generic</Model><Mode>Generic</Mode>
   <ID>1</ID><Name>looks</Name><Universe>0</Universe><Address>{LOOK_FIXTURE_ADDRESS}</Address><Channels>{len(look_addresses)}</Channels>
  </Fixture>{scenes}
 </Engine>
 <VirtualConsole>
  <Frame Caption="">
   <Appearance><FrameStyle>None</FrameStyle><ForegroundColor>Default</ForegroundColor><BackgroundColor>Default</BackgroundColor><BackgroundImage>None</BackgroundImage><Font>Default</Font></Appearance>{''.join(sliders)}{buttons}
  </Frame>
  <Properties><Size Width="1920" Height="1080"/><GrandMaster ChannelMode="Intensity" ValueMode="Reduce" SliderMode="Normal"/></Properties>
 </VirtualConsole>
</Workspace>
"""


class Qlc:
    """QLC+'s web socket (one connection, kept open: QLC+ does not answer a close quickly)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.session = None
        self.ws = None

    async def _connect(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession()
        try:
            self.ws = await self.session.ws_connect(f"http://127.0.0.1:{WEB_PORT}/qlcplusWS", timeout=5)
        except Exception:
            await self.session.close()
            self.session = None
            raise

    async def _ask(self, text: str) -> str:
        if self.ws is None:
            await self._connect()
        await self.ws.send_str(text)
        while True:
            msg = await self.ws.receive(timeout=5)
            data = str(msg.data)
            if data.startswith("QLC+API|" + text.split("|")[1]):
                return data

    def ask(self, text: str) -> str:
        return self.loop.run_until_complete(self._ask(text))

    def dmx(self, count: int) -> list[int]:
        # QLC+API|getChannelsValues|UNIVERSE(1-based)|START(1-based)|COUNT ->
        # "QLC+API|getChannelsValues|1|v|type|2|v|type|..." (index, value, channel type)
        reply = self.ask(f"QLC+API|getChannelsValues|1|1|{count}").split("|")[2:]
        return [int(reply[i + 1]) for i in range(0, 3 * count, 3)]

    def close(self) -> None:
        if self.session is not None:
            self.loop.run_until_complete(self.session.close())  # drops the socket; no close handshake wait
        self.loop.close()


def wait_for_web(timeout_s: float) -> Qlc:
    deadline = time.monotonic() + timeout_s
    qlc = Qlc()
    last = None
    while time.monotonic() < deadline:
        try:
            qlc.dmx(1)
            return qlc
        except Exception as e:  # not up yet
            last = e
            time.sleep(0.5)
    raise SystemExit(f"QLC+'s web access never answered on {WEB_PORT}: {last}")


def main() -> int:
    if not shutil.which("qlcplus"):
        print("qlcplus is not installed (Debian: apt-get install --no-install-recommends qlcplus)", file=sys.stderr)
        return 2
    colour = compile_route(RouteConfig(preset="qlc", target=f"127.0.0.1:{QLC_PORT}"))
    looks = compile_route(RouteConfig(preset="qlc", target=f"127.0.0.1:{QLC_PORT}", options={"mode": "looks"}))
    addresses = [t.address for t in colour.templates] + [t.address for t in looks.templates]
    home = Path(tempfile.mkdtemp(prefix="qlc-check-"))
    ws = home / "pcp-osc-check.qxw"
    look_addresses = [t.address for t in looks.templates]
    ws.write_text(workspace(addresses, look_addresses), encoding="utf-8")
    print("input channels (QLC+ numbers an OSC path with a 16-bit checksum of it):")
    for a in addresses:
        print(f"  {a:<22} {qlc_channel(a)}")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    proc = subprocess.Popen(["qlcplus", "-w", "-p", "-o", str(ws)], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(home / "qlcplus.log", "w"))
    failures = 0
    qlc = None
    t0 = time.monotonic()
    try:
        qlc = wait_for_web(180)
        print(f"QLC+ web access answered after {time.monotonic() - t0:.1f} s")
        version = subprocess.run(["qlcplus", "--version"], capture_output=True, text=True, env=env).stdout.strip()
        print(f"QLC+ up ({version or 'qlcplus'})")
        plan = [(0, Colour(1.0, 0.831, 0.0), 0.91), (1, Colour(0.7, 0.7, 0.7), 0.55), (2, Colour(1.0, 0.416, 0.0), 0.66),
                (3, Colour(0.122, 0.31, 1.0), 0.40), (4, Colour(0.541, 0.169, 0.886), 0.23)]
        for bundle in (False, True):
            routes = [compile_route(RouteConfig(preset="qlc", target=f"127.0.0.1:{QLC_PORT}", options={"bundle": bundle})),
                      compile_route(RouteConfig(preset="qlc", target=f"127.0.0.1:{QLC_PORT}", options={"bundle": bundle, "mode": "looks"}))]
            for k, rgb, conf in plan:
                cue = sample_cue(k, rgb, confidence=conf, cue_id=k)
                sender = RouteSender(routes)
                sender.start()
                sender.send(cue)
                time.sleep(0.6)
                sender.stop()
                got = qlc.dmx(LOOK_FIXTURE_ADDRESS + len(look_addresses))
                sent = [m for r in routes for m in r.messages(cue)]
                for i, (address, args) in enumerate(sent):
                    code, value = args[0]
                    expected = int(value * 255) if code == "f" else int(value)  # QLC+ truncates 0..1 * 255
                    ok = got[i] == expected
                    failures += not ok
                    print(f"{'bundle' if bundle else 'plain ':6} cue {k} {address:<22} sent {code}:{value:<8.4g} "
                          f"expected {expected:3d} QLC+ {got[i]:3d} {'ok' if ok else 'WRONG'}")
                # looks: only the cue's emotion's scene is up, flashed by its button
                scenes = got[LOOK_FIXTURE_ADDRESS:]
                want = [255 if e == k else 0 for e in range(len(look_addresses))]
                ok = scenes == want
                failures += not ok
                print(f"{'bundle' if bundle else 'plain ':6} cue {k} Flash buttons on scenes: {scenes} {'ok' if ok else 'WRONG, want ' + str(want)}")
    finally:
        if qlc is not None:
            qlc.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"checked in {time.monotonic() - t0:.1f} s")
    print("every value arrived exactly" if not failures else f"{failures} value(s) differ; QLC+ log: {home / 'qlcplus.log'}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
