from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from temper.core.chat.export import export, to_markdown
from temper.core.chat.settings import ChatSettings
from temper.core.chat.store import SCHEMA_VERSION, ChatStore, default_path, title_from
from temper.core.errors import TemperError


def test_conversations_and_messages_survive_a_restart(tmp_path):
    path = tmp_path / "chat.sqlite"
    store = ChatStore(path)
    settings = ChatSettings(effort="low", drafter="self").to_dict()
    conv = store.create("First", model="/m/llama", system_prompt="Be brief.", settings=settings)
    store.add(conv.id, "user", "hello")
    store.add(conv.id, "assistant", "hi!", thinking="greet back", stats={"tokens": 2}, status="ok")
    store.close()

    again = ChatStore(path)
    [back] = again.list()
    assert (back.title, back.model, back.system_prompt) == ("First", "/m/llama", "Be brief.")
    assert ChatSettings.from_dict(back.settings).drafter == "self"
    msgs = again.messages(conv.id)
    assert [(m.role, m.content, m.thinking, m.status) for m in msgs] == [
        ("user", "hello", "", "ok"), ("assistant", "hi!", "greet back", "ok")]
    assert msgs[1].stats == {"tokens": 2}


CRASH = """
import os, sys
from temper.core.chat.store import ChatStore
store = ChatStore(sys.argv[1])
conv = store.create("c")
store.add(conv.id, "user", "q")
writer = store.start_answer(conv.id)
assert writer.update("partial ans", "th", force=True)
assert not writer.update("partial answer", "th")   # throttled: within 0.5 s of the last write
os._exit(9)  # killed mid-answer: no finish(), no close()
"""


def test_an_answer_cut_by_a_crash_comes_back_as_stopped(tmp_path):
    path = tmp_path / "chat.sqlite"
    proc = subprocess.run([sys.executable, "-c", CRASH, str(path)], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    reopened = ChatStore(path)
    assert reopened.recovered == 1
    [conv] = reopened.list()
    last = reopened.messages(conv.id)[-1]
    assert (last.content, last.thinking, last.status) == ("partial ans", "th", "stopped")


def test_a_live_answer_is_not_touched_by_another_store(tmp_path):
    store = ChatStore(tmp_path / "c.sqlite")
    conv = store.create("c")
    writer = store.start_answer(conv.id)
    other = ChatStore(tmp_path / "c.sqlite")  # e.g. `temper chat --list` while the app streams
    assert other.recovered == 0
    assert other.messages(conv.id)[-1].status == "generating"
    writer.finish("done", "", "ok")
    assert other.messages(conv.id)[-1].status == "ok"


def test_rename_search_delete_and_regenerate(tmp_path):
    store = ChatStore(tmp_path / "c.sqlite")
    a = store.create("Cooking")
    b = store.create("Rust lifetimes")
    store.add(a.id, "user", "how long to boil 100% pasta_al dente?")
    store.add(a.id, "assistant", "ten minutes")
    store.rename(b.id, "  Borrow   checker ")
    assert store.get(b.id).title == "Borrow checker"
    assert [c.id for c in store.search("MINUTES")] == [a.id]
    assert [c.id for c in store.search("borrow")] == [b.id]
    assert [c.id for c in store.search("100%")] == [a.id]
    assert store.search("0%x") == []                   # % and _ are literal
    assert store.pop_last_answer(a.id).content == "ten minutes"
    assert store.pop_last_answer(a.id) is None          # ends with the user's message now
    store.delete(a.id)
    assert [c.id for c in store.list()] == [b.id]
    with pytest.raises(TemperError, match="no conversation"):
        store.get(a.id)
    assert store._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0  # cascade
    with pytest.raises(TemperError, match="cannot be empty"):
        store.rename(b.id, "   ")


def test_schema_version_and_a_newer_database_is_refused(tmp_path):
    path = tmp_path / "c.sqlite"
    ChatStore(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(TemperError, match="newer temper"):
        ChatStore(path)


def test_a_corrupt_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(TemperError, match="not a readable chat database"):
        ChatStore(path)


def test_default_location_is_under_the_data_folder(_temper_home):
    assert default_path() == _temper_home / "data" / "chat.sqlite"
    ChatStore().close()
    assert default_path().is_file()


def test_export_markdown(tmp_path):
    store = ChatStore(tmp_path / "c.sqlite")
    conv = store.create(title_from("Explain   the cache " + "x" * 80), model="m", system_prompt="Be brief.")
    assert len(conv.title) <= 48 and conv.title.endswith("…")
    store.add(conv.id, "user", "why?")
    store.add(conv.id, "assistant", "because", thinking="hmm", status="stopped",
              stats={"tokens": 3, "ttft_s": 0.1, "decode_tps": 20.0, "elapsed_s": 0.3, "acceptance": 0.5})
    text = to_markdown(store.get(conv.id), store.messages(conv.id))
    assert "> Be brief." in text and "## You" in text and "## Assistant _(stopped)_" in text
    assert "<details><summary>Thinking</summary>" in text and "accept 50%" in text
    out = export(store, conv.id, tmp_path / "out" / "chat.md")
    assert out.read_text() == text


def test_export_places_a_system_prompt_set_later_where_it_was_set(tmp_path):
    from temper.core.chat.session import history

    store = ChatStore(tmp_path / "c.sqlite")
    conv = store.create("Later prompt", model="m")
    for text in ("one", "two", "three"):
        store.add(conv.id, "user", text)
        store.add(conv.id, "assistant", f"answer {text}")
    store.update(conv.id, system_prompt="Talk like a pirate.")
    store.add(conv.id, "user", "four")
    text = to_markdown(store.get(conv.id), store.messages(conv.id))
    assert "**System**" not in text                         # nothing was in effect at the start
    assert text.index("answer three") < text.index("**System prompt changed**") < text.index("four")
    assert "> Talk like a pirate." in text
    sent = history(store.get(conv.id).system_prompt, store.messages(conv.id))
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user", "assistant", "user", "assistant",
                                         "user"]
    store.add(conv.id, "assistant", "arr")
    store.update(conv.id, system_prompt="")
    assert store.pop_last_answer(conv.id).content == "arr"   # regenerate looks past the change record
