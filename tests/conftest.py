import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from oscutil import OscReceiver  # noqa: E402


@pytest.fixture
def receiver():
    r = OscReceiver()
    yield r
    r.close()

from yolo_session import yolo_ws  # noqa: E402,F401  (session fixture: YOLO trained once for test_yolo/test_eval)
