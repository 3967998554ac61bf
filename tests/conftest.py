import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

# Nothing may reach the network for models or data: every test process (this one, and
# every `pcp-osc` child through PYTHONPATH) runs with the network blocked except loopback,
# and each attempt is recorded; the session fails if anything tried.
NETLOG = Path(tempfile.mkdtemp(prefix="pcp-netblock-")) / "attempts.log"
os.environ.setdefault("PCP_NETBLOCK_LOG", str(NETLOG))
os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE / "netblock"), *filter(None, [os.environ.get("PYTHONPATH")])])
_spec = importlib.util.spec_from_file_location("pcp_netblock", HERE / "netblock" / "sitecustomize.py")
importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))  # patches socket in this process


# Fixtures that make a test slow: YOLO trained on the CPU (once per session, about 1.5 minutes)
# and the tiny Stable Diffusion pipeline. Tests using them are marked `slow`; a test or module
# can also say so itself with @pytest.mark.slow / pytestmark.
SLOW_FIXTURES = {"yolo_ws", "tiny_model", "tiny_taesd", "comfy_servers"}  # comfy_servers: real ComfyUI (test_comfyui.py)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session, exitstatus):
    path = Path(os.environ["PCP_NETBLOCK_LOG"])
    if path.exists() and path.read_text().strip():
        print(f"\nNETWORK ATTEMPTS during the tests (nothing may be downloaded):\n{path.read_text()[:4000]}")
        session.exitstatus = 1

from oscutil import OscReceiver  # noqa: E402


@pytest.fixture
def receiver():
    r = OscReceiver()
    yield r
    r.close()
    r.assert_all_osc()  # something sent the show's receiver a datagram that is not OSC

from yolo_session import yolo_ws  # noqa: E402,F401  (session fixture: YOLO trained once for test_yolo/test_eval)
