"""The memoised ``Lexicon.scan`` gives exactly the hits and the verdicts of an uncached scan, on
every text of real records: the offline and the LLM (varied phrasing) records of phantom cases,
and the same records with a wrong claim appended (so verdicts include rejections)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from llm_oracle import Oracle
from test_llm_agents import KG, generate

from tumorcot.agents import lexicon as lexicon_module
from tumorcot.agents.calibrator import check_record
from tumorcot.agents.offline import OfflineGenerator

WRONG = " The lesion is hyperdense, 987 mm, in the left kidney; T4 N1 M1, a sarcoma."


def strings(value) -> list[str]:
    """Every string inside a record's dump (question, options, answer, think, steps, turns...)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    from tumorcot.case_manifest import read_case_manifest
    from tumorcot.imaging.phantom import write_phantom_cases
    from tumorcot.pipeline import extract_facts

    manifest = write_phantom_cases(tmp_path_factory.mktemp("lexicon-cache"), 2, seed=5, scale=2)
    out = []
    for case in read_case_manifest(manifest):
        facts = extract_facts(case, b"lexicon-cache-salt")
        records = OfflineGenerator(KG).generate(facts)
        records += generate(facts, Oracle(facts, KG, phrasing="varied"))[0].records
        records += [r.model_copy(update={"answer": r.answer + WRONG}) for r in records]
        out.append((facts, records))
    return out


def verdicts(cases) -> list[list[str]]:
    return [check_record(r, facts, KG) for facts, records in cases for r in records]


def test_cached_scan_equals_uncached_scan_on_every_text(cases):
    lexicon = lexicon_module.Lexicon(KG)
    texts = [t for _, records in cases for r in records for t in strings(r.model_dump())]
    assert len(texts) > 500 and len(set(texts)) < len(texts)   # texts repeat: the cache is hit
    first = {t: lexicon.scan(t) for t in texts}
    for text in texts:                       # second pass: every answer comes from the cache
        cached = lexicon.scan(text)
        assert cached == first[text] == list(lexicon._scan(text))
    assert lexicon._scan_cached.cache_info().hits >= len(texts)
    assert sum(len(h) for h in first.values()) > 1000         # real hits, not empty lists


def test_callers_cannot_change_a_cached_answer(cases):
    lexicon = lexicon_module.Lexicon(KG)
    text = cases[0][1][-1].answer
    hits = lexicon.scan(text)
    assert hits
    hits.clear()
    with pytest.raises(dataclasses.FrozenInstanceError):
        lexicon.scan(text)[0].kind = "changed"
    assert lexicon.scan(text) == list(lexicon._scan(text))


def test_verdicts_with_the_cache_equal_verdicts_without(cases, monkeypatch):
    cached = verdicts(cases)
    with monkeypatch.context() as m:         # a lexicon that remembers nothing
        m.setattr(lexicon_module, "SCAN_CACHE_SIZE", 0)
        m.setattr(lexicon_module, "_LEXICA", {})
        uncached = verdicts(cases)
        assert lexicon_module.lexicon_for(KG)._scan_cached.cache_info().hits == 0
    assert cached == uncached
    wrong = [r.answer.endswith(WRONG) for _, records in cases for r in records]
    assert [bool(v) for v in cached] == wrong   # faithful records pass, the wrong claim is caught


def test_phrase_trie_matches_like_the_longest_first_alternation(cases):
    lexicon = lexicon_module.Lexicon(KG)
    words = sorted(lexicon.phrases, key=len, reverse=True)
    plain = re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in words) + r")(?![\w-])", re.I)
    texts = {t for _, records in cases for r in records for t in strings(r.model_dump())}
    texts |= {"Kidneys and kidney-like; RIGHT KIDNEY, right kidneys. segment IVa, segment 4b, segment IV.",
              "hypo-attenuating, hypoattenuating lesion of the left adrenal gland (adrenal)."}
    found = 0
    for text in texts:
        spans = [m.span() for m in plain.finditer(text)]
        assert [m.span() for m in lexicon.pattern.finditer(text)] == spans, text
        found += len(spans)
    assert found > 1000
    assert re.fullmatch(lexicon_module.phrase_trie(["kidney", "kidneys", "kid"]), "kidneys")
    assert lexicon_module.phrase_trie(["ab", "abc", "b"]) == "(?:ab(?:c)?|b)"
