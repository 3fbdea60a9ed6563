"""The tumour-ontology knowledge graph and the queries the generators and the calibrator use.

Loaded from ``data/tumor_kg_v2.json`` (nodes and typed edges; every edge cites a source and the
section or table of it, ``data/CHANGELOG.md`` says what changed between versions); the
attribute rules and their thresholds live in ``tumorcot.vocabulary``. Its version is the sha256 of that file's bytes. Node ids are ``<type>:<...>``: ``organ:liver``,
``subregion:liver:segment_IV``, ``feature:hypodense``, ``impression:liver:simple_cyst``,
``pathology:malignant``, ``histology:...``, ``staging:pancreas:T``.

Ranking. An impression is a *candidate* for an organ and a set of observed features when it
belongs to that organ, every ``required_for`` feature is observed, every ``requires_one_of`` group
has an observed member, no ``excludes`` feature is observed, and at least one ``supports``
feature is observed. Its score is the sum of the weights of its observed ``supports`` edges (an
edge that names ``phases`` counts only when the case's phase feature is one of them). The best
candidate *leads* only when the file's ``decision`` rule calls it decisive (enough score, enough
margin over the next, one key feature); otherwise ``impression:<organ>:indeterminate`` leads and
the candidates are its differential. The indeterminate impression is always licensed for a lesion.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import networkx as nx

from tumorcot.errors import KnowledgeGraphError
from tumorcot.vocabulary import NO_HOST, SOFT_TISSUE, THRESHOLDS, attribute_rules, organ_family

DATA_FILE = "tumor_kg_v2.json"
EDGE_TYPES = {
    "has_subregion", "has_impression", "supports", "required_for", "requires_one_of", "excludes",
    "classified_as", "histology_of", "staged_by", "drains_to", "may_be", "has_category",
}
PHASE_PREFIX = "feature:phase_"


@dataclass(frozen=True)
class ImpressionMatch:
    node_id: str
    label: str
    category: str
    supporting: tuple[str, ...]
    score: float
    key: bool = False
    """Whether a supporting feature has at least the decision rule's key weight."""


@dataclass(frozen=True)
class Assessment:
    """The leading impression for one lesion and the differential behind it."""

    leading: ImpressionMatch
    differential: tuple[ImpressionMatch, ...]
    decisive: bool


class KnowledgeGraph:
    def __init__(self, data: dict, version: str):
        self.version = version
        self.data = data
        self.decision = data.get("decision", {"decisive_score": 5, "decisive_margin": 2, "key_weight": 3})
        self.graph = nx.MultiDiGraph()
        for node in data["nodes"]:
            self.graph.add_node(node["id"], **node)
        for edge in data["edges"]:
            for end in (edge["source"], edge["target"]):
                if end not in self.graph:
                    raise KnowledgeGraphError(f"edge {edge} names unknown node {end!r}")
            if edge["type"] not in EDGE_TYPES:
                raise KnowledgeGraphError(f"edge {edge} has unknown type {edge['type']!r}")
            if edge.get("ref") not in data["sources"]:
                raise KnowledgeGraphError(f"edge {edge} cites unknown source {edge.get('ref')!r}")
            attrs = {k: v for k, v in edge.items() if k not in ("source", "target", "type")}
            self.graph.add_edge(edge["source"], edge["target"], key=_edge_key(edge), type=edge["type"], **attrs)

    @property
    def attribute_rules(self) -> dict[str, str]:
        """How measured values become features: stated once, with their numbers, in the vocabulary."""
        return attribute_rules()

    # -- lookups -----------------------------------------------------------------------------
    def __contains__(self, node_id: str) -> bool:
        return node_id in self.graph

    def node(self, node_id: str) -> dict:
        if node_id not in self.graph:
            raise KnowledgeGraphError(f"unknown knowledge-graph node {node_id!r}")
        return self.graph.nodes[node_id]

    def label(self, node_id: str) -> str:
        return self.node(node_id)["label"]

    def _out(self, node_id: str, edge_type: str) -> list[tuple[str, dict]]:
        return [(t, d) for _, t, d in self.graph.out_edges(node_id, data=True) if d["type"] == edge_type]

    def _in(self, node_id: str, edge_type: str) -> list[tuple[str, dict]]:
        return [(s, d) for s, _, d in self.graph.in_edges(node_id, data=True) if d["type"] == edge_type]

    def _targets(self, node_id: str, edge_type: str) -> list[str]:
        return [t for t, _ in self._out(node_id, edge_type)]

    def _sources(self, node_id: str, edge_type: str) -> list[str]:
        return [s for s, _ in self._in(node_id, edge_type)]

    def edges_of(self, node_id: str) -> list[dict]:
        """Every edge touching ``node_id`` as ``{source, target, type, ref, where, ...}``."""
        out = [dict(d, source=s, target=t) for s, t, d in self.graph.out_edges(node_id, data=True)]
        return out + [dict(d, source=s, target=t) for s, t, d in self.graph.in_edges(node_id, data=True)]

    def citation(self, ref: str) -> str:
        return self.data["sources"][ref]

    def organ_key(self, organ_name: str) -> str | None:
        """KG organ key for a TotalSegmentator structure name (kidney_left -> kidney)."""
        if organ_name in NO_HOST:
            return SOFT_TISSUE
        family = organ_family(organ_name)
        return family if f"organ:{family}" in self.graph else None

    def subregions(self, organ_key: str) -> list[str]:
        return self._targets(f"organ:{organ_key}", "has_subregion")

    def subregion_node(self, organ_key: str, name: str) -> str | None:
        node_id = f"subregion:{organ_key}:{name.replace(' ', '_')}"
        return node_id if node_id in self.graph else None

    def indeterminate_node(self, organ_key: str) -> str | None:
        node_id = f"impression:{organ_key}:indeterminate"
        return node_id if node_id in self.graph else None

    # -- reasoning ---------------------------------------------------------------------------
    def _candidate(self, imp: str, features: set[str]) -> ImpressionMatch | None:
        if not {s for s in self._sources(imp, "required_for")} <= features:
            return None
        groups: dict[str, set[str]] = {}
        for src, d in self._in(imp, "requires_one_of"):
            groups.setdefault(d.get("group", ""), set()).add(src)
        if any(not (members & features) for members in groups.values()):
            return None
        if set(self._sources(imp, "excludes")) & features:
            return None
        phases = {f[len(PHASE_PREFIX):] for f in features if f.startswith(PHASE_PREFIX)}
        hits, score, key = [], 0.0, False
        for src, d in self._in(imp, "supports"):
            if src not in features or (d.get("phases") and not phases & set(d["phases"])):
                continue
            weight = float(d.get("weight", 1))
            hits.append(src)
            score += weight
            key = key or weight >= self.decision["key_weight"]
        if not hits:
            return None
        data = self.graph.nodes[imp]
        return ImpressionMatch(imp, data["label"], data["category"], tuple(sorted(set(hits))), score, key)

    def impressions_for(self, organ_key: str, features: set[str]) -> list[ImpressionMatch]:
        """Candidate impressions for ``organ_key`` given ``features`` (feature node ids), best
        score first (ties: malignant first, then by node id); the indeterminate impression is not among them."""
        matches = []
        for imp in self._targets(f"organ:{organ_key}", "has_impression"):
            if imp.endswith(":indeterminate"):
                continue
            match = self._candidate(imp, features)
            if match is not None:
                matches.append(match)
        # equal scores: malignant before the rest (a differential must not bury a malignancy)
        return sorted(matches, key=lambda m: (-m.score, m.category != "malignant", m.node_id))

    def assess(self, organ_key: str, features: set[str]) -> Assessment:
        """The leading impression and its differential (see the module docstring)."""
        ranked = self.impressions_for(organ_key, features)
        rule = self.decision
        if ranked:
            best, runner = ranked[0], ranked[1].score if len(ranked) > 1 else 0.0
            if best.score >= rule["decisive_score"] and best.score - runner >= rule["decisive_margin"] and best.key:
                return Assessment(best, tuple(ranked[1:]), True)
        ind = self.indeterminate_node(organ_key)
        if ind is None:
            raise KnowledgeGraphError(f"organ {organ_key!r} has no indeterminate impression")
        data = self.graph.nodes[ind]
        lead = ImpressionMatch(ind, data["label"], data["category"], tuple(sorted(f for f in features
                               if not f.startswith(PHASE_PREFIX))), 0.0)
        return Assessment(lead, tuple(ranked), False)

    def is_licensed(self, organ_key: str, impression_id: str, features: set[str]) -> bool:
        if impression_id == self.indeterminate_node(organ_key):
            return "feature:no_focal_lesion" not in features
        return any(m.node_id == impression_id for m in self.impressions_for(organ_key, features))

    def is_urgent(self, impression_id: str) -> bool:
        return bool(self.graph.nodes[impression_id].get("urgent"))

    def pathology_of(self, impression_id: str) -> str:
        """The pathology category node (benign / malignant / indeterminate / none)."""
        return self._targets(impression_id, "classified_as")[0]

    def histologies_of(self, impression_id: str) -> list[str]:
        return self._targets(impression_id, "histology_of")

    def reachable_pathologies(self, impression_id: str) -> set[str]:
        """Pathology and histology nodes reachable from an impression (through 'may_be')."""
        category = self.pathology_of(impression_id)
        out = {category, *self.histologies_of(impression_id)}
        out.update(self._targets(category, "may_be"))
        return out

    def reasoning_path(self, organ_key: str, features: set[str], impression_id: str) -> list[str]:
        """organ -> the supporting features -> impression -> pathology category."""
        if impression_id == self.indeterminate_node(organ_key) and self.is_licensed(organ_key, impression_id, features):
            supporting = tuple(sorted(f for f in features if not f.startswith(PHASE_PREFIX)))
        else:
            match = next((m for m in self.impressions_for(organ_key, features) if m.node_id == impression_id), None)
            if match is None:
                raise KnowledgeGraphError(f"{impression_id} is not licensed for {organ_key} by {sorted(features)}")
            supporting = match.supporting
        return [f"organ:{organ_key}", *supporting, impression_id, self.pathology_of(impression_id)]

    def match_histology(self, text: str) -> str | None:
        """The histology node whose label, synonym or abbreviation occurs in ``text`` (longest wins)."""
        low = text.lower()
        best, best_len = None, 0
        for n, d in self.graph.nodes(data=True):
            if d["type"] != "histology":
                continue
            names = [d["label"], *d.get("synonyms", [])]
            hit = [len(x) for x in names if x.lower() in low]
            hit += [len(a) for a in d.get("abbreviations", []) if f" {a} " in f" {text} "]
            if hit and max(hit) > best_len:
                best, best_len = n, max(hit)
        return best

    # -- staging -----------------------------------------------------------------------------
    def staging_rule(self, organ_key: str) -> dict | None:
        node_id = f"staging:{organ_key}:T"
        return dict(self.graph.nodes[node_id], id=node_id) if node_id in self.graph else None

    def size_rule_applies(self, organ_key: str, impressions: list[str], histologies: list[str] = ()) -> bool:
        """Whether the organ's size rule stages this tumour: the leading impression is one the rule
        ``applies_to``, or a given histology is in ``applies_to_histology`` or belongs to one of
        the ``applies_to`` impressions (HCC rules do not stage metastases)."""
        rule = self.staging_rule(organ_key)
        if rule is None or rule.get("basis") != "size":
            return False
        return self.applies_by_impression(rule, impressions) or self.applies_by_histology(rule, histologies)

    @staticmethod
    def applies_by_impression(rule: dict, impressions: list[str]) -> bool:
        """Whether a rule node's ``applies_to`` holds the leading impression (``impressions[0]``)."""
        return bool(impressions) and impressions[0] in set(rule.get("applies_to", []))

    def applies_by_histology(self, rule: dict, histologies: list[str]) -> bool:
        """Whether a given histology is in a rule node's ``applies_to_histology`` or belongs to one
        of its ``applies_to`` impressions."""
        allowed = set(rule.get("applies_to_histology", []))
        allowed.update(h for k in rule.get("applies_to", []) for h in self.histologies_of(k))
        return any(h in allowed for h in histologies)

    def t_category_by_size(self, organ_key: str, greatest_cm: float, *, solitary: bool = True,
                           vascular_contact: bool = False) -> str | None:
        """AJCC 8 T category where size alone decides it; None where it cannot be decided."""
        band = self.t_band(organ_key, greatest_cm, solitary=solitary, vascular_contact=vascular_contact)
        return band["t"] if band else None

    def t_band(self, organ_key: str, greatest_cm: float, *, solitary: bool = True,
               vascular_contact: bool = False) -> dict | None:
        """The size rule's entry (``t``, ``min_cm``, ``max_cm``, flags) the greatest dimension falls
        in, or None. Ranges are (min, max]: above ``min_cm`` up to and including ``max_cm``, unless
        a rule says ``min_inclusive`` or ``max_exclusive`` (pancreas T1b "< 1 cm", T1c "1-2 cm")."""
        rule = self.staging_rule(organ_key)
        if rule is None or rule["basis"] != "size":
            return None
        for r in rule["rules"]:
            if r.get("solitary") and not solitary or r.get("multiple") and solitary:
                continue
            if r.get("no_vascular_invasion") and vascular_contact:
                continue
            low, high = r.get("min_cm", float("-inf")), r.get("max_cm", float("inf"))
            above = greatest_cm >= low if r.get("min_inclusive") else greatest_cm > low
            below = greatest_cm < high if r.get("max_exclusive") else greatest_cm <= high
            if above and below:
                return dict(r)
        return None

    def t_thresholds_cm(self, organ_key: str) -> list[float]:
        """The size cut-offs of the organ's T rule (for the slice-thickness caveat)."""
        rule = self.staging_rule(organ_key) or {}
        cuts = {c for r in rule.get("rules", []) for c in (r.get("min_cm"), r.get("max_cm")) if c is not None}
        return sorted(cuts)


def _edge_key(edge: dict) -> str:
    return edge["type"] + (f":{edge['group']}" if edge.get("group") else "")


_THRESHOLD = re.compile(r"\{([a-z_]+)\}")


def with_thresholds(text: str) -> str:
    """A node text with its ``{threshold_name}`` placeholders filled from the vocabulary, so a
    cut-off the KG states is the number imaging uses (written once, in ``THRESHOLDS``)."""
    def value(match: re.Match) -> str:
        if match.group(1) not in THRESHOLDS:
            raise KnowledgeGraphError(f"{DATA_FILE}: {match.group(0)} names no threshold of tumorcot.vocabulary")
        return f"{THRESHOLDS[match.group(1)][0]:g}"
    return _THRESHOLD.sub(value, text)


@lru_cache(maxsize=1)
def load_kg() -> KnowledgeGraph:
    """The KG; its version hashes the data file and the thresholds its texts state."""
    raw = resources.files("tumorcot.knowledge_graph").joinpath("data", DATA_FILE).read_bytes()
    stated = json.dumps({k: v[0] for k, v in sorted(THRESHOLDS.items())}).encode()
    version = "kg-" + hashlib.sha256(raw + b"\0" + stated).hexdigest()[:16]
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise KnowledgeGraphError(f"{DATA_FILE} is not valid JSON: {exc}") from exc
    for node in data["nodes"]:
        for field in ("label", "description"):
            if isinstance(node.get(field), str):
                node[field] = with_thresholds(node[field])
    return KnowledgeGraph(data, version)
