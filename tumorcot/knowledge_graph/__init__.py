"""Tumour-ontology knowledge graph (networkx), loaded from a versioned data file."""

from tumorcot.knowledge_graph.graph import ImpressionMatch, KnowledgeGraph, load_kg

__all__ = ["ImpressionMatch", "KnowledgeGraph", "load_kg"]
