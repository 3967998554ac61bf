"""The qlc route preset against a real QLC+ (Debian's qlcplus 4.12, headless; `./pcp test`
installs it): tools/qlc_check.py binds Virtual Console sliders and Flash buttons to the input
channel numbers docs/routes.md lists, sends cues through the real route sender (single
messages and bundles) and reads QLC+'s DMX output back over its web socket. QLC+ runs in a
private network namespace (it announces itself on the network)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_value_reaches_a_real_qlc_desk_on_the_documented_channels():
    assert shutil.which("qlcplus"), "QLC+ is not installed: apt-get install --no-install-recommends qlcplus (./pcp test does)"
    assert shutil.which("unshare"), "unshare (util-linux) is needed to give QLC+ a private network"
    # -r: a user namespace too, so this works without root where user namespaces are allowed
    cmd = f"ip link set lo up && exec {sys.executable} {ROOT / 'tools' / 'qlc_check.py'}"
    r = subprocess.run(["unshare", "-rn", "sh", "-c", cmd], capture_output=True, text=True, timeout=240, cwd=ROOT)
    out = r.stdout
    assert r.returncode == 0, (out + r.stderr)[-3000:]
    assert "Q Light Controller Plus version 4.12" in out
    assert "every value arrived exactly" in out
    assert out.count(" ok\n") >= 100 and "WRONG" not in out  # 90 slider values, 10 Flash checks
    assert "/pcp/red               15687" in out
