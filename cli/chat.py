"""`temper chat MODEL`: a plain line REPL that streams answers to stdout (pipes, scripts, SSH).

Thinking goes to stderr (dimmed on a terminal), answers to stdout, a stats line to stderr after each
answer. `--prompt TEXT` answers once and exits. Conversations are saved like the Chat tab's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.chat.export import export, stats_line
from ..core.chat.session import make_request
from ..core.chat.settings import ChatSettings
from ..core.chat.store import ChatStore, Conversation, title_from
from ..core.engine import get_engine
from ..core.engine.events import Cancelled, Failed, Finished
from ..core.engine.generate import StatsEvent, TokenEvent, chat_job
from ..core.engine.loader import resolve
from ..core.engine.reasoning import EFFORTS
from ..core.errors import TemperError

HELP = """commands: /quit  /new  /system TEXT  /effort none|low|medium|high  /regen  /drafter PATH|self|off
          /draft-tokens N  /temp T  /history  /export FILE  /help"""


def register(sub) -> None:
    p = sub.add_parser("chat", help="chat with a model in the terminal (line REPL, or one-shot --prompt)")
    p.add_argument("model", nargs="?", help="model folder or cached Hub id (default: the conversation's)")
    p.add_argument("--prompt", help="answer this one prompt and exit (stats on stderr)")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--temp", type=float, help="temperature (0 = greedy)")
    p.add_argument("--top-p", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--min-p", type=float)
    p.add_argument("--repeat-penalty", type=float, help="repetition penalty (1 = off)")
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--seed", type=int)
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
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace, base: dict | None = None) -> ChatSettings:
    s = ChatSettings.from_dict(base)
    sp = s.sampling
    for attr, value in [("temperature", args.temp), ("top_p", args.top_p), ("top_k", args.top_k),
                        ("min_p", args.min_p), ("repetition_penalty", args.repeat_penalty),
                        ("max_tokens", args.max_tokens), ("seed", args.seed)]:
        if value is not None:
            setattr(sp, attr, value)
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


class Repl:
    def __init__(self, args: argparse.Namespace, store: ChatStore | None):
        self.args = args
        self.store = store
        self.conv: Conversation | None = None
        self.messages: list = []
        self.model = args.model
        self.system = args.system or ""
        self.settings = settings_from(args)
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
        """Send `text` (None: regenerate the last answer). Returns 0, or 1 if generation failed."""
        from ..core.chat.store import Message

        if text is not None:
            self._save_user(text)
            self.messages.append(Message(0, 0, "user", text))
        request = make_request(self.model, self.system, self.messages, self.settings)
        writer = self.store.start_answer(self.conv.id) if self.store and self.conv else None
        job = get_engine().submit(chat_job(request), kind="chat")
        answer, thinking, in_think = [], [], False
        try:
            events = job.events()
            for event in events:
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
                elif isinstance(event, Finished):
                    return self._done(event.result, writer)
                elif isinstance(event, (Failed, Cancelled)):
                    if writer:
                        writer.finish("".join(answer), "".join(thinking), "error",
                                      {"error": getattr(event, "message", "cancelled")})
                    if answer:
                        sys.stdout.write("\n")
                    print(f"temper: {getattr(event, 'message', 'cancelled')}", file=sys.stderr)
                    return 2 if isinstance(event, Failed) else 1
        except KeyboardInterrupt:  # Ctrl-C stops the answer, keeps what came, and the REPL goes on
            job.cancel()
            for event in events:
                if isinstance(event, Finished):
                    return self._done(event.result, writer)
            return 1
        return 1

    def _done(self, result, writer) -> int:
        from ..core.chat.store import Message

        stats = result.stats.to_dict()
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
        elif name == "effort":
            self.settings.effort = rest or None
            self.settings.validate()
            print(f"[effort {rest or 'default'}]", file=sys.stderr)
        elif name == "drafter":
            self.settings.drafter = None if rest in ("", "off") else rest
            print(f"[drafter {self.settings.drafter or 'off'}]", file=sys.stderr)
        elif name == "draft-tokens":
            self.settings.num_draft_tokens = int(rest)
            self.settings.validate()
        elif name == "temp":
            self.settings.sampling.temperature = float(rest)
            self.settings.validate()
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
        else:
            print(HELP, file=sys.stderr)
        return True

    def loop(self) -> int:
        if sys.stdin.isatty():
            print(f"temper chat · {self.model} · /help for commands, /quit to leave", file=sys.stderr)
        while True:
            if sys.stdin.isatty():
                sys.stderr.write("> ")
                sys.stderr.flush()
            line = sys.stdin.readline()
            if not line:
                return 0
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if line.startswith("/"):
                try:
                    if not self.command(line):
                        return 0
                except (TemperError, ValueError) as exc:
                    print(f"temper: {exc}", file=sys.stderr)
                continue
            self.ask(line)


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
