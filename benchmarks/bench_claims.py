"""Closed-world claim checking under fire (issue 11).

Phantom cases are built with ``--generator llm`` against the local OpenAI-compatible test server
(``tests/llm_server.py``) answering every agent faithfully in varied phrasing (slots plus free
wordings), once clean and once with a wrong claim of one kind (in turn) slipped into 50 % of
the reasoner, summarizer and question-writer answers (``tests/llm_oracle.Injector``). Prints:

- catch rate per kind: injected claims that never reached a shard / injected claims;
- false-rejection rate on faithful answers: faithful reasoner answers the calibrator rejected
  (raw answers without an injection) / faithful reasoner answers, and every rejection of the
  clean run / its agent answers;
- records shipped at 50 % injection / records of the clean run;
- the load average (``os.getloadavg``).

Run: ``PYTHONPATH=. python benchmarks/bench_claims.py [--cases N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from llm_oracle import KINDS, Injector, Oracle, shipped  # noqa: E402
from llm_server import ScriptedLLMServer  # noqa: E402


def build(manifest: Path, out: Path, facts: dict, injector: Injector) -> tuple[list[dict], list[dict]]:
    from tumorcot.flows.build import run_build
    from tumorcot.knowledge_graph import load_kg
    from tumorcot.store.shards import read_log, read_records

    with ScriptedLLMServer(Oracle(facts, load_kg(), injector, phrasing="varied")) as srv:
        os.environ.update(OPENAI_BASE_URL=srv.base_url, OPENAI_API_KEY="sk-bench", TUMORCOT_MODEL="scripted-model")
        summary = run_build(manifest, out, generator="llm")
    assert summary["failed"] == 0, summary
    return read_records(out).to_pylist(), read_log(out).to_pylist()


def main(cases: int) -> None:
    from tumorcot.case_manifest import read_case_manifest
    from tumorcot.imaging.phantom import write_phantom_cases
    from tumorcot.pipeline import extract_facts
    from tumorcot.privacy import load_or_create_salt

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["PREFECT_HOME"] = str(tmp / "prefect-home")
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")  # a busy machine
        manifest = write_phantom_cases(tmp / "cases", cases, seed=0)
        facts = {}
        for name in ("clean", "half"):   # each dataset has its own salt, so its own case ids
            salt = load_or_create_salt(tmp / name)
            facts.update({f.case_id: f for f in (extract_facts(c, salt) for c in read_case_manifest(manifest))})
        clean_inj, half_inj = Injector(0.0), Injector(0.5, seed=7)
        clean, clean_log = build(manifest, tmp / "clean", facts, clean_inj)
        half, half_log = build(manifest, tmp / "half", facts, half_inj)

    injected = Counter(k for _, k, _ in half_inj.injected)
    leaked = Counter(k for _, k, _ in shipped(half_inj, half))
    print(f"bench_claims: {cases} phantom cases, --generator llm against 127.0.0.1, 50 % injection; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'kind':26s} {'agents':22s} {'injected':>8s} {'shipped':>8s} {'caught':>8s}")
    for kind in KINDS:
        agents = ",".join(sorted({a for a, k, _ in half_inj.injected if k == kind}))
        n = injected[kind]
        rate = f"{(n - leaked[kind]) / n:.0%}" if n else "-"
        print(f"{kind:26s} {agents:22s} {n:8d} {leaked[kind]:8d} {rate:>8s}")
    total = sum(injected.values())
    print(f"{'all kinds':26s} {'':22s} {total:8d} {sum(leaked.values()):8d} "
          f"{(total - sum(leaked.values())) / max(total, 1):8.0%}")

    def rejected(rows):
        return [r for r in rows if r["verdict"] in ("rejected", "failed")]

    answers = [r for r in half_log if r["agent"] == "reasoner" and r["raw_response"]]
    faithful = [r for r in answers if "Notably," not in r["raw_response"]]
    false_rej = [r for r in faithful if r["verdict"] in ("rejected", "failed")]
    clean_answers = [r for r in clean_log if r["raw_response"]]
    print(f"false rejections, 50 % run: {len(false_rej)} of {len(faithful)} faithful reasoner answers "
          f"({len(false_rej) / max(len(faithful), 1):.1%})")
    print(f"false rejections, clean run: {len(rejected(clean_log))} rejections over {len(clean_answers)} agent answers "
          f"({len(rejected(clean_log)) / max(len(clean_answers), 1):.1%})")
    print(f"records shipped at 50 % injection / clean run: {len(half)} / {len(clean)} = {len(half) / len(clean):.3f}")
    print(f"load average now {os.getloadavg()[0]:.2f}")
    codes = Counter(r.split("[", 1)[1].split("]", 1)[0] for row in rejected(half_log) for r in row["reasons"] if "[" in r)
    print("rejection reasons at 50 % (per code): " + ", ".join(f"{c} {n}" for c, n in codes.most_common()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10)
    main(parser.parse_args().cases)
