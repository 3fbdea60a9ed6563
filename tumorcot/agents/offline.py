"""The offline KG-grounded generator: the default when no LLM endpoint is configured.

Per case it writes localization records (organ and lesion boxes), lesion-attribute records
(size, density, count, and shape / margin / content / sub-location where measured) and a
per-organ chain-of-thought report whose steps run findings -> impression -> pathology.
"""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory, fmt, fmt_box, lesion_phrase
from tumorcot.agents.chains import conclusion_of, organ_chain, render_think
from tumorcot.knowledge_graph import KnowledgeGraph
from tumorcot.labels import display_name, organ_family
from tumorcot.schemas import CaseFacts, CoTRecord, LesionFacts, Step

# Organs with a chain-of-thought report when present (TumorChain's five plus kidney and spleen).
REPORT_FAMILIES = ("liver", "pancreas", "kidney", "spleen", "stomach", "colon", "esophagus")
# Organs with localization records when present.
LOCALIZATION_FAMILIES = REPORT_FAMILIES + (
    "lung", "gallbladder", "duodenum", "aorta", "inferior_vena_cava", "urinary_bladder", "adrenal_gland",
)


class OfflineGenerator:
    name = "offline-kg"

    def __init__(self, kg: KnowledgeGraph):
        self.kg = kg

    def generate(self, facts: CaseFacts) -> list[CoTRecord]:
        make = RecordFactory(facts, self.kg, self.name)
        records = self._localization(make)
        for lesion in facts.lesions:
            records += self._lesion_attributes(make, lesion)
        if facts.has_lesion_mask:
            records += self._counts(make)
            records += self._reports(make)
        return records

    # -- localization ------------------------------------------------------------------------
    def _localization(self, make: RecordFactory) -> list[CoTRecord]:
        out = []
        for organ in make.facts.organs:
            if organ_family(organ.name) not in LOCALIZATION_FAMILIES:
                continue
            name = display_name(organ.name)
            q, tpl = make.question("organ_box", organ.name, organ=name)
            box = list(organ.bbox.normalized)
            step = Step(index=0, stage="finding", organ=organ.name,
                        text=f"The {name} spans the normalised box {fmt_box(box)}.",
                        fact_ids=[f"organ:{organ.name}.box_{a}" for a in ("x0", "y0", "z0", "x1", "y1", "z1")],
                        kg_node_ids=[n for n in [f"organ:{self.kg.organ_key(organ.name)}"] if n in self.kg],
                        roi_box=box)
            out.append(make.make(task="localization", subtask="organ_box", subject=organ.name, question=q,
                                 template=tpl, answer=fmt_box(box), organ=organ.name, roi_box=box,
                                 steps=[step], think=step.text))
        for lesion in make.facts.lesions:
            noun, where = lesion_phrase(lesion)
            q, tpl = make.question("lesion_box", lesion.id, lesion=noun, where=where)
            box = list(lesion.bbox.normalized)
            step = Step(index=0, stage="finding", organ=lesion.organ,
                        text=f"{lesion.id} {where} spans the normalised box {fmt_box(box)}.",
                        fact_ids=[f"lesion:{lesion.id}.organ"] + [f"lesion:{lesion.id}.box_{a}" for a in ("x0", "y0", "z0", "x1", "y1", "z1")],
                        roi_box=box)
            out.append(make.make(task="localization", subtask="lesion_box", subject=lesion.id, question=q,
                                 template=tpl, answer=fmt_box(box), organ=lesion.organ, lesion_id=lesion.id,
                                 roi_box=box, steps=[step], think=step.text))
        return out

    # -- lesion attributes -------------------------------------------------------------------
    def _attribute(self, make, lesion: LesionFacts, subtask: str, answer: str, fact_names: list[str],
                   kg_ids: list[str] = (), **ctx) -> CoTRecord:
        noun, where = lesion_phrase(lesion)
        q, tpl = make.question(subtask, f"{lesion.id}\x1f{subtask}", lesion=noun, where=where,
                               organ=display_name(lesion.organ), **ctx)
        box = list(lesion.bbox.normalized)
        step = Step(index=0, stage="finding", organ=lesion.organ, text=answer,
                    fact_ids=[f"lesion:{lesion.id}.{n}" for n in fact_names],
                    kg_node_ids=[k for k in kg_ids if k in self.kg], roi_box=box)
        return make.make(task="lesion_attribute", subtask=subtask, subject=f"{lesion.id}", question=q,
                         template=tpl, answer=answer, organ=lesion.organ, lesion_id=lesion.id, roi_box=box,
                         steps=[step], think=answer)

    def _lesion_attributes(self, make: RecordFactory, lesion: LesionFacts) -> list[CoTRecord]:
        noun, where = lesion_phrase(lesion)
        out = [self._attribute(
            make, lesion, "size",
            f"The {noun} {where} measures {fmt(lesion.long_axis_mm)} x {fmt(lesion.short_axis_mm)} mm in the "
            f"axial plane (longest 3D diameter {fmt(lesion.max_diameter_3d_mm)} mm, volume {fmt(lesion.volume_ml)} mL).",
            ["organ", "long_axis_mm", "short_axis_mm", "max_diameter_3d_mm", "volume_ml"])]
        if lesion.attenuation and lesion.hu_difference is not None:
            out.append(self._attribute(
                make, lesion, "density",
                f"The {noun} is {lesion.attenuation} relative to the surrounding organ: mean {fmt(lesion.mean_hu)} HU, "
                f"{fmt(lesion.hu_difference)} HU from the organ mean.",
                ["organ", "attenuation", "mean_hu", "hu_difference"], [f"feature:{lesion.attenuation}"]))
        for subtask, value in (("shape", lesion.shape), ("margin", lesion.margin), ("content", lesion.content)):
            if value:
                out.append(self._attribute(make, lesion, subtask, f"The {noun} {where} is {value}.",
                                           ["organ", subtask], [f"feature:{value.replace('-', '_')}"]))
        if lesion.sub_location:
            key = self.kg.organ_key(lesion.organ)
            sub = self.kg.subregion_node(key, lesion.sub_location) if key else None
            how = " (geometric approximation)" if lesion.sub_location_method == "geometric-approximation" else ""
            out.append(self._attribute(make, lesion, "sub_location",
                                       f"The {noun} lies in the {lesion.sub_location} of the {display_name(lesion.organ)}{how}.",
                                       ["organ", "sub_location"], [sub] if sub else []))
        return out

    def _counts(self, make: RecordFactory) -> list[CoTRecord]:
        out = []
        for organ in make.facts.organs:
            if organ_family(organ.name) not in REPORT_FAMILIES:
                continue
            name = display_name(organ.name)
            n = organ.lesion_count
            answer = f"No focal lesion in the {name}." if n == 0 else \
                f"{n} focal lesion{'s' if n > 1 else ''} in the {name}."
            q, tpl = make.question("count", organ.name, organ=name)
            feature = "feature:no_focal_lesion" if n == 0 else ("feature:multiple" if n > 1 else "feature:solitary")
            step = Step(index=0, stage="finding", organ=organ.name, text=answer,
                        fact_ids=[f"organ:{organ.name}.lesion_count"], kg_node_ids=[feature],
                        roi_box=list(organ.bbox.normalized))
            out.append(make.make(task="lesion_attribute", subtask="count", subject=organ.name, question=q,
                                 template=tpl, answer=answer, organ=organ.name, roi_box=list(organ.bbox.normalized),
                                 steps=[step], think=answer))
        return out

    # -- chain-of-thought reports ------------------------------------------------------------
    def report_organs(self, facts: CaseFacts) -> list[str]:
        organs = [o.name for o in facts.organs if organ_family(o.name) in REPORT_FAMILIES]
        organs += sorted({l.organ for l in facts.lesions if l.organ in ("outside_organs", "unknown_organ")})
        return organs

    def _reports(self, make: RecordFactory) -> list[CoTRecord]:
        out = []
        for organ in self.report_organs(make.facts):
            steps = organ_chain(make.facts, organ, self.kg)
            name = display_name(organ)
            q, tpl = make.question("organ_report", organ, organ=name)
            organ_facts = make.facts.organ(organ)
            out.append(make.make(task="cot_report", subtask="organ_report", subject=organ, question=q,
                                 template=tpl, answer=conclusion_of(steps), organ=organ,
                                 roi_box=list(organ_facts.bbox.normalized) if organ_facts else None,
                                 steps=steps, think=render_think(steps)))
        return out
