"""Registry loading is thread-safe (issue 24 item 9): two alerts at once raced in lazy plugin
loading and the second thread found `local` neither pending nor loaded."""

from __future__ import annotations

import threading

from opsbook.registry import Registry


def test_eight_threads_asking_for_plugins_at_once_all_get_them():
    for _ in range(20):
        registry = Registry.from_entry_points()
        start = threading.Barrier(8)
        found: list[object] = []

        def ask(name: str) -> None:
            start.wait()
            found.append(registry.action(f"{name}.noop" if name == "local" else f"{name}.http"))

        threads = [threading.Thread(target=ask, args=("local" if i % 2 else "probe",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(found) == 8 and all(found), found
