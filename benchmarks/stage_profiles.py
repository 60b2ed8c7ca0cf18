"""Profiles of the main job's stages: one pyinstrument (or cProfile) profile per job, and its top functions.

pyinstrument (the ``bench`` extra) samples the call stack every millisecond, so its overhead is small
and the HTML view shows where the time goes as a call tree. Without it, the standard library's
cProfile traces every call, which slows call-heavy Python code several times; its figures then
overstate the share of pure-Python functions.

Both profile the calling thread only. Work in other processes (dbt's subprocess, the ensemble's
training workers) appears as the time the caller spends waiting for them.
"""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable
from pathlib import Path

TOP_FUNCTIONS = 10
SHARED_CHAIN_SHARE = 0.95

try:
    from pyinstrument import Profiler
except ImportError:  # the bench extra is not installed
    Profiler = None


class StageProfiler:
    """Run stages under a profiler and keep, per stage, the profile's path and its top functions."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.summaries: dict[str, dict] = {}

    def run(self, stage: str, action: Callable[[], None]) -> None:
        """Run ``action`` under the profiler and write the profile of ``stage`` to the folder."""
        if Profiler is None:
            self.summaries[stage] = self.run_cprofile(stage, action)
        else:
            self.summaries[stage] = self.run_pyinstrument(stage, action)

    def run_pyinstrument(self, stage: str, action: Callable[[], None]) -> dict:
        profiler = Profiler(interval=0.001)
        profiler.start()
        try:
            action()
        finally:
            profiler.stop()

        text_path = self.folder / f"{stage}.txt"
        text_path.write_text(profiler.output_text(unicode=False, color=False, show_all=False), encoding="utf-8")
        html_path = self.folder / f"{stage}.html"
        html_path.write_text(profiler.output_html(), encoding="utf-8")

        root = profiler.last_session.root_frame() if profiler.last_session else None
        top = top_cumulative(root) if root is not None else []
        return {"profile": str(html_path), "top": top}

    def run_cprofile(self, stage: str, action: Callable[[], None]) -> dict:
        profile = cProfile.Profile()
        try:
            profile.runcall(action)
        finally:
            path = self.folder / f"{stage}.prof"
            profile.dump_stats(path)

        statistics = pstats.Stats(profile)
        rows = sorted(statistics.stats.items(), key=lambda item: item[1][3], reverse=True)
        top = [(f"{function} ({Path(file).name}:{line})", cumulative)
               for (file, line, function), (_, _, _, cumulative, _) in rows[:TOP_FUNCTIONS]]
        return {"profile": str(path), "top": top}


def top_cumulative(root) -> list[tuple[str, float]]:
    """Return the functions with the largest cumulative time in a pyinstrument frame tree.

    A function's cumulative time is the sum of the times of its frames that have no frame of the
    same function above them, so recursion is counted once. Frames that take at least
    ``SHARED_CHAIN_SHARE`` of the whole stage are left out. They are the call chain that every job
    shares (the profiler, ``run_job``, ``execute_in_process``), so they would fill the list
    without saying where the time goes. pyinstrument's ``[self]`` and ``[await]`` frames are left
    out as well.
    """
    totals: dict[str, float] = {}
    shared_chain_seconds = SHARED_CHAIN_SHARE * root.time

    def visit(frame, active: frozenset[str]) -> None:
        name = f"{frame.function} ({Path(frame.file_path or '?').name}:{frame.line_no})"
        counted = not frame.is_synthetic and frame.time < shared_chain_seconds and name not in active
        if counted:
            totals[name] = totals.get(name, 0.0) + frame.time
        for child in frame.children:
            visit(child, active | {name})

    visit(root, frozenset())
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)
    return ranked[:TOP_FUNCTIONS]
