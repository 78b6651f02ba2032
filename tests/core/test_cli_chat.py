from __future__ import annotations

import io
import sys

from temper.cli.main import main
from temper.core.chat.store import ChatStore


def test_one_shot_prompt_prints_the_answer_and_stats(tiny_llama, capsys):
    rc = main(["chat", str(tiny_llama), "--prompt", "Hello", "--temp", "0", "--max-tokens", "12",
               "--effort", "low", "--think-budget", "3", "--system", "Be brief."])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "tok/s" in err and "TTFT" in err and "[conversation 1]" in err
    [conv] = ChatStore().list()
    msgs = ChatStore().messages(conv.id)
    assert [m.role for m in msgs] == ["user", "assistant"]
    assert out.rstrip("\n") == msgs[1].content            # the answer alone on stdout
    assert conv.system_prompt == "Be brief." and conv.settings["effort"] == "low"
    assert msgs[1].thinking and msgs[1].stats["thinking_tokens"] == 3


def test_repl_reads_lines_from_a_pipe_and_continues_a_conversation(tiny_llama, capsys, monkeypatch):
    lines = "first question\n/effort none\n/system Be terse.\nsecond question\n/regen\n/quit\nnot sent\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    assert main(["chat", str(tiny_llama), "--temp", "0", "--max-tokens", "8"]) == 0
    _, err = capsys.readouterr()
    assert err.count("tok/s") == 3
    [conv] = ChatStore().list()
    msgs = ChatStore().messages(conv.id)
    assert [m.content for m in msgs if m.role == "user"] == ["first question", "second question"]
    assert [m.role for m in msgs] == ["user", "assistant", "system", "user", "assistant"]   # where it changed
    assert conv.system_prompt == "Be terse."
    monkeypatch.setattr(sys, "stdin", io.StringIO("third\n"))
    assert main(["chat", "--conversation", str(conv.id), "--temp", "0", "--max-tokens", "4"]) == 0
    assert len(ChatStore().messages(conv.id)) == 7
    assert main(["chat", "--list"]) == 0
    assert f"{conv.id}\tfirst question" in capsys.readouterr().out


def test_bad_input_is_one_clear_line(tiny_llama, capsys):
    assert main(["chat", str(tiny_llama), "--prompt", "x", "--top-p", "2"]) == 2
    assert capsys.readouterr().err.strip() == "temper: --top-p: must be at most 1, got 2.0"
    assert main(["chat", "--prompt", "x", "--no-save"]) == 2
    assert "name a model" in capsys.readouterr().err
    assert main(["chat", "/nonexistent/model", "--prompt", "x", "--no-save"]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_repl_refuses_bad_commands_without_changing_anything(tiny_llama, capsys, monkeypatch):
    lines = ("/effort ultra\n/draft-tokens x\n/draft-tokens 99\n/temp hot\n/drafter /nonexistent/drafter\n"
             "/bogus\nquestion\n/quit\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    assert main(["chat", str(tiny_llama), "--temp", "0", "--max-tokens", "4"]) == 0
    _, err = capsys.readouterr()
    assert "unknown reasoning effort 'ultra'" in err and "/draft-tokens needs a whole number" in err
    assert "num_draft_tokens: must be at most 16, got 99" in err and "/temp needs a number" in err
    assert "no such folder" in err and "unknown command /bogus" in err
    assert err.count("tok/s") == 1                     # the message after the typos was answered
    [conv] = ChatStore().list()
    assert conv.settings["effort"] is None and conv.settings["num_draft_tokens"] == 3
    assert conv.settings["drafter"] is None and conv.settings["sampling"]["temperature"] == 0


def test_empty_prompt_is_refused(tiny_llama, capsys):
    assert main(["chat", str(tiny_llama), "--prompt", "", "--no-save"]) == 2
    assert capsys.readouterr().err.strip() == "temper: nothing to send: the message is empty"


def test_app_refuses_a_model_that_cannot_load_before_it_opens(tiny_llama, capsys, monkeypatch):
    import temper.tui.app as app_module

    opened = []
    monkeypatch.setattr(app_module, "run", lambda args: opened.append(args.model) or 0)
    assert main(["--model", str(tiny_llama)]) == 0 and opened == [str(tiny_llama)]
    opened.clear()
    assert main(["--model", "/nope/x"]) == 2
    assert "no such folder" in capsys.readouterr().err and opened == []
    assert ChatStore().list() == []                      # nothing saved


def test_the_self_drafter_build_is_announced_once(tiny_llama, capsys, monkeypatch):
    from temper.core.engine import get_engine

    get_engine().run(lambda ctx: ctx.state.pop("drafters", None))
    monkeypatch.setattr(sys, "stdin", io.StringIO("/drafter self\nfirst\nsecond\n/quit\n"))
    assert main(["chat", str(tiny_llama), "--temp", "0", "--max-tokens", "6", "--no-save"]) == 0
    _, err = capsys.readouterr()
    assert err.count("[building the self-drafter (a 3-bit copy of tiny") == 2   # the start, and 100%
    assert err.count("100%…]") == 1 and err.count("tok/s") == 2
