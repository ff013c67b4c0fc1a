"""The PyInstaller bundle (issue 8): its size on disk and its time to a painted window, vs the installed app.

Both are launched as a user would (a fresh process, a fresh user folder, offscreen Qt) with
LATENT_STUDIO_QUIT_WHEN_SHOWN=1, which makes the app print "window shown" once its window has painted and
exit; the time is measured here, from spawn to that line, so the bundle's bootloader and unpacking count.
Build the bundle first: bash scripts/build_app.sh
Run: python benchmarks/bundle.py [--runs 5] [--bundle dist/latent-studio]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import write_results  # noqa: E402


def folder_megabytes(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def time_to_window(command: list[str]) -> float:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LATENT_STUDIO_HOME": home,
               "LATENT_STUDIO_QUIT_WHEN_SHOWN": "1"}
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                                 cwd=ROOT)
        for line in child.stdout:
            if line.strip() == "window shown":
                seconds = time.perf_counter() - start
                break
        else:
            raise SystemExit(f"{command[0]} exited ({child.wait()}) without showing its window")
        child.wait(timeout=60)
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--bundle", default=str(ROOT / "dist" / "latent-studio"))
    args = parser.parse_args()
    bundle = Path(args.bundle)
    executable = bundle / ("latent-studio.exe" if os.name == "nt" else "latent-studio")
    if not executable.exists():
        raise SystemExit(f"no bundle at {bundle}: build it with bash scripts/build_app.sh")
    commands = {"bundle": [str(executable)], "installed (python -m studio)": [sys.executable, "-m", "studio"]}
    results = {}
    for name, command in commands.items():
        time_to_window(command)  # the first launch warms the OS file cache
        times = [time_to_window(command) for _ in range(args.runs)]
        results[name] = {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
                         "max_s": round(max(times), 3)}
    models = folder_megabytes(bundle / "_internal" / "models") if (bundle / "_internal" / "models").exists() else None
    write_results("bundle", {
        "runs": args.runs,
        "bundle_mb": round(folder_megabytes(bundle), 1),
        "built_in_models_mb": round(models, 1) if models else None,
        "time_to_window": results,
        "largest_parts_mb": largest_parts(bundle / "_internal"),
    })


def largest_parts(folder: Path, count: int = 8) -> dict:
    """Where the megabytes go (top-level entries of the bundle's _internal folder)."""
    if not folder.exists():
        return {}
    sizes = {}
    for entry in folder.iterdir():
        sizes[entry.name] = folder_megabytes(entry) if entry.is_dir() else entry.stat().st_size / 1e6
    top = sorted(sizes.items(), key=lambda item: -item[1])[:count]
    return {name: round(size, 1) for name, size in top}


if __name__ == "__main__":
    main()
