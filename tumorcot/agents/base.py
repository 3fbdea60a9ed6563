"""What every generator shares: record ids, the common record fields, number formatting.

A generator turns one case's ``CaseFacts`` into ``CoTRecord``s; it never measures and never
invents: every number it writes is formatted from a fact it cites.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

from tumorcot import __version__
from tumorcot.knowledge_graph import KnowledgeGraph
from tumorcot.vocabulary import display_name
from tumorcot.privacy import assign_split
from tumorcot.prompts import prompt_version, render_answer, render_question, render_step
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


def mm(value: float) -> str:
    """Millimetres as a lesion's name states them: whole millimetres."""
    return f"{value:.0f}"


def lesion_where(lesion: LesionFacts) -> str:
    """'in segment V of the liver (geometric approximation)': location, with its caveat."""
    organ = display_name(lesion.organ)
    if not lesion.sub_location:
        return f"in the {organ}"
    caveat = " (geometric approximation)" if lesion.sub_location_method == "geometric-approximation" else ""
    place = "interpolar region" if lesion.sub_location == "interpolar" else lesion.sub_location
    article = "" if place.startswith("segment") else "the "
    return f"in {article}{place} of the {organ}{caveat}"


def _twin(lesion: LesionFacts, facts: CaseFacts | None, with_size: bool) -> tuple[str, list[str]]:
    """What tells a lesion from another of its organ with the same name: its axial slice, else
    'the larger' / 'the smaller' (suffix, fact names)."""
    if facts is None:
        return "", []
    twins = [o for o in facts.lesions_in(lesion.organ) if o is not lesion and o.sub_location == lesion.sub_location
             and (not with_size or mm(o.long_axis_mm) == mm(lesion.long_axis_mm))]
    if not twins:
        return "", []
    if all(o.axial_slice != lesion.axial_slice for o in twins):
        return f" centred on axial slice {lesion.axial_slice}", ["axial_slice"]
    if all(o.volume_ml < lesion.volume_ml for o in twins):
        return " (the larger one)", ["volume_ml"]
    if all(o.volume_ml > lesion.volume_ml for o in twins):
        return " (the smaller one)", ["volume_ml"]
    return "", []


def lesion_phrase(lesion: LesionFacts, facts: CaseFacts | None = None, *, with_size: bool = True) -> tuple[str, str]:
    """('44 mm lesion', 'in segment V of the liver') as questions and texts name a lesion: by size
    (its longest axial diameter, fact ``long_axis_mm``) and place, never by an internal id and
    never by a noun that gives an answer away ("cyst", "tumour"); with ``facts``, told from a
    same-named lesion of the organ by its slice or volume. ``with_size=False`` where the question
    asks for the size. A lesion cut by the field of view is 'lesion of at least 44 mm'."""
    size = f"{mm(lesion.long_axis_mm)} mm lesion" if not lesion.truncated else f"lesion of at least {mm(lesion.long_axis_mm)} mm"
    noun = size if with_size else "lesion"  # a truncated lesion (cut by the field of view): a lower bound
    return noun, lesion_where(lesion) + _twin(lesion, facts, with_size)[0]


def lesion_name(lesion: LesionFacts, facts: CaseFacts | None = None) -> str:
    """'the 44 mm lesion in segment V of the liver'."""
    noun, where = lesion_phrase(lesion, facts)
    return f"the {noun} {where}"


def name_fact_ids(lesion: LesionFacts, facts: CaseFacts | None = None, *, with_size: bool = True) -> list[str]:
    """The facts a lesion's name states (organ, size, sub-location, what tells it from a twin)."""
    names = ["organ"] + (["long_axis_mm"] if with_size else []) + (["sub_location"] if lesion.sub_location else [])
    names += _twin(lesion, facts, with_size)[1]
    return [f"lesion:{lesion.id}.{n}" for n in names]


def place_only(facts: CaseFacts, lesion: LesionFacts) -> tuple[str, list[str]]:
    """('in the head of the pancreas', fact ids) naming a lesion by place alone -- where its size
    must not appear (the size question; the box question, whose '3D' would read as a diameter) --
    told from another lesion of the organ at the same place by its slice or volume."""
    noun, where = lesion_phrase(lesion, facts, with_size=False)
    return where, name_fact_ids(lesion, facts, with_size=False)


@dataclass
class RecordFactory:
    """Fills the fields every record of one case shares, and makes the case's seedless choices
    (question wording, open or multiple-choice form, answer position)."""

    facts: CaseFacts
    kg: KnowledgeGraph
    generator: str
    options: GenerationOptions = field(default_factory=GenerationOptions)
    _placed: dict[int, int] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def table(self) -> dict:
        """The case's citable facts by id (``CaseFacts.fact_table``), computed once."""
        return self.facts.fact_table()

    @property
    def split(self) -> str:
        return assign_split(self.facts.patient_pseudo_id, self.options.splits)

    def question(self, subtask: str, subject: str, **context) -> tuple[str, str]:
        return render_question(subtask, f"{self.facts.case_id}\x1f{subject}", **context)

    def answer(self, subtask: str, subject: str, **context) -> tuple[str, str]:
        """(answer sentence, form reference): one of the subtask's answer forms (``prompts/answers``)."""
        return render_answer(subtask, f"{self.facts.case_id}\x1f{subject}", **context)

    def step(self, subtask: str, step: str, subject: str, **context) -> str:
        """A rationale step's text: one of its wordings (``prompts/steps/<subtask>.j2``)."""
        return render_step(subtask, step, f"{self.facts.case_id}\x1f{subject}", **context)

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
