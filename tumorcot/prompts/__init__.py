"""Jinja2 templates (package data) and their rendering.

``questions/<subtask>.j2`` hold the question wordings of one subtask, one variant per line,
``answers/<subtask>.j2`` its answer sentences, ``steps/<subtask>.j2`` the wordings of each step of
its rationale (``[step] template`` lines); which form a record gets is a deterministic function of
its case and subject (``choose``). ``agents/*.j2`` hold the
LLM agents' prompts. ``prompt_version()`` hashes every template, so a wording change is a new
prompt version.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources

import jinja2

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


def _root():
    return resources.files("tumorcot.prompts")


@lru_cache(maxsize=None)
def template_source(name: str) -> str:
    return _root().joinpath(name).read_text()


def template_sha256(name: str) -> str:
    return hashlib.sha256(template_source(name).encode()).hexdigest()


@lru_cache(maxsize=None)
def forms(name: str) -> tuple[str, ...]:
    """The non-comment lines of bank ``name`` (``questions/<subtask>.j2``, ``answers/...``), one form each."""
    return tuple(line for line in template_source(name).splitlines()
                 if line.strip() and not line.lstrip().startswith("{#"))


@lru_cache(maxsize=None)
def step_forms(subtask: str) -> dict[str, tuple[str, ...]]:
    """``steps/<subtask>.j2``: the wordings of each rationale step, lines ``[step] template``."""
    out: dict[str, list[str]] = {}
    for line in forms(f"steps/{subtask}.j2"):
        name, _, text = line.strip().partition("] ")
        out.setdefault(name.lstrip("["), []).append(text)
    return {k: tuple(v) for k, v in out.items()}


def question_variants(subtask: str) -> tuple[jinja2.Template, ...]:
    return tuple(_line_template(line) for line in forms(f"questions/{subtask}.j2"))


@lru_cache(maxsize=None)
def _line_template(line: str) -> jinja2.Template:
    """One template line compiled once per process (jinja caches only loader templates)."""
    return _ENV.from_string(line)


def choose(count: int, key: str) -> int:
    """The form a record gets among ``count``: a deterministic function of ``key`` (the one rule
    every bank -- questions, answers, rationale steps -- draws its wording by)."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % count


def render_question(subtask: str, key: str, **context) -> tuple[str, str]:
    """(question text, template reference ``questions/<subtask>.j2#<variant>``)."""
    lines = forms(f"questions/{subtask}.j2")
    index = choose(len(lines), key)
    return _line_template(lines[index]).render(**context).strip(), f"questions/{subtask}.j2#{index}"


def render_answer(subtask: str, key: str, **context) -> tuple[str, str]:
    """(answer sentence, reference ``answers/<subtask>.j2#<form>``) from ``answers/<subtask>.j2``
    (one form per line), chosen like a question's wording but independently of it (salted key)."""
    lines = forms(f"answers/{subtask}.j2")
    index = choose(len(lines), f"answer\x1f{subtask}\x1f{key}")
    return _line_template(lines[index]).render(**context).strip(), f"answers/{subtask}.j2#{index}"


def render_step(subtask: str, step: str, key: str, **context) -> str:
    """One rationale step's text, a wording of ``[step]`` in ``steps/<subtask>.j2`` (salted key)."""
    lines = step_forms(subtask)[step]
    return _line_template(lines[choose(len(lines), f"step\x1f{subtask}\x1f{step}\x1f{key}")]).render(**context).strip()


@lru_cache(maxsize=None)
def _compiled(name: str) -> jinja2.Template:
    return _ENV.from_string(template_source(name))


def render(name: str, **context) -> str:
    """Render template ``name`` (compiled once per process: compiling cost ~10 ms a prompt)."""
    return _compiled(name).render(**context)


@lru_cache(maxsize=1)
def prompt_version() -> str:
    digest = hashlib.sha256()

    def walk(node, prefix=""):
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(".j2"):
                digest.update(f"{prefix}{child.name}\0".encode() + child.read_bytes())

    walk(_root())
    return "prompts-" + digest.hexdigest()[:16]
