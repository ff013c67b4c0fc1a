"""SQLite history of every output and its recipe, built to survive a crash at any moment.

Order of a save: the files are written atomically (temp + fsync + rename) first, then one
transaction adds the row. So a committed row always points at complete files; a crash
before the commit leaves at worst an orphan file, never a row without its file.
WAL mode lets the GUI read while the worker writes.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from studio.core import files as core_files
from studio.core.jobs import UserError
from studio.core.recipe import Recipe
from studio.library.export import write_artifact

SCHEMA = """
CREATE TABLE IF NOT EXISTS outputs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    modality TEXT NOT NULL,
    prompt TEXT NOT NULL DEFAULT '',
    recipe TEXT NOT NULL,
    files TEXT NOT NULL,            -- JSON list of absolute paths
    thumbnail BLOB,                 -- small PNG (images, music piano rolls, animation frames)
    summary TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    favourite INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL DEFAULT '',
    parents TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS outputs_created ON outputs(created);
CREATE INDEX IF NOT EXISTS outputs_modality ON outputs(modality);
-- files the user removed from the history but kept: never adopted back as orphans (library/recover.py)
CREATE TABLE IF NOT EXISTS kept_out (file TEXT PRIMARY KEY);
"""


@dataclass(frozen=True)
class Entry:
    id: int
    modality: str
    prompt: str
    recipe: Recipe
    files: list[Path]
    thumbnail: bytes | None
    summary: str
    created: float
    favourite: bool
    tags: str
    parents: list[int]


class History:
    def __init__(self, db_path: Path, outputs_dir: Path) -> None:
        self.db_path = Path(db_path)
        self.outputs_dir = Path(outputs_dir)
        self._local = threading.local()  # sqlite connections belong to one thread each
        self._conn().executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.db_path, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- writing ---------------------------------------------------------------------------

    def save_artifact(self, artifact, stem: str | None = None) -> Entry:
        """Write the artifact's files, then commit its row. Fills artifact.files/entry_id. All or nothing: when
        a file or the row can't be written (a full disk), the files of this output are removed and a UserError
        names the real cause. Each file's final name is claimed, never replaced (core/files.py)."""
        day_folder = self.outputs_dir / time.strftime("%Y-%m-%d")
        stem = stem or f"{time.strftime('%H%M%S')}-{artifact.modality}-{artifact.recipe.seed}"
        files: list[Path] = []
        try:
            files, thumbnail, summary = write_artifact(artifact, day_folder, stem)
            entry_id = self.add_row(artifact.recipe, files, thumbnail, summary, artifact.modality)
        except (OSError, sqlite3.Error, RuntimeError) as exc:  # soundfile's errors are RuntimeErrors
            for path in files:
                Path(path).unlink(missing_ok=True)
            raise UserError(f"The {artifact.modality} could not be saved in {day_folder}: "
                            f"{storage_cause(exc, day_folder)}") from exc
        artifact.files, artifact.entry_id = files, entry_id
        return self.get(entry_id)

    def check_writable(self) -> None:
        """Before the work: a UserError naming the cause unless today's output folder can take a file."""
        folder = self.outputs_dir / time.strftime("%Y-%m-%d")
        try:
            core_files.check_writable(folder)
        except OSError as exc:
            raise UserError(f"Nothing was generated: the output folder {folder} can't be written "
                            f"({storage_cause(exc, folder)}). Choose another folder or free some space.") from exc

    def recover(self) -> tuple[int, int]:
        """At a start: (temp files removed, orphan outputs adopted) — see library/recover.py."""
        from studio.library.recover import recover

        return recover(self)

    def all_files(self) -> set[str]:
        """Every file a row names (as stored: resolved absolute paths), and the files removed from the history
        but kept (not to be adopted back)."""
        rows = self._conn().execute("SELECT files FROM outputs")
        kept_out = self._conn().execute("SELECT file FROM kept_out")
        return {name for (files,) in rows for name in json.loads(files)} | {name for (name,) in kept_out}

    def add_row(self, recipe: Recipe, files: Iterable[Path], thumbnail: bytes | None, summary: str, modality: str) -> int:
        """Commit one row; when a row already names the same first file (a recovery at another process's start
        adopted it between our file and our row), that row's id is returned and no second row is made."""
        files = [str(Path(f).resolve()) for f in files]
        conn = self._conn()
        with conn:  # one transaction: the row appears whole or not at all
            conn.execute("BEGIN IMMEDIATE")  # the check and the insert, with no other writer in between
            if files:
                prefix = json.dumps(files[:1])[:-1]  # '["/the/first/file"' as every row's JSON starts
                pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                rows = conn.execute("SELECT id, files FROM outputs WHERE files LIKE ? ESCAPE '\\'", (pattern,))
                for row_id, row_files in rows:  # LIKE ignores ASCII case: compare exactly here
                    if json.loads(row_files)[:1] == files[:1]:
                        return int(row_id)
            cursor = conn.execute(
                "INSERT INTO outputs (modality, prompt, recipe, files, thumbnail, summary, created, parents)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    modality,
                    recipe.prompt,
                    recipe.to_json(),
                    json.dumps(files),
                    thumbnail,
                    summary,
                    time.time(),
                    json.dumps(list(recipe.parents)),
                ),
            )
        return int(cursor.lastrowid)

    def set_favourite(self, entry_id: int, favourite: bool) -> None:
        with self._conn() as conn:
            conn.execute("UPDATE outputs SET favourite = ? WHERE id = ?", (int(favourite), entry_id))

    def set_tags(self, entry_id: int, tags: str) -> None:
        with self._conn() as conn:
            conn.execute("UPDATE outputs SET tags = ? WHERE id = ?", (tags.strip(), entry_id))

    def delete(self, entry_id: int, delete_files: bool = False) -> None:
        entry = self.get(entry_id)
        with self._conn() as conn:
            conn.execute("DELETE FROM outputs WHERE id = ?", (entry_id,))
            if entry and not delete_files:
                conn.executemany("INSERT OR IGNORE INTO kept_out (file) VALUES (?)", [(str(p),) for p in entry.files])
        if delete_files and entry:
            for path in entry.files:
                path.unlink(missing_ok=True)

    # --- reading ---------------------------------------------------------------------------

    def get(self, entry_id: int) -> Entry | None:
        row = self._conn().execute("SELECT * FROM outputs WHERE id = ?", (entry_id,)).fetchone()
        return _entry(row) if row else None

    def search(
        self, text: str = "", modality: str | tuple[str, ...] | None = None, favourites_only: bool = False,
        limit: int = 500,
    ) -> list[Entry]:
        clauses, args = [], []
        if text:
            # the words as typed: % and _ are LIKE wildcards, escaped so "_" finds underscores, not everything
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append("(prompt LIKE ? ESCAPE '\\' OR tags LIKE ? ESCAPE '\\' OR summary LIKE ? ESCAPE '\\')")
            args += [f"%{escaped}%"] * 3
        if modality:
            kinds = (modality,) if isinstance(modality, str) else tuple(modality)
            clauses.append(f"modality IN ({', '.join('?' * len(kinds))})")
            args += kinds
        if favourites_only:
            clauses.append("favourite = 1")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._conn().execute(
            f"SELECT * FROM outputs {where} ORDER BY created DESC, id DESC LIMIT ?", (*args, limit)
        )
        return [_entry(row) for row in rows]

    def recent_prompts(self, modality: str | tuple[str, ...], limit: int = 20) -> list[tuple[str, str]]:
        """Newest distinct (prompt, negative prompt) pairs the user wrote; explorer outputs (whose
        "prompt" is a generated caption such as "child 1 of 4") are left out."""
        kinds = (modality,) if isinstance(modality, str) else tuple(modality)
        rows = self._conn().execute(  # the recipe column only: this runs on the GUI thread when a menu opens
            f"SELECT recipe FROM outputs WHERE modality IN ({', '.join('?' * len(kinds))}) "
            "ORDER BY created DESC, id DESC LIMIT ?", (*kinds, 20 * limit))
        seen: set[tuple[str, str]] = set()
        pairs: list[tuple[str, str]] = []
        for (recipe_json,) in rows:
            recipe = Recipe.from_json(recipe_json)
            pair = (recipe.prompt or "", recipe.negative_prompt or "")
            if pair[0] and not recipe.param("operation") and pair not in seen:
                seen.add(pair)
                pairs.append(pair)
                if len(pairs) == limit:
                    break
        return pairs

    def count(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM outputs").fetchone()[0])

    def lineage(self, entry_id: int) -> list[Entry]:
        """The entry and all its ancestors (breeding parents), nearest first."""
        seen, order, frontier = set(), [], [entry_id]
        while frontier:
            current = frontier.pop(0)
            if current in seen:
                continue
            seen.add(current)
            entry = self.get(current)
            if entry:
                order.append(entry)
                frontier.extend(entry.parents)
        return order

    def sweep_partials(self) -> int:
        """Delete temp files a crash left behind (never one another process is writing); they were never
        visible under a real name. `recover` does this and adopts orphans."""
        return core_files.sweep_partials(self.outputs_dir)


class HistoryUnavailable(Exception):
    """The history database can't be used right now (locked by another process, folder not writable)."""


def open_history(db_path: Path, outputs_dir: Path) -> tuple[History, str]:
    """The history, and a message when something had to be done about it. A damaged database file is moved
    aside (kept for recovery, never deleted) and a new one started; one that is locked or can't be opened is a
    HistoryUnavailable with a clear text. Output files are never touched."""
    db_path = Path(db_path)
    try:
        return History(db_path, outputs_dir), ""
    except sqlite3.OperationalError as exc:  # locked, full disk, or no permission: moving it aside would not help
        if "locked" in str(exc).lower():
            cause = f"({exc}). Is another Latent Studio running?"
        else:
            cause = f"({storage_cause(exc, db_path.parent)})."
        raise HistoryUnavailable(f"The history database {db_path} can't be opened {cause} Your outputs are "
                                 "untouched.") from exc
    except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed"
        aside = db_path.with_name(f"{db_path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(db_path) + suffix)
            if part.exists():
                part.replace(Path(str(aside) + suffix))
        return History(db_path, outputs_dir), (
            f"The history database was damaged ({exc}). It was moved to {aside.name} and a new, empty history "
            "started; your output files are untouched and can be opened with File > Open."
        )


def storage_cause(exc: BaseException, folder: Path) -> str:
    """The real reason a file or the database could not be written: a full disk, a read-only folder, else the
    error's own words."""
    folder = Path(folder)
    text = str(exc)
    full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "full" in text.lower() \
        or "No space" in text
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not full:
        try:
            full = shutil.disk_usage(existing).free < 64 * 1024
        except OSError:
            pass
    if full:
        free = ""
        if existing is not None:
            try:
                free = f", {shutil.disk_usage(existing).free // 1024} KB free"
            except OSError:
                pass
        return f"the disk is full{free}"
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return text


def _entry(row: tuple) -> Entry:
    (entry_id, modality, prompt, recipe, files, thumbnail, summary, created, favourite, tags, parents) = row
    return Entry(
        id=entry_id,
        modality=modality,
        prompt=prompt,
        recipe=Recipe.from_json(recipe),
        files=[Path(p) for p in json.loads(files)],
        thumbnail=thumbnail,
        summary=summary,
        created=created,
        favourite=bool(favourite),
        tags=tags,
        parents=json.loads(parents),
    )
