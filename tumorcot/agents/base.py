"""What every generator shares: record ids, the common record fields, number formatting.

A generator turns one case's ``CaseFacts`` into ``CoTRecord``s; it never measures and never
invents: every number it writes is formatted from a fact it cites.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from tumorcot import __version__
from tumorcot.knowledge_graph import KnowledgeGraph
from tumorcot.vocabulary import display_name
from tumorcot.privacy import assign_split
from tumorcot.prompts import prompt_version, render_question
from tumorcot.schemas import CaseFacts, CoTRecord, GenerationOptions, LesionFacts

PIPELINE_VERSION = f"tumorcot-{__version__}"


def fmt(value: float) -> str:
    """Numbers as records state them: one decimal below 100, none above."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"


def unit_hash(*parts: str) -> float:
    """A deterministic number in [0, 1) from strings: the seedless 'random' choices of a build."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return int(digest[:15], 16) / 16**15


def record_id(case_id: str, task: str, subtask: str, subject: str) -> str:
    return "r-" + hashlib.sha256(f"{case_id}\x1f{task}\x1f{subtask}\x1f{subject}".encode()).hexdigest()[:20]


def lesion_phrase(lesion: LesionFacts) -> tuple[str, str]:
    """('lesion L1', 'in the liver') as questions name a lesion and its place."""
    noun = "tumour" if lesion.kind in ("tumor", "tumour") else lesion.kind
    return f"{noun} {lesion.id}", f"in the {display_name(lesion.organ)}"


@dataclass
class RecordFactory:
    """Fills the fields every record of one case shares, and makes the case's seedless choices
    (question wording, open or multiple-choice form, answer position)."""

    facts: CaseFacts
    kg: KnowledgeGraph
    generator: str
    options: GenerationOptions = field(default_factory=GenerationOptions)
    _placed: dict[int, int] = field(default_factory=dict, init=False, repr=False)

    @property
    def split(self) -> str:
        return assign_split(self.facts.patient_pseudo_id, self.options.splits)

    def question(self, subtask: str, subject: str, **context) -> tuple[str, str]:
        return render_question(subtask, f"{self.facts.case_id}\x1f{subject}", **context)

    def wants_choice(self, subtask: str, subject: str) -> bool:
        """Whether this closed-answer record is asked as multiple choice (share ``mc_share``)."""
        return unit_hash("form", self.facts.case_id, subtask, subject) < self.options.mc_share

    def place(self, answer: str, distractors: list[str]) -> tuple[list[str], int]:
        """Options with the answer at a balanced position.

        Within a case, the k-option questions take the answer positions in turn, starting at a
        position drawn from the case id; over many cases every position is equally likely
        (to within one question per case), which a shuffle alone only gives on average."""
        options = [d for d in dict.fromkeys(distractors) if d != answer]
        k = len(options) + 1
        start = int(unit_hash("position", self.facts.case_id, str(k)) * k)
        index = (start + self._placed.get(k, 0)) % k
        self._placed[k] = self._placed.get(k, 0) + 1
        options.insert(index, answer)
        return options, index

    def make(self, *, task: str, subtask: str, subject: str, question: str, template: str,
             answer: str, conclusion: str | None = None, **fields) -> CoTRecord:
        f = self.facts
        return CoTRecord(
            record_id=record_id(f.case_id, task, subtask, subject),
            case_id=f.case_id, patient_pseudo_id=f.patient_pseudo_id,
            study_pseudo_id=f.study_pseudo_id, split=self.split, task=task, subtask=subtask,
            question=question, answer=answer, conclusion=conclusion or answer, template=template,
            image_sha256=f.ct.content_sha256, generator=self.generator, synthetic=f.synthetic,
            source=f.source, kg_version=self.kg.version, prompt_version=prompt_version(),
            pipeline_version=PIPELINE_VERSION, **fields,
        )
