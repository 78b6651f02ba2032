"""The chat header at 100x30 and 80x24: the model and the context figure always show, the title gives way
at a word boundary, no part is cut in the middle of a word; "effort" only for a model with a thinking mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_chat import FakeClient, make_app, open_chat, send, sync
from temper.tui.widgets.chat_header import Part, fit, shorten_name, shorten_words

NAME = "SmolLM2-135M-Instruct-bf16-temper-uniform-8"
ASK = "Write a short poem about the sea, then a Python hello world in a code block, then three fish."


def _model(tmp_path: Path, thinking: bool = False) -> Path:
    folder = tmp_path / NAME
    folder.mkdir()
    tokens = {"1": {"content": "<think>"}} if thinking else {"1": {"content": "<|im_end|>"}}
    (folder / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": tokens}))
    return folder


def _shown(view) -> str:
    return view.query_one("#chat-header").render_line(0).text.strip()


def _whole_words(line: str, parts: list[str]) -> None:
    """Every piece shown is a whole part, or a part cut after a whole word with "…"."""
    for piece in line.split(" · "):
        assert any(piece == p or (piece.endswith("…") and p.startswith(piece[:-1].rstrip("…-"))
                                  and (p[len(piece) - 1:][:1] in (" ", "-") or piece.startswith(p.split("-")[0])))
                   for p in parts), (piece, line)


@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
def test_the_header_keeps_the_model_and_the_context_figure(tmp_path, size) -> None:
    @sync
    async def check() -> None:
        client = FakeClient()
        app = make_app(model=str(_model(tmp_path)), client=client)
        async with app.run_test(size=size) as pilot:
            view = await open_chat(pilot)
            await send(pilot, ASK)
            for word in ["Waves ", "roll."]:
                client.token(word)
            client.finish()
            await pilot.pause()
            line = _shown(view)
            assert len(line) <= view.query_one("#chat-header").content_size.width
            assert "context 12/2048" in line or "ctx 12/2048" in line, line
            assert line.startswith(NAME) or line.startswith("SmolLM2-…"), line
            assert "effort" not in line                        # no thinking mode: the setting says nothing
            _whole_words(line, [NAME, ASK, "context 12/2048", "ctx 12/2048"])
            if size[0] == 100:
                assert NAME in line and "context 12/2048" in line

    check()


@sync
async def test_a_thinking_model_shows_its_effort_and_the_header_refits_on_resize(tmp_path) -> None:
    app = make_app(model=str(_model(tmp_path, thinking=True)))
    async with app.run_test(size=(150, 30)) as pilot:
        view = await open_chat(pilot)
        assert "effort default" in _shown(view)
        await pilot.resize_terminal(60, 24)
        await pilot.pause()
        line = _shown(view)
        assert len(line) <= view.query_one("#chat-header").content_size.width and "SmolLM2" in line


def test_fit_prefers_short_forms_then_drops_the_least_needed() -> None:
    parts = [Part(NAME, 0), Part(ASK, 9, title=True), Part("context 40/8192", 0, short="ctx 40/8192"),
             Part("effort high", 3), Part("kv 8-bit", 1)]
    widths = {}
    for width in (200, 100, 78, 60, 40, 24):
        shown = [text for _, text in fit(parts, width)]
        line = " · ".join(shown)
        widths[width] = line
        assert len(line) <= width, (width, line)
        assert any(t.startswith("SmolLM2") for t in shown)
        if width >= 40:
            assert any("40/8192" in t for t in shown), line
    assert widths[200] == " · ".join([NAME, ASK, "context 40/8192", "effort high", "kv 8-bit"])
    assert "effort" not in widths[78] and "kv 8-bit" in widths[78]          # effort goes before kv
    assert shorten_words("one two three", 9) == "one two…" and shorten_words("unbroken", 5) == ""
    assert shorten_name(NAME, 20) == "SmolLM2-…-uniform-8"


@sync
async def test_a_long_chat_title_ends_at_a_word_in_the_list() -> None:
    """Before: "Write a short poem about th" — the list item cut in the middle of a word, with no mark."""
    from temper.tui.widgets.chat_sidebar import ConversationItem

    client = FakeClient()
    async with make_app(client=client).run_test(size=(100, 30)) as pilot:
        view = await open_chat(pilot)
        await send(pilot, ASK)
        client.finish()
        await pilot.pause()
        (item,) = view.query(ConversationItem)
        label = item.query_one("Label")
        line = label.render_line(0).text.rstrip()
        assert label.outer_size.width <= item.content_size.width, (label.outer_size, item.content_size)
        assert line.endswith("…") and len(line) <= item.content_size.width, line
        assert ASK.startswith(line[2:-1]) and ASK[len(line) - 3] == " ", line
