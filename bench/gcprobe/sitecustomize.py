"""Time spent in Python's cyclic garbage collector, per process: put this directory on
PYTHONPATH (``PYTHONPATH=bench/gcprobe python -m bench.streams ...``) and every Python process
started from there writes, once a second, its collector time, CPU time and collections per
generation to ``$GCPROBE_DIR/gc.<pid>`` (default: the temporary directory). A measuring aid,
not part of any service.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import threading
import time
from typing import Any

_started = [0.0]
_collector_s = [0.0]
_collections = [0, 0, 0]


def _timer(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.thread_time()
    else:
        _collector_s[0] += time.thread_time() - _started[0]
        _collections[info["generation"]] += 1


def _report() -> None:
    path = os.path.join(os.environ.get("GCPROBE_DIR", tempfile.gettempdir()), f"gc.{os.getpid()}")
    while True:
        time.sleep(1)
        line = (
            f"{' '.join(sys.argv)}\tgc_s={_collector_s[0]:.3f}\tcpu_s={time.process_time():.3f}"
            f"\tcollections={_collections}\tthreshold={gc.get_threshold()}\n"
        )
        with open(path, "w", encoding="utf-8") as out:
            out.write(line)


gc.callbacks.append(_timer)
threading.Thread(target=_report, name="gcprobe", daemon=True).start()
