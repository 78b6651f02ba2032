"""Procedurally written calibration/evaluation records: arithmetic reasoning and JSON tool calls.

The hand-written records in data/ are few; these generators add as many reasoning and tool-call
records as a chosen token count needs. Each split has its own seed stream, and the calibration module
drops any evaluation record whose hash appears among the calibration records, so the two never overlap.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

Record = dict[str, Any]

_NAMES = ["Ana", "Bilal", "Chen", "Dara", "Emil", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kemal", "Lena",
          "Marta", "Nils", "Oyelaran", "Pia", "Quentin", "Rosa", "Sami", "Tove"]
_ITEMS = [("pencils", "cents"), ("apples", "cents"), ("tickets", "euros"), ("notebooks", "euros"),
          ("stamps", "cents"), ("bolts", "cents"), ("plants", "euros"), ("candles", "euros")]
_CITIES = ["Lisbon", "Tartu", "Kyoto", "Montreal", "Nairobi", "Porto", "Graz", "Hobart", "Cusco", "Bergen",
           "Seville", "Dakar", "Osaka", "Leeds", "Quito", "Turku"]


def _math(rng: random.Random) -> tuple[str, str]:
    kind = rng.randrange(5)
    name = rng.choice(_NAMES)
    if kind == 0:
        item, unit = rng.choice(_ITEMS)
        price, n = rng.randint(2, 40), rng.randint(3, 25)
        paid = (price * n // 100 + 1) * 100 if unit == "cents" else price * n + rng.randint(1, 30)
        total = price * n
        q = f"{name} buys {n} {item} at {price} {unit} each and pays with {paid} {unit}. How much change is due?"
        a = (f"The cost is {n} × {price} = {total} {unit}. The change is {paid} − {total} = "
             f"{paid - total} {unit}. Answer: {paid - total} {unit}.")
    elif kind == 1:
        d, h = rng.randint(60, 900), rng.randint(2, 9)
        q = f"A train covers {d} km in {h} hours. What is its average speed, to one decimal place?"
        a = f"Average speed is distance over time: {d} / {h} = {d / h:.1f} km/h. Answer: {d / h:.1f} km/h."
    elif kind == 2:
        p, x = rng.choice([5, 10, 12, 15, 20, 25, 30, 40, 75]), rng.randint(20, 2000)
        r = p * x / 100
        q = f"What is {p}% of {x}?"
        a = f"{p}% means {p}/100, so {p}/100 × {x} = {p * x}/100 = {r:g}. Answer: {r:g}."
    elif kind == 3:
        start, step = rng.randint(-20, 50), rng.choice([-7, -3, 2, 3, 4, 6, 9, 11])
        seq = [start + i * step for i in range(5)]
        q = f"Find the next number: {', '.join(map(str, seq))}, ..."
        a = (f"Each term differs from the previous one by {step}. So the next term is {seq[-1]} + ({step}) = "
             f"{seq[-1] + step}. Answer: {seq[-1] + step}.")
    else:
        w, h = rng.randint(3, 30), rng.randint(3, 30)
        q = f"A rectangular garden is {w} m wide and {h} m long. What are its area and perimeter?"
        a = (f"Area = {w} × {h} = {w * h} m². Perimeter = 2 × ({w} + {h}) = {2 * (w + h)} m. "
             f"Answer: {w * h} m² and {2 * (w + h)} m.")
    return q, a


# Each split words its framing differently, so even shared template text does not make long overlaps.
_MATH_FRAME = {"calibration": ("Question", "Reasoning", "Solve the problem step by step, then give the answer "
                                                         "on its own line."),
               "evaluation": ("Problem", "Working", "Work through this carefully and end with the answer.")}
_TOOL_SYSTEM = {
    "calibration": "You can call tools by answering with JSON {\"tool\": name, \"arguments\": {...}}. Tools: "
                   "get_weather, search_flights, set_reminder, count_items.",
    "evaluation": "Available functions: get_weather, search_flights, set_reminder, count_items. To use one, "
                  "reply only with a JSON object giving the tool name and its arguments.",
}


def math_record(rng: random.Random, split: str = "calibration") -> Record:
    q, a = _math(rng)
    ask, work, system = _MATH_FRAME[split]
    if rng.random() < 0.5:
        return {"domain": "math", "text": f"{ask}: {q}\n{work}: {a}"}
    return {"domain": "math", "messages": [
        {"role": "system", "content": system},
        {"role": "user", "content": q}, {"role": "assistant", "content": a.replace(" Answer:", "\nAnswer:")}]}


def _tool(rng: random.Random) -> tuple[str, str, dict[str, Any], dict[str, Any], str]:
    kind = rng.randrange(4)
    if kind == 0:
        city = rng.choice(_CITIES)
        t = rng.randint(-10, 35)
        return (f"What's the weather like in {city}?", "get_weather", {"city": city, "unit": "c"},
                {"city": city, "temperature": t, "unit": "c"}, f"It is {t} °C in {city} right now.")
    if kind == 1:
        a, b = rng.sample(_CITIES, 2)
        day = rng.randint(1, 28)
        return (f"Find me a flight from {a} to {b} on March {day}.", "search_flights",
                {"origin": a, "destination": b, "date": f"2026-03-{day:02d}"},
                {"flights": [{"depart": f"{rng.randint(6, 21):02d}:{rng.choice(['05', '30', '45'])}",
                              "price_eur": rng.randint(49, 480)}]},
                f"There is one flight from {a} to {b} that day; the details are above.")
    if kind == 2:
        amount = rng.randint(5, 900)
        return (f"Remind me to call {rng.choice(_NAMES)} in {amount % 90 + 5} minutes.", "set_reminder",
                {"minutes": amount % 90 + 5, "text": "call"}, {"ok": True}, "Done: the reminder is set.")
    q = rng.choice(["open invoices", "unread messages", "failed builds", "overdue tasks"])
    n = rng.randint(0, 40)
    return (f"How many {q} do I have?", "count_items", {"query": q}, {"count": n}, f"You have {n} {q}.")


def tool_record(rng: random.Random, split: str = "calibration") -> Record:
    user, name, args, result, answer = _tool(rng)
    system = _TOOL_SYSTEM[split]
    return {"domain": "tools", "messages": [
        {"role": "system", "content": system}, {"role": "user", "content": user},
        {"role": "assistant", "content": json.dumps({"tool": name, "arguments": args}, ensure_ascii=False)},
        {"role": "tool", "content": json.dumps(result, ensure_ascii=False)},
        {"role": "assistant", "content": answer}]}


def records(split: str) -> Iterator[Record]:
    """An endless, deterministic stream of generated records for one split ("calibration"/"evaluation")."""
    rng = random.Random(f"temper-{split}")
    while True:
        yield math_record(rng, split)
        yield tool_record(rng, split)
