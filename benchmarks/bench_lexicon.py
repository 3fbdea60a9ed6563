"""Claim checking CPU (issue 15): ``check_record`` over every offline record of phantom cases (one
fact table per case, as ``calibrate``), and
``Lexicon.scan`` over every text of those records, with the lexicon as it was (plain longest-first
alternation, no memo) and as it is (phrase trie, memoised scan). Prints CPU seconds (process time)
and ratios measured in this one run, the verdicts' agreement, and the load average.

    PYTHONPATH=. python benchmarks/bench_lexicon.py [--cases 4] [--scale 2]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_lexicon_cache import strings  # noqa: E402  (every string of a record's dump)


def cpu(fn) -> tuple[float, object]:
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def main(cases: int, scale: int) -> None:
    from tumorcot.agents import lexicon as lexicon_module
    from tumorcot.agents.calibrator import check_record
    from tumorcot.agents.offline import OfflineGenerator
    from tumorcot.case_manifest import read_case_manifest
    from tumorcot.imaging.phantom import write_phantom_cases
    from tumorcot.knowledge_graph import load_kg
    from tumorcot.pipeline import extract_facts

    kg = load_kg()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_phantom_cases(Path(tmp), cases, seed=0, scale=scale)
        data = []
        for case in read_case_manifest(manifest):
            facts = extract_facts(case, b"bench-lexicon-salt")
            data.append((facts, OfflineGenerator(kg).generate(facts)))
    records = [(f, r, table) for f, rs in data for table in [f.fact_table()] for r in rs]  # as calibrate
    texts = [t for _, r, _ in records for t in strings(r.model_dump())]

    def as_it_was() -> lexicon_module.Lexicon:
        lexicon = lexicon_module.Lexicon(kg)
        words = sorted(lexicon.phrases, key=len, reverse=True)
        lexicon.pattern = re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in words) + r")(?![\w-])", re.I)
        lexicon._scan_cached = lru_cache(maxsize=0)(lexicon._scan)
        return lexicon

    def verdicts(lexicon) -> list[list[str]]:
        lexicon_module._LEXICA.clear()
        lexicon_module._LEXICA[(kg.version, id(kg))] = lexicon
        return [check_record(r, f, kg, table) for f, r, table in records]

    old, new = as_it_was(), lexicon_module.Lexicon(kg)   # built before the clock starts
    old_scan, old_hits = cpu(lambda: [old.scan(t) for t in texts])
    new_scan, new_hits = cpu(lambda: [new.scan(t) for t in texts])
    old_check, old_v = cpu(lambda: verdicts(as_it_was()))
    new_check, new_v = cpu(lambda: verdicts(lexicon_module.Lexicon(kg)))
    print(f"{len(records)} offline records of {cases} phantom cases, {len(texts)} texts "
          f"({len(set(texts))} distinct, {sum(map(len, texts))} characters)")
    print(f"scan every text:        as it was {old_scan:.3f} s, now {new_scan:.3f} s  ratio {old_scan / new_scan:.1f}x")
    print(f"check_record (all):     lexicon as it was {old_check:.3f} s, now {new_check:.3f} s  ratio {old_check / new_check:.1f}x "
          f"({1000 * old_check / len(records):.2f} -> {1000 * new_check / len(records):.2f} ms per record)")
    print(f"hits identical: {old_hits == new_hits}; verdicts identical: {old_v == new_v} "
          f"({sum(bool(v) for v in new_v)} records rejected); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--scale", type=int, default=2, help="phantom voxel coarsening")
    args = parser.parse_args()
    main(args.cases, args.scale)
