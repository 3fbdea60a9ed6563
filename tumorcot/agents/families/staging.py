"""TNM staging, only where it can be licensed:

* T from the knowledge graph's size rule (``staging:<organ>:T``, AJCC 8th edition) for the organs
  whose rule is size-based (pancreas, kidney, liver, lung), from the greatest dimension of the
  organ's largest lesion, when the lesion is malignant by the labels or by its leading KG
  impression (then the T is stated as conditional on that impression being confirmed). The
  liver rule needs a solitary lesion without vessel contact; otherwise size does not decide T.
* T of stomach, colon and esophagus (depth of wall invasion), and every N and M: only from the
  given pathology labels.

A case with neither gets no TNM record. N and M are never inferred from imaging.
"""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory, fmt
from tumorcot.agents.chains import given_pathology, lesion_chain, render_think
from tumorcot.vocabulary import display_name
from tumorcot.schemas import CoTRecord, Step

TNM = ("t", "n", "m")


def given_histologies(kg, given) -> list[str]:
    if given is None:
        return []
    return [h for h in (kg.match_histology(v) for v in (given.histology, given.diagnosis) if v) if h]


def size_t_category(make: RecordFactory, organ: str, lesion, steps) -> str | None:
    """T by the KG size rule for the organ's largest lesion, or None where size does not decide it
    (no size rule, a tumour type the rule does not stage, or a case the rule leaves open)."""
    key = make.kg.organ_key(organ)
    impressions = [n for n in steps[1].kg_node_ids if n.startswith("impression:")]
    if key is None or not make.kg.size_rule_applies(
            key, impressions, given_histologies(make.kg, given_pathology(make.facts, organ))):
        return None
    return make.kg.t_category_by_size(key, round(lesion.max_diameter_3d_mm / 10, 1),
                                      solitary=len(make.facts.lesions_in(organ)) == 1,
                                      vascular_contact=any(d > 0 for d in lesion.vessel_contact_deg.values()))


def staging_records(make: RecordFactory) -> list[CoTRecord]:
    out = []
    for organ in sorted({l.organ for l in make.facts.lesions}):
        lesion = max(make.facts.lesions_in(organ), key=lambda l: (l.max_diameter_3d_mm, l.id))
        given = given_pathology(make.facts, organ)
        labels = {k: getattr(given, k) for k in TNM if given is not None and getattr(given, k)}
        steps = lesion_chain(make.facts, lesion, make.kg)
        pathology = steps[-1]
        malignant = "pathology:malignant" in pathology.kg_node_ids
        size_t = size_t_category(make, organ, lesion, steps) if "t" not in labels and malignant else None
        if not labels and size_t is None:
            continue
        key, name = make.kg.organ_key(organ), display_name(organ)
        parts, answer = [], []
        fact_ids, kg_ids = [], []
        if size_t is not None:
            cm = round(lesion.max_diameter_3d_mm / 10, 1)
            condition = "" if given is not None and given.behavior == "malignant" else \
                "If the leading impression is confirmed as malignant, "
            parts.append(f"{condition}the AJCC eighth-edition size rule for the {name} gives {size_t} for a greatest "
                         f"dimension of {fmt(cm)} cm ({lesion.id}).")
            fact_ids += [f"lesion:{lesion.id}.max_diameter_3d_cm", f"lesion:{lesion.id}.organ"]
            kg_ids.append(f"staging:{key}:T")
            answer.append(f"{size_t} (size-based{', conditional' if condition else ''})")
        for k in TNM:
            if k in labels:
                parts.append(f"Given {k.upper()} category: {labels[k]}.")
                fact_ids.append(f"pathology.{k}")
                answer.append(f"{labels[k]} (given)")
        missing = [k.upper() for k in ("n", "m") if k not in labels]
        if missing:
            text = " and ".join(missing)
            parts.append(f"{text} {'are' if len(missing) > 1 else 'is'} not given and {'are' if len(missing) > 1 else 'is'} "
                         "not staged from imaging.")
            answer.append(f"{text} not given")
        steps.append(Step(index=len(steps), stage="pathology", organ=organ, text=" ".join(parts),
                          fact_ids=fact_ids, kg_node_ids=kg_ids, roi_box=list(lesion.bbox.normalized),
                          follows_from=[0, pathology.index]))
        q, tpl = make.question("tnm", organ, organ=name)
        out.append(make.make(task="tnm_staging", subtask="tnm", subject=organ, question=q, template=tpl,
                             answer="; ".join(answer) + ".", conclusion=steps[-1].text, organ=organ,
                             lesion_id=lesion.id, roi_box=list(lesion.bbox.normalized), steps=steps,
                             think=render_think(steps)))
    return out
