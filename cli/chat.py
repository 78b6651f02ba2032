"""`temper chat MODEL`: a plain line REPL that streams answers to stdout (pipes, scripts, SSH).

Thinking goes to stderr (dimmed on a terminal), answers to stdout, a stats line to stderr after each
answer. `--prompt TEXT` answers once and exits. Conversations are saved like the Chat tab's.
A bad /command is refused and changes nothing. Ctrl-C at the prompt clears the line, Ctrl-D leaves;
Ctrl-C during an answer stops it, keeps what came and prints the stats line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.chat.export import export, new_notes, stats_line
from ..core.chat.settings import ChatSettings
from ..core.chat.store import ChatStore, Conversation, title_from
from ..core.engine import get_engine
from ..core.engine.events import Cancelled, Failed, Finished, Progress
from ..core.engine.loader import resolve
from ..core.engine.reasoning import EFFORTS
from ..core.engine.sampling import SamplingSettings
from ..core.errors import TemperError
from . import flags
from .output import print_error

HELP = """commands: /quit  /new  /system TEXT  /effort none|low|medium|high  /regen  /drafter PATH|self|off
          /draft-tokens N  /temp T  /history  /export FILE  /help"""

SAMPLING_FLAGS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_tokens", "seed")


def register(sub) -> None:
    p = sub.add_parser("chat", help="chat with a model in the terminal (line REPL, or one-shot --prompt)")
    p.add_argument("model", nargs="?", help="model folder or cached Hub id (default: the conversation's)")
    p.add_argument("--prompt", help="answer this one prompt and exit (stats on stderr)")
    p.add_argument("--system", help="system prompt")
    flags.add_flags(p, SamplingSettings, SAMPLING_FLAGS)
    p.add_argument("--drafter", help="drafter model folder, or 'self' for a 3-bit copy of the model")
    p.add_argument("--draft-tokens", type=int, help="tokens drafted per step (default 3)")
    p.add_argument("--effort", choices=EFFORTS, help="reasoning effort (default: the template's)")
    p.add_argument("--think-budget", type=int, help="thinking-token budget for the chosen effort")
    p.add_argument("--kv-bits", type=int, choices=(0, 4, 8),
                   help="KV-cache bits (default: the model's kv_config.json if any, else float; 0 = float)")
    p.add_argument("--context", type=int, help="context limit in tokens (default: the model's)")
    p.add_argument("--conversation", type=int, help="continue a saved conversation (id from --list)")
    p.add_argument("--list", action="store_true", help="list saved conversations and exit")
    p.add_argument("--search", help="list conversations whose title or messages contain this text")
    p.add_argument("--export", type=Path, metavar="FILE", help="export --conversation to Markdown and exit")
    p.add_argument("--no-save", action="store_true", help="do not save this chat")
    p.set_defaults(func=run, on_interrupt="the answer so far is saved as stopped")


def settings_from(args: argparse.Namespace, base: dict | None = None) -> ChatSettings:
    s = ChatSettings.from_dict(base)
    given = flags.given(args, SamplingSettings, SAMPLING_FLAGS)
    s.sampling = flags.build(SamplingSettings, {**s.sampling.to_dict(), **given})
    if args.drafter is not None:
        s.drafter = None if args.drafter == "off" else args.drafter
    if args.draft_tokens is not None:
        s.num_draft_tokens = args.draft_tokens
    if args.effort is not None:
        s.effort = args.effort
    if args.think_budget is not None and s.effort not in (None, "none"):
        s.budgets[s.effort] = args.think_budget
    if args.kv_bits is not None:
        s.kv_bits = args.kv_bits
    if args.context is not None:
        s.context_limit = args.context
    return s.validate()


def changed_settings(settings: ChatSettings, name: str, value: str) -> ChatSettings:
    """A validated copy of `settings` with one REPL setting changed; TemperError (and no change) if bad."""
    new = ChatSettings.from_dict(settings.to_dict())
    try:
        if name == "effort":
            new.effort = value or None
        elif name == "drafter":
            new.drafter = None if value in ("", "off") else value
            if new.drafter not in (None, "self"):
                resolve(new.drafter)        # a missing folder is refused now, not at the next message
        elif name == "draft-tokens":
            new.num_draft_tokens = int(value)
        elif name == "temp":
            new.sampling.temperature = float(value)
    except ValueError as exc:
        kind = "a whole number" if name == "draft-tokens" else "a number"
        raise TemperError(f"/{name} needs {kind}, not {value!r}") from exc
    return new.validate()


class Repl:
    def __init__(self, args: argparse.Namespace, store: ChatStore | None):
        self.args = args
        self.store = store
        self.conv: Conversation | None = None
        self.messages: list = []
        self.model = args.model
        # a new chat starts from the profile's [sampling] and [chat] (`temper --profile P chat`), then the flags
        system, base = ChatSettings.from_profile(getattr(args, "loaded_profile", None))
        self.system = args.system if args.system is not None else system
        self.settings = settings_from(args, base.to_dict())
        self.tty = sys.stderr.isatty()
        if args.conversation is not None:
            if store is None:
                raise TemperError("--conversation needs saving on (drop --no-save)")
            self.conv = store.get(args.conversation)
            self.messages = store.messages(self.conv.id)
            self.model = self.model or self.conv.model
            self.system = args.system if args.system is not None else self.conv.system_prompt
            self.settings = settings_from(args, self.conv.settings)
        if not self.model:
            raise TemperError("name a model: temper chat MODEL (a folder or a cached Hub id)")
        resolve(self.model)  # a missing folder fails here, before anything is saved

    # -- one answer ---------------------------------------------------------------------------------------
    def ask(self, text: str | None) -> int:
        """Send `text` (None: regenerate the last answer). Returns 0, 1 if stopped before an answer came, 2 if
        generation failed. Ctrl-C stops the answer: the job finishes with what came, stats included."""
        # here, not at the top: these load mlx-lm (and transformers), which `temper -h` has no use for
        from ..core.chat.session import make_request
        from ..core.chat.store import Message
        from ..core.engine.generate import chat_job

        if text is not None and not text.strip():
            raise TemperError("nothing to send: the message is empty")
        messages = self.messages + ([Message(0, 0, "user", text)] if text is not None else [])
        request = make_request(self.model, self.system, messages, self.settings)   # bad settings: nothing saved
        if text is not None:
            self._save_user(text)
            self.messages = messages
        writer = self.store.start_answer(self.conv.id) if self.store and self.conv else None
        job = get_engine().submit(chat_job(request), kind="chat")
        answer: list[str] = []
        thinking: list[str] = []
        interrupted = False
        while True:
            try:
                code = self._stream(job, answer, thinking, writer)
                break
            except KeyboardInterrupt:   # stop the answer and keep listening: it ends with its stats
                interrupted = True
                job.cancel()
        if interrupted and self.args.prompt is not None:   # one-shot: leave with 130 (temper.cli.main says so)
            raise KeyboardInterrupt
        return code

    def _stream(self, job, answer: list[str], thinking: list[str], writer) -> int:
        from ..core.engine.generate import StatsEvent, TokenEvent

        in_think = False
        for event in job.events():
            if isinstance(event, TokenEvent):
                if event.thinking:
                    if not in_think and self.tty:
                        sys.stderr.write("\x1b[2m")
                    in_think = True
                    thinking.append(event.text)
                    sys.stderr.write(event.text)
                    sys.stderr.flush()
                else:
                    if in_think:
                        sys.stderr.write("\x1b[0m\n" if self.tty else "\n")
                        in_think = False
                    answer.append(event.text)
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                if writer:
                    writer.update("".join(answer), "".join(thinking))
            elif isinstance(event, StatsEvent) and event.final:
                pass
            elif isinstance(event, Progress):   # building the self-drafter: say so, then the percentage
                last = event.total is not None and event.done >= event.total
                if self.tty:
                    sys.stderr.write(f"\r[{event.message}]\x1b[K" + ("\n" if last else ""))
                elif event.total is None or last:
                    sys.stderr.write(f"[{event.message}]\n")
                sys.stderr.flush()
            elif isinstance(event, Finished):
                return self._done(event.result, writer)
            elif isinstance(event, (Failed, Cancelled)):
                if writer:
                    writer.finish("".join(answer), "".join(thinking), "error",
                                  {"error": getattr(event, "message", "cancelled")})
                if answer:
                    sys.stdout.write("\n")
                if isinstance(event, Failed):
                    print_error(str(event.message))
                else:
                    print("[stopped before the first token]", file=sys.stderr)
                return 2 if isinstance(event, Failed) else 1
        return 1

    def _done(self, result, writer) -> int:
        from ..core.chat.store import Message

        stats = result.stats.to_dict()
        stats["notes"] = new_notes(stats.get("notes"), self.messages)   # each note once per conversation
        sys.stdout.write("\n")
        sys.stdout.flush()
        note = "" if result.status == "ok" else f" [{result.status}]"
        if stats["context_used"] >= 0.9 * stats["context_limit"]:
            note += " [context nearly full: /new starts a fresh chat]"
        print(f"[{stats_line(stats)} · context {stats['context_used']}/{stats['context_limit']}{note}]",
              file=sys.stderr)
        if writer:
            writer.finish(result.text, result.thinking, result.status, stats)
        self.messages.append(Message(0, 0, "assistant", result.text, result.thinking, stats, result.status))
        return 0

    def _save_user(self, text: str) -> None:
        if self.store is None:
            return
        if self.conv is None:
            self.conv = self.store.create(title_from(text), model=str(self.model), system_prompt=self.system,
                                          settings=self.settings.to_dict())
            print(f"[conversation {self.conv.id}]", file=sys.stderr)
        self.store.add(self.conv.id, "user", text)

    # -- the loop -------------------------------------------------------------------------------------------
    def command(self, line: str) -> bool:
        """Handle a /command. Returns False to quit."""
        name, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        if name in ("quit", "exit", "q"):
            return False
        if name == "new":
            self.conv, self.messages = None, []
            print("[new conversation]", file=sys.stderr)
        elif name == "system":
            self.system = rest
            if self.store and self.conv:
                self.store.update(self.conv.id, system_prompt=rest)
            print(f"[system prompt {'set' if rest else 'cleared'}]", file=sys.stderr)
        elif name in ("effort", "drafter", "draft-tokens", "temp"):
            self.settings = changed_settings(self.settings, name, rest)   # refused: nothing changes
            print(f"[{name} {rest or ('default' if name == 'effort' else 'off')}]", file=sys.stderr)
        elif name == "regen":
            if self.messages and self.messages[-1].role == "assistant":
                self.messages.pop()
                if self.store and self.conv:
                    self.store.pop_last_answer(self.conv.id)
            if self.messages:
                self.ask(None)
        elif name == "history":
            for m in self.messages:
                print(f"{m.role}: {m.content}", file=sys.stderr)
        elif name == "export":
            if not (self.store and self.conv):
                raise TemperError("nothing saved to export yet")
            print(f"[exported to {export(self.store, self.conv.id, Path(rest or 'chat.md'))}]", file=sys.stderr)
        elif name == "help":
            print(HELP, file=sys.stderr)
        else:
            raise TemperError(f"unknown command /{name}: /help lists them")
        return True

    def loop(self) -> int:
        if sys.stdin.isatty():
            print(f"temper chat · {self.model} · /help for commands, /quit to leave", file=sys.stderr)
        while True:
            if sys.stdin.isatty():
                sys.stderr.write("> ")
                sys.stderr.flush()
            try:
                line = sys.stdin.readline()
            except KeyboardInterrupt:       # Ctrl-C clears the line; Ctrl-D (end of input) leaves
                sys.stderr.write("^C\n" if sys.stdin.isatty() else "\n")
                continue
            if not line:
                if sys.stdin.isatty():
                    sys.stderr.write("\n")
                return 0
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if line.startswith("/"):
                try:
                    if not self.command(line):
                        return 0
                except (TemperError, ValueError) as exc:
                    print_error(str(exc))
                continue
            try:
                self.ask(line)
            except TemperError as exc:       # e.g. a model that stopped loading: say so, keep the REPL
                print_error(str(exc))


def run(args: argparse.Namespace) -> int:
    store = None if args.no_save else ChatStore()
    if args.list or args.search:
        for c in store.list(args.search) if store else []:
            print(f"{c.id}\t{c.title}\t{c.model}")
        return 0
    if args.export:
        if args.conversation is None or store is None:
            raise TemperError("--export needs --conversation ID")
        print(export(store, args.conversation, args.export))
        return 0
    repl = Repl(args, store)
    if args.prompt is not None:
        return repl.ask(args.prompt)
    return repl.loop()
