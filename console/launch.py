"""The `rollback-console` entry point (and `python -m console`).

Start-up (issue 17): from here to the console's first frame, Python allocates
a few hundred thousand objects that all stay (modules, classes, the config,
the widgets). The garbage collector's passes over them (about 150, one of them
full) free nothing and cost 30-40 ms of CPU before the first frame. So the
collector waits until start-up is over: a command other than the TUI resumes
it as it starts (console.cli), the TUI after its first frame (console.ui.app),
the refresh process it forks after its first cycle (console.refresher).
Memory is still freed by reference counts meanwhile. Only the entry point
pauses it: importing console.cli (tests, the bench) changes nothing.

The entry point also compiles dataclass methods through the console's code
cache (console/codecache.py) and adds what it compiled anew as it exits.
"""

from __future__ import annotations

import gc


def pause_collector() -> None:
    """Pause the garbage collector for start-up (see the module's docstring)."""
    gc.disable()


def start_up() -> None:
    """What the entry point does before anything else is imported."""
    pause_collector()
    from console import codecache

    codecache.install()


def main() -> None:
    start_up()
    from console import codecache  # installed by start_up
    from console.cli import main as run

    try:
        run()
    finally:
        codecache.save()
