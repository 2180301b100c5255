"""The leak scan: every form of every token the tests handed out, looked for in everything a
run produced, in one pass per source (Aho-Corasick, pyahocorasick): thousands of tokens over
hundreds of megabytes of logs take seconds instead of one substring search per token."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping

import ahocorasick


def forms(token: str) -> dict[str, str]:
    """What a leak of `token` looks like: itself, its base64 (a Secret's data), its first 24
    characters (a truncated log line)."""
    return {
        token: "raw",
        base64.b64encode(token.encode()).decode(): "base64",
        token[:24]: "first 24 characters",
    }


def scan(tokens: Iterable[str], haystacks: Mapping[str, str]) -> list[tuple[str, str]]:
    """(source, form) for every hit; the token itself is never part of the answer."""
    automaton = ahocorasick.Automaton()
    for token in tokens:
        for needle, form in forms(token).items():
            automaton.add_word(needle, form)
    if len(automaton) == 0:
        return []
    automaton.make_automaton()
    hits: list[tuple[str, str]] = []
    for where, text in haystacks.items():
        found = {form for _, form in automaton.iter(text)}
        hits += [(where, form) for form in sorted(found)]
    return hits
