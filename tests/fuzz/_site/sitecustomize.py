"""Loaded (through PYTHONPATH) by the daemon processes the fuzz suite starts, and only by them.

SIGUSR1 dumps every thread's Python stack to stderr, so a test that finds a wedged daemon can
show where it is stuck. It changes nothing else.
"""

import faulthandler
import os
import signal

if os.environ.get("FUZZ_CODEXD_FAULTHANDLER") == "1":
    faulthandler.register(signal.SIGUSR1, all_threads=True)
