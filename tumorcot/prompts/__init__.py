"""Jinja2 templates (package data) and their rendering.

``questions/<subtask>.j2`` hold the question wordings of one subtask, one variant per line;
which variant a record gets is a deterministic function of its record id. ``agents/*.j2`` hold the
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
def question_variants(subtask: str) -> tuple[jinja2.Template, ...]:
    lines = [line for line in template_source(f"questions/{subtask}.j2").splitlines()
             if line.strip() and not line.lstrip().startswith("{#")]
    return tuple(_line_template(line) for line in lines)


@lru_cache(maxsize=None)
def _line_template(line: str) -> jinja2.Template:
    """One template line compiled once per process (jinja caches only loader templates)."""
    return _ENV.from_string(line)


def render_question(subtask: str, key: str, **context) -> tuple[str, str]:
    """(question text, template reference ``questions/<subtask>.j2#<variant>``)."""
    variants = question_variants(subtask)
    index = int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(variants)
    return variants[index].render(**context).strip(), f"questions/{subtask}.j2#{index}"


def render_answer(subtask: str, key: str, **context) -> str:
    """An answer sentence from ``answers/<subtask>.j2`` (one form per line), chosen like a
    question's wording but independently of it (salted key)."""
    lines = [line for line in template_source(f"answers/{subtask}.j2").splitlines()
             if line.strip() and not line.lstrip().startswith("{#")]
    index = int(hashlib.sha256(f"answer\x1f{key}".encode()).hexdigest(), 16) % len(lines)
    return _line_template(lines[index]).render(**context).strip()


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
