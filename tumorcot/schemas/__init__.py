"""Typed records passed between stages (pydantic), and their Arrow schemas."""

from tumorcot.schemas.case import CaseInput, PathologyLabels
from tumorcot.schemas.facts import BOX_CONVENTION, Box, CaseFacts, CTInfo, Fact, LesionFacts, OrganFacts, TCheck
from tumorcot.schemas.log import AgentTurn, CaseOutcome
from tumorcot.schemas.options import GenerationOptions
from tumorcot.schemas.records import CoTRecord, Step, Turn
from tumorcot.schemas.review import RecordVerdict, StepVerdict, VerdictFile

__all__ = [
    "AgentTurn", "BOX_CONVENTION", "Box", "CTInfo", "CaseFacts", "CaseInput", "CaseOutcome",
    "CoTRecord", "Fact", "GenerationOptions", "LesionFacts", "OrganFacts", "PathologyLabels", "RecordVerdict", "TCheck",
    "Step", "StepVerdict", "Turn", "VerdictFile",
]
