"""The processes a test started and left behind.

Lab daemons that an earlier test restarted in-process (a gateway restart, say) are this
process's children too, for as long as the session runs; they are not the current
test's, so only processes created since the current test began count."""

import time

import psutil


class TestStart:
    at = 0.0  # set by tests/integration/conftest.py before every test


def our_descendants() -> list[psutil.Process]:
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if (process.status() != psutil.STATUS_ZOMBIE
                    and process.create_time() >= TestStart.at - 1.0):
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


def note_test_start() -> None:
    TestStart.at = time.time()
