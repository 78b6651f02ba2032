"""Conversations in SQLite (data_dir()/chat.sqlite): schema version + migrations, crash-safe answers.

An answer's row is created when generation starts (status "generating") and rewritten as it grows
(`AnswerWriter`, at most every 0.5 s); opening the store turns any row left "generating" by a process
that is gone into "stopped", so a killed app loses at most the last half second of an answer. Rows
owned by a live process (the TUI while `temper chat` runs beside it) are left alone.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TemperError
from ..paths import data_dir

# Each entry takes the schema from version i to i+1. Never edit a shipped entry: append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        model TEXT NOT NULL DEFAULT '',
        system_prompt TEXT NOT NULL DEFAULT '',
        settings TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        content TEXT NOT NULL DEFAULT '',
        thinking TEXT NOT NULL DEFAULT '',
        stats TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'ok',
        created REAL NOT NULL,
        owner TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
STATUSES = ("ok", "stopped", "error", "generating", "length")


@dataclass
class Conversation:
    id: int
    title: str
    model: str
    system_prompt: str
    settings: dict[str, Any]
    created: float
    updated: float


@dataclass
class Message:
    id: int
    conversation_id: int
    role: str
    content: str
    thinking: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    created: float = 0.0


def default_path() -> Path:
    return data_dir() / "chat.sqlite"


class ChatStore:
    """Thread-safe (one connection behind a lock): the UI and a writer thread may share it."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else default_path()
        private_file(self.path)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise TemperError(f"{self.path} is not a readable chat database ({exc}): move it away") from exc
        self.recovered = self._recover()

    # -- schema -----------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise TemperError(f"{self.path} was written by a newer temper (schema {version}): upgrade temper")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._tx():
                self._db.executescript(f"BEGIN; {MIGRATIONS[target - 1]} PRAGMA user_version = {target}; COMMIT;")

    def _recover(self) -> int:
        """Answers left "generating" by a process that is gone become "stopped" (live writers are left be)."""
        with self._tx():
            rows = self._db.execute("SELECT id, owner FROM messages WHERE status = 'generating'").fetchall()
            dead = [r["id"] for r in rows if not _alive(r["owner"])]
            self._db.executemany("UPDATE messages SET status = 'stopped' WHERE id = ?", [(i,) for i in dead])
        return len(dead)

    def _tx(self):
        return self._lock

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- conversations ----------------------------------------------------------------------------------
    def create(self, title: str = "New chat", *, model: str = "", system_prompt: str = "",
               settings: dict[str, Any] | None = None) -> Conversation:
        now = time.time()
        with self._tx():
            cur = self._db.execute(
                "INSERT INTO conversations (title, model, system_prompt, settings, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (title, model, system_prompt, json.dumps(settings or {}), now, now))
        return self.get(cur.lastrowid)

    def get(self, conversation_id: int) -> Conversation:
        with self._tx():
            row = self._db.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise TemperError(f"no conversation {conversation_id}: `temper chat --list` shows them")
        return _conversation(row)

    def list(self, query: str | None = None) -> list[Conversation]:
        """Newest first. `query` matches titles and message text (case-insensitive substring)."""
        with self._tx():
            if not query:
                rows = self._db.execute("SELECT * FROM conversations ORDER BY updated DESC, id DESC")
            else:
                like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                rows = self._db.execute(
                    "SELECT * FROM conversations c WHERE c.title LIKE ?1 ESCAPE '\\' OR EXISTS ("
                    " SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.content LIKE ?1 ESCAPE '\\')"
                    " ORDER BY updated DESC, id DESC", (like,))
            return [_conversation(r) for r in rows.fetchall()]

    def search(self, query: str) -> list[Conversation]:
        return self.list(query)

    def rename(self, conversation_id: int, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise TemperError("a conversation title cannot be empty")
        self._update_conv(conversation_id, title=title)

    def update(self, conversation_id: int, *, model: str | None = None, system_prompt: str | None = None,
               settings: dict[str, Any] | None = None) -> None:
        """A system prompt changed after messages were exchanged is also recorded in place, as a 'system'
        message holding the new prompt (and the previous one in its stats): the export shows when it changed."""
        if system_prompt is not None:
            before = self.get(conversation_id).system_prompt
            if system_prompt != before and self.messages(conversation_id):
                self.add(conversation_id, "system", system_prompt, stats={"previous": before})
        values = {"model": model, "system_prompt": system_prompt,
                  "settings": json.dumps(settings) if settings is not None else None}
        self._update_conv(conversation_id, **{k: v for k, v in values.items() if v is not None})

    def _update_conv(self, conversation_id: int, **values: Any) -> None:
        self.get(conversation_id)
        values["updated"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in values)
        with self._tx():
            self._db.execute(f"UPDATE conversations SET {cols} WHERE id = ?", (*values.values(), conversation_id))

    def delete(self, conversation_id: int) -> None:
        with self._tx():
            self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # -- messages ---------------------------------------------------------------------------------------
    def messages(self, conversation_id: int) -> list[Message]:
        with self._tx():
            rows = self._db.execute("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id",
                                    (conversation_id,)).fetchall()
        return [_message(r) for r in rows]

    def add(self, conversation_id: int, role: str, content: str, *, thinking: str = "",
            status: str = "ok", stats: dict[str, Any] | None = None) -> Message:
        if status not in STATUSES:
            raise ValueError(f"bad status {status!r}")
        now = time.time()
        with self._tx():
            cur = self._db.execute(
                "INSERT INTO messages (conversation_id, role, content, thinking, stats, status, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, thinking, json.dumps(stats or {}), status, now))
            self._db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id))
            row = self._db.execute("SELECT * FROM messages WHERE id = ?", (cur.lastrowid,)).fetchone()
        return _message(row)

    def update_message(self, message_id: int, *, content: str | None = None, thinking: str | None = None,
                       status: str | None = None, stats: dict[str, Any] | None = None) -> None:
        values = {"content": content, "thinking": thinking, "status": status,
                  "stats": json.dumps(stats) if stats is not None else None}
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return
        cols = ", ".join(f"{k} = ?" for k in values)
        with self._tx():
            self._db.execute(f"UPDATE messages SET {cols} WHERE id = ?", (*values.values(), message_id))

    def delete_message(self, message_id: int) -> None:
        with self._tx():
            self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def pop_last_answer(self, conversation_id: int) -> Message | None:
        """For regenerate: remove the last assistant message (if the conversation ends with one)."""
        msgs = [m for m in self.messages(conversation_id) if m.role != "system"]
        if msgs and msgs[-1].role == "assistant":
            self.delete_message(msgs[-1].id)
            return msgs[-1]
        return None

    def start_answer(self, conversation_id: int) -> AnswerWriter:
        msg = self.add(conversation_id, "assistant", "", status="generating")
        with self._tx():
            self._db.execute("UPDATE messages SET owner = ? WHERE id = ?", (_OWNER, msg.id))
        return AnswerWriter(self, msg.id)


class AnswerWriter:
    """Saves a growing answer: `update()` as tokens come (throttled), `finish()` once."""

    def __init__(self, store: ChatStore, message_id: int, every_s: float = 0.5):
        self.store = store
        self.message_id = message_id
        self.every_s = every_s
        self._last = 0.0

    def update(self, content: str, thinking: str = "", *, force: bool = False) -> bool:
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return False
        self.store.update_message(self.message_id, content=content, thinking=thinking)
        self._last = now
        return True

    def finish(self, content: str, thinking: str, status: str, stats: dict[str, Any] | None = None) -> None:
        self.store.update_message(self.message_id, content=content, thinking=thinking, status=status,
                                  stats=stats or {})


_OWNER = f"{os.getpid()}@{socket.gethostname()}"


def private_file(path: Path) -> None:
    """Conversations are their owner's only: the database is made 0600 before SQLite opens it (SQLite gives
    its -wal and -shm files the database's mode), and an older 0644 one is tightened, sidecars included."""
    from ..paths import ensure_private

    ensure_private(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if file.stat().st_mode & 0o077:
                os.chmod(file, 0o600)
        except FileNotFoundError:
            pass


def _alive(owner: str) -> bool:
    """Is the process that owns a "generating" row still running (on this machine)?"""
    pid, _, host = owner.partition("@")
    if not pid.isdigit() or host != socket.gethostname():
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(row["id"], row["title"], row["model"], row["system_prompt"],
                        json.loads(row["settings"] or "{}"), row["created"], row["updated"])


def _message(row: sqlite3.Row) -> Message:
    return Message(row["id"], row["conversation_id"], row["role"], row["content"], row["thinking"],
                   json.loads(row["stats"] or "{}"), row["status"], row["created"])


def title_from(text: str, limit: int = 48) -> str:
    """A conversation title from its first prompt."""
    words = " ".join(text.split())
    return words if len(words) <= limit else words[: limit - 1].rstrip() + "…"
