"""The tumour-ontology knowledge graph and the queries the generators and the calibrator use.

Loaded from ``data/tumor_kg_v1.json`` (nodes and typed edges, each edge citing a source); the
attribute rules and their thresholds live in ``tumorcot.vocabulary``. Its version is the sha256
of that file's bytes. Node ids are ``<type>:<...>``:
``organ:liver``, ``subregion:liver:segment_IV``, ``feature:hypodense``,
``impression:liver:simple_cyst``, ``pathology:malignant``, ``histology:...``,
``staging:pancreas:T``.

An impression is *licensed* for an organ and a set of observed features when it belongs to that
organ, every ``required_for`` feature is observed, no ``excludes`` feature is observed, and at
least one ``supports`` feature is observed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import networkx as nx

from tumorcot.errors import KnowledgeGraphError
from tumorcot.vocabulary import NO_HOST, SOFT_TISSUE, attribute_rules, organ_family

DATA_FILE = "tumor_kg_v1.json"
EDGE_TYPES = {
    "has_subregion", "has_impression", "supports", "required_for", "excludes",
    "classified_as", "histology_of", "staged_by", "drains_to", "may_be",
}


@dataclass(frozen=True)
class ImpressionMatch:
    node_id: str
    label: str
    category: str
    supporting: tuple[str, ...]
    score: float


class KnowledgeGraph:
    def __init__(self, data: dict, version: str):
        self.version = version
        self.data = data
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
            self.graph.add_edge(edge["source"], edge["target"], key=edge["type"], ref=edge["ref"])

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

    def _targets(self, node_id: str, edge_type: str) -> list[str]:
        return [t for _, t, k in self.graph.out_edges(node_id, keys=True) if k == edge_type]

    def _sources(self, node_id: str, edge_type: str) -> list[str]:
        return [s for s, _, k in self.graph.in_edges(node_id, keys=True) if k == edge_type]

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

    # -- reasoning ---------------------------------------------------------------------------
    def impressions_for(self, organ_key: str, features: set[str]) -> list[ImpressionMatch]:
        """Impressions licensed for ``organ_key`` by ``features`` (feature node ids), best first."""
        matches = []
        for imp in self._targets(f"organ:{organ_key}", "has_impression"):
            supports = self._sources(imp, "supports")
            required = set(self._sources(imp, "required_for"))
            excluded = set(self._sources(imp, "excludes"))
            hits = tuple(f for f in supports if f in features)
            if not hits or not required <= features or excluded & features:
                continue
            data = self.graph.nodes[imp]
            # a met requirement ("multiple" for metastases) counts as evidence too
            matches.append(ImpressionMatch(imp, data["label"], data["category"], hits,
                                           (len(hits) + len(required)) / (len(supports) + len(required))))
        return sorted(matches, key=lambda m: (-len(m.supporting) - self._n_required(m.node_id),
                                              -m.score, m.node_id))

    def _n_required(self, impression_id: str) -> int:
        return len(self._sources(impression_id, "required_for"))

    def is_licensed(self, organ_key: str, impression_id: str, features: set[str]) -> bool:
        return any(m.node_id == impression_id for m in self.impressions_for(organ_key, features))

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
        match = next((m for m in self.impressions_for(organ_key, features)
                      if m.node_id == impression_id), None)
        if match is None:
            raise KnowledgeGraphError(f"{impression_id} is not licensed for {organ_key} by {sorted(features)}")
        return [f"organ:{organ_key}", *match.supporting, impression_id, self.pathology_of(impression_id)]

    def match_histology(self, text: str) -> str | None:
        """The histology node whose label occurs in ``text`` (longest label wins)."""
        text = text.lower()
        hits = [n for n, d in self.graph.nodes(data=True)
                if d["type"] == "histology" and d["label"].lower() in text]
        return max(hits, key=lambda n: len(self.graph.nodes[n]["label"]), default=None)

    # -- staging -----------------------------------------------------------------------------
    def staging_rule(self, organ_key: str) -> dict | None:
        node_id = f"staging:{organ_key}:T"
        return dict(self.graph.nodes[node_id], id=node_id) if node_id in self.graph else None

    def size_rule_applies(self, organ_key: str, impressions: list[str], histologies: list[str] = ()) -> bool:
        """Whether the organ's size rule stages this tumour: the leading impression is one the rule
        ``applies_to``, or a given histology is one of theirs (HCC rules do not stage metastases)."""
        rule = self.staging_rule(organ_key)
        if rule is None or rule.get("basis") != "size":
            return False
        kinds = set(rule.get("applies_to", []))
        if impressions and impressions[0] in kinds:
            return True
        return any(h in self.histologies_of(k) for k in kinds for h in histologies)

    def t_category_by_size(self, organ_key: str, long_axis_cm: float, *, solitary: bool = True,
                           vascular_contact: bool = False) -> str | None:
        """AJCC 8 T category where size alone decides it; None where it cannot be decided."""
        rule = self.staging_rule(organ_key)
        if rule is None or rule["basis"] != "size":
            return None
        for r in rule["rules"]:
            if r.get("solitary") and not solitary or r.get("multiple") and solitary:
                continue
            if r.get("no_vascular_invasion") and vascular_contact:
                continue
            if long_axis_cm > r.get("min_cm", -1.0) and long_axis_cm <= r.get("max_cm", float("inf")):
                return r["t"]
        return None


@lru_cache(maxsize=1)
def load_kg() -> KnowledgeGraph:
    raw = resources.files("tumorcot.knowledge_graph").joinpath("data", DATA_FILE).read_bytes()
    version = "kg-" + hashlib.sha256(raw).hexdigest()[:16]
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise KnowledgeGraphError(f"{DATA_FILE} is not valid JSON: {exc}") from exc
    return KnowledgeGraph(data, version)
