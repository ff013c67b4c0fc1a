"""Outputs lost to kills (issue 15, item 1): SIGKILL `python -m studio generate image --batch-count 10 --steps 20`
at a random moment, N times, and count what was finished against what the history holds after the next start.

A picture is "finished" when its complete PNG exists (a file under its final name, not a `.partial-` one) or the CLI
announced it. After each kill the history is opened once more, as the next start of the app or the CLI does
(`History.recover`: complete orphans of ours adopted, partials removed); "lost" = finished pictures that have no
history row then. Also counted: rows whose file is missing (must be 0) and partial files left behind (must be 0).
Run: python benchmarks/kills.py [--kills 20] [--min-s 6] [--max-s 25]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import write_results  # noqa: E402


def one_kill(home: Path, seed: int, after_s: float) -> dict:
    env = dict(os.environ, LATENT_STUDIO_HOME=str(home), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-m", "studio", "generate", "image", "--prompt", "a cat face",
                                "--batch-count", "10", "--steps", "20", "--seed", str(seed)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    announced: list[str] = []
    reader = threading.Thread(target=lambda: announced.extend(line for line in process.stdout if line.startswith("seed ")))
    reader.start()
    try:
        process.wait(timeout=after_s)
        killed = False
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed = True
    reader.join()
    outputs = home / "outputs"
    complete = {p for p in outputs.rglob("*.png") if not p.name.startswith(".partial-")}
    from studio.library.history import History

    history = History(home / "history.sqlite3", outputs)
    history.recover()  # what the next start does
    history.close()
    with sqlite3.connect(home / "history.sqlite3") as db:
        files = [Path(f) for (row,) in db.execute("select files from outputs") for f in json.loads(row)]
    saved = set(files)
    return {
        "killed": killed,
        "after_s": round(after_s, 1),
        "announced": len(announced),
        "finished": len(complete),
        "lost": len({p.resolve() for p in complete} - {p.resolve() for p in saved}),
        "rows_without_file": sum(1 for f in saved if not f.exists()),
        "partials_left": len([p for p in outputs.rglob(".partial-*")]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--min-s", type=float, default=6.0)
    parser.add_argument("--max-s", type=float, default=25.0)
    args = parser.parse_args()
    rng = random.Random(0)
    runs = []
    for index in range(args.kills):
        home = Path(tempfile.mkdtemp(prefix="kills-"))
        runs.append(one_kill(home, 1000 + index * 10, rng.uniform(args.min_s, args.max_s)))
        print(runs[-1], flush=True)
    killed = [r for r in runs if r["killed"]]
    write_results("kills", {
        "runs": len(runs),
        "killed_mid_batch": len(killed),
        "finished_pictures": sum(r["finished"] for r in runs),
        "lost_pictures": sum(r["lost"] for r in runs),
        "rows_without_file": sum(r["rows_without_file"] for r in runs),
        "partials_left_after_restart": sum(r["partials_left"] for r in runs),
        "per_run": runs,
        "before_the_fix": "38 SIGKILLs lost 91 of 294 finished images in 18 runs (issue 15)",
    })


if __name__ == "__main__":
    main()
