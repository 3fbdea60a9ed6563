"""The rationale of each lesion attribute: the measured value -> the rule's reference or threshold
(``vocabulary.THRESHOLDS``, cited as ``case.threshold_<name>``) -> the label, as ``Link``s.

Each function returns the links of one record; the wording of every step is drawn from
``prompts/steps/<subtask>.j2`` (``RecordFactory.step``), the numbers are formatted from the facts
each link cites. The rules walked through are the ones imaging decided the label by
(``vocabulary.attribute_rules``): a rationale restates the decision, it never re-decides it.

========== ==========================================================================================
subtask    chain
========== ==========================================================================================
presence   lesions of the organ (by size and place) -> present or not
count      lesions of the organ (by size and place) -> the count, solitary or multiple
size       axial diameters -> 3D dimension and volume -> small / large marks; rank in the organ
density    core median HU -> organ reference HU -> difference vs the isodense band -> label
margin     contrast across the edge -> edge sharpness -> sharpness cut-off -> label
shape      lobulation index vs its two cut-offs -> (smooth) sphericity and axis ratio -> label
content    core median and IQR -> fat cut-off -> calcium share -> fluid range -> label
sub_loc.   segment mask, or the centre's place in the organ's box (geometric rule) -> sub-region
========== ==========================================================================================
"""

from __future__ import annotations

from tumorcot.agents.base import RecordFactory, fmt, lesion_name, lesion_phrase, mm, name_fact_ids
from tumorcot.agents.chains import not_assessed_reason, phase_clause
from tumorcot.agents.families.chain import Link
from tumorcot.imaging.phase import calcium_cutoff
from tumorcot.schemas import LesionFacts, OrganFacts
from tumorcot.vocabulary import LIVER_REGIONS, PANCREAS_PARTS, KIDNEY_POLES, display_name, threshold

T = "case.threshold_"


def _g(name: str) -> str:
    """A threshold as its source states it (10, 0.85, -30)."""
    return f"{threshold(name):g}"


def _named(lesion: LesionFacts, make: RecordFactory) -> dict:
    noun, where = lesion_phrase(lesion, make.facts)
    name = f"the {noun} {where}"
    return {"name": name, "Name": name[0].upper() + name[1:], "organ": display_name(lesion.organ)}


def _ids(lesion: LesionFacts, *names: str) -> list[str]:
    return [f"lesion:{lesion.id}.{n}" for n in names]


def _speaker(make: RecordFactory, subtask: str, lesion: LesionFacts):
    """``say(step, **context)``: a wording of ``step`` with the lesion's name in its context."""
    named = _named(lesion, make)
    return lambda step, **more: make.step(subtask, step, lesion.id, **named, **more)


def _label_only(say, subtask: str, lesion: LesionFacts, name_ids: list[str]) -> list[Link]:
    """The label alone, for a lesion whose rule inputs were not measured (facts from before they were)."""
    value = getattr(lesion, subtask)
    return [Link(say("measured", **{subtask: value}), [*name_ids, *_ids(lesion, subtask)], [f"feature:{value}"])]


def count_links(make: RecordFactory, organ: OrganFacts, subtask: str) -> list[Link]:
    """The organ's lesions listed by size and place, then the count (or their absence)."""
    facts, n, spoken = make.facts, organ.lesion_count, display_name(organ.name)
    count_id = [f"organ:{organ.name}.lesion_count"]
    say = lambda step, **ctx: make.step(subtask, step, organ.name, organ=spoken, n=n, **ctx)   # noqa: E731
    if n == 0:
        return [Link(say("none"), count_id, ["feature:no_focal_lesion"])]
    lesions = facts.lesions_in(organ.name)
    multiplicity = "feature:multiple" if n > 1 else "feature:solitary"
    links = []
    if len(lesions) == n:   # each one by size and place
        listing = "; ".join(lesion_name(l, facts) for l in lesions)
        links.append(Link(say("list", listing=listing), [*count_id, *(i for l in lesions for i in name_fact_ids(l, facts))]))
    links.append(Link(say("tally", multiple=n > 1), count_id, [multiplicity]))
    return links


def size_links(make: RecordFactory, lesion: LesionFacts, where: str, where_ids: list[str]) -> list[Link]:
    say = lambda step, **ctx: make.step("size", step, lesion.id, where=where, **ctx)   # noqa: E731
    long, short = fmt(lesion.long_axis_mm), fmt(lesion.short_axis_mm)
    links = [Link(say("axial", slice=lesion.axial_slice, long=long, short=short),
                  [*where_ids, *_ids(lesion, "axial_slice", "long_axis_mm", "short_axis_mm")]),
             Link(say("extent", d3=fmt(lesion.max_diameter_3d_mm), volume=fmt(lesion.volume_ml)),
                  _ids(lesion, "max_diameter_3d_mm", "volume_ml"))]
    small, large = threshold("small_mm"), threshold("large_mm")
    mark = "small" if lesion.long_axis_mm < small else "large" if lesion.long_axis_mm > large else "between"
    links.append(Link(say(mark, long=long, small=_g("small_mm"), large=_g("large_mm")),
                      [*_ids(lesion, "long_axis_mm"), f"{T}small_mm", f"{T}large_mm"],
                      [] if mark == "between" else [f"feature:{mark}"]))
    others = make.facts.lesions_in(lesion.organ)
    organ = make.facts.organ(lesion.organ)
    sizes = sorted(mm(o.long_axis_mm) for o in others)
    if (len(others) > 1 and organ is not None and organ.lesion_count == len(others)
            and not any(o.truncated for o in others) and len(set(sizes)) == len(sizes)):
        ordered = sorted(others, key=lambda o: -o.long_axis_mm)
        rank = "largest" if ordered[0] is lesion else "smallest" if ordered[-1] is lesion else "between"
        links.append(Link(say(f"rank_{rank}", n=len(others), organ=display_name(lesion.organ),
                              top=mm(ordered[0].long_axis_mm), bottom=mm(ordered[-1].long_axis_mm)),
                          [f"organ:{lesion.organ}.lesion_count",
                           *(i for o in (ordered[0], ordered[-1]) for i in _ids(o, "long_axis_mm"))]))
    return links


def density_links(make: RecordFactory, lesion: LesionFacts, name_ids: list[str]) -> list[Link]:
    say = _speaker(make, "density", lesion)
    if lesion.attenuation == "not assessed":
        return [Link(say("unassessed", reason=not_assessed_reason(lesion, "attenuation")),
                     [*name_ids, *_ids(lesion, "attenuation")])]
    phase, phase_ids = phase_clause(make.facts)
    host = make.facts.organ(lesion.organ)
    diff, label = lesion.hu_difference, lesion.attenuation
    links = [Link(say("core", core=fmt(lesion.core_median_hu), phase=phase),
                  [*name_ids, *_ids(lesion, "core_median_hu"), *phase_ids])]
    if host is not None and host.reference_hu is not None:   # the reference the difference was taken from
        links.append(Link(say("reference", reference=fmt(host.reference_hu)), [f"organ:{lesion.organ}.reference_hu"]))
    return links + [Link(say(label, gap=fmt(abs(diff)), band=_g("isodense_hu"), phase=phase),   # the phase goes with the label
                         [*_ids(lesion, "hu_difference", "attenuation"), f"{T}isodense_hu", *phase_ids], [f"feature:{label}"])]


def margin_links(make: RecordFactory, lesion: LesionFacts, name_ids: list[str]) -> list[Link]:
    say = _speaker(make, "margin", lesion)
    links = []
    if lesion.edge_contrast_hu is not None:
        links.append(Link(say("contrast", contrast=fmt(lesion.edge_contrast_hu)), [*name_ids, *_ids(lesion, "edge_contrast_hu")]))
    if lesion.margin == "not assessable" or lesion.edge_sharpness is None:
        return links + [Link(say("unassessable", reason=not_assessed_reason(lesion, "margin")),
                             [*name_ids, *_ids(lesion, "margin")])]
    well = lesion.margin == "well-defined"
    return links + [
        Link(say("sharpness", sharpness=f"{lesion.edge_sharpness:.2f}"), _ids(lesion, "edge_sharpness")),
        Link(say("well" if well else "ill", sharpness=f"{lesion.edge_sharpness:.2f}", cut=_g("well_defined_sharpness")),
             [*_ids(lesion, "edge_sharpness", "margin"), f"{T}well_defined_sharpness"],
             [f"feature:{lesion.margin.replace('-', '_')}"])]


def shape_links(make: RecordFactory, lesion: LesionFacts, name_ids: list[str]) -> list[Link]:
    say = _speaker(make, "shape", lesion)
    shape, feature = lesion.shape, [f"feature:{lesion.shape}"]
    if None in (lesion.lobulation, lesion.sphericity, lesion.elongation):
        return _label_only(say, "shape", lesion, name_ids)
    lob = f"{lesion.lobulation:.3f}"
    cuts = [f"{T}lobulated_index", f"{T}irregular_index"]
    links = [Link(say("lobulation", lobulation=lob), [*name_ids, *_ids(lesion, "lobulation")])]
    if shape in ("irregular", "lobulated"):
        return links + [Link(say(shape, lobulation=lob, lobulated=_g("lobulated_index"), irregular=_g("irregular_index")),
                             [*_ids(lesion, "lobulation", "shape"), *cuts], feature)]
    links.append(Link(say("smooth", lobulation=lob, lobulated=_g("lobulated_index")),
                      [*_ids(lesion, "lobulation"), f"{T}lobulated_index"]))
    sph, ratio = lesion.sphericity, lesion.elongation
    return links + [Link(say(shape, sphericity=f"{sph:.2f}", ratio=f"{ratio:.2f}", round_sphericity=_g("round_sphericity"),
                             round_ratio=_g("round_axis_ratio"), sphere_ok=sph >= threshold("round_sphericity"),
                             ratio_ok=ratio <= threshold("round_axis_ratio")),
                         [*_ids(lesion, "sphericity", "elongation", "shape"), f"{T}round_sphericity",
                          f"{T}round_axis_ratio"], feature)]


def content_links(make: RecordFactory, lesion: LesionFacts, name_ids: list[str]) -> list[Link]:
    """The content rule in its order (``imaging.texture.content_of``): fat, calcium, fluid, else solid."""
    say = _speaker(make, "content", lesion)
    content, feature = lesion.content, [f"feature:{lesion.content}"]
    if None in (lesion.core_median_hu, lesion.core_iqr_hu, lesion.calcified_fraction):
        return _label_only(say, "content", lesion, name_ids)
    median, iqr = fmt(lesion.core_median_hu), fmt(lesion.core_iqr_hu)
    links = [Link(say("core", median=median, iqr=iqr), [*name_ids, *_ids(lesion, "core_median_hu", "core_iqr_hu")])]
    if content == "fatty":
        return links + [Link(say("fatty", median=median, fat=_g("fatty_hu")),
                             [*_ids(lesion, "core_median_hu", "content"), f"{T}fatty_hu"], feature)]
    links.append(Link(say("not_fat", median=median, fat=_g("fatty_hu")), [*_ids(lesion, "core_median_hu"), f"{T}fatty_hu"]))
    facts = make.facts
    cutoff = calcium_cutoff(facts.contrast_phase, facts.phase_evidence)
    aorta = cutoff != threshold("calcified_hu")   # raised to the aortic median on an enhanced scan
    calcium_ids = ["case.phase_aorta_hu"] if aorta else [f"{T}calcified_hu"]
    share = dict(fraction=f"{lesion.calcified_fraction:.2f}", cutoff=fmt(cutoff), share=_g("calcified_share"), aorta=aorta)
    ids = [*_ids(lesion, "calcified_fraction"), *calcium_ids, f"{T}calcified_share"]
    if content == "calcified":
        return links + [Link(say("calcified", **share), [*ids, *_ids(lesion, "content")], feature)]
    links.append(Link(say("little_calcium", **share), ids))
    inside = threshold("fluid_hu_low") <= lesion.core_median_hu <= threshold("fluid_hu_high")
    return links + [Link(say(content, median=median, iqr=iqr, low=_g("fluid_hu_low"), high=_g("fluid_hu_high"),
                             max_iqr=_g("fluid_max_iqr_hu"), inside=inside,
                             homogeneous=lesion.core_iqr_hu <= threshold("fluid_max_iqr_hu")),
                         [*_ids(lesion, "core_median_hu", "core_iqr_hu", "content"), f"{T}fluid_hu_low",
                          f"{T}fluid_hu_high", f"{T}fluid_max_iqr_hu"], feature)]


REGION_OF = {name: (region, superior if region != "caudate" else None) for (region, superior), name in LIVER_REGIONS.items()}


def sub_location_links(make: RecordFactory, lesion: LesionFacts, noun: str, place: str, kg_ids: list[str],
                       name_ids: list[str]) -> list[Link]:
    """How the sub-region was found (``imaging.describe.sub_location``): the segment mask's
    majority, or the rule on the centre's position in the organ's box (said to be geometric)."""
    organ = display_name(lesion.organ)
    say = lambda step, **ctx: make.step("sub_location", step, lesion.id, lesion=noun, organ=organ,  # noqa: E731
                                        place=place, **ctx)
    ids = [*name_ids, *_ids(lesion, "sub_location")]
    method = lesion.sub_location_method
    if method == "liver_segments":
        return [Link(say("segment_mask"), [*ids, *_ids(lesion, "sub_location_method")], kg_ids)]
    if method == "geometric-approximation" and lesion.sub_location in REGION_OF:
        region, superior = REGION_OF[lesion.sub_location]
        return [Link(say("liver_box"), [*name_ids, *_ids(lesion, "sub_location_method")]),
                Link(say(f"liver_{region}", superior=superior), ids, kg_ids)]
    if method == "geometric-position" and lesion.sub_location in PANCREAS_PARTS:
        return [Link(say("pancreas", third=("first", "middle", "last")[PANCREAS_PARTS.index(lesion.sub_location)]), ids, kg_ids)]
    if method == "geometric-position" and lesion.sub_location in KIDNEY_POLES:
        return [Link(say("kidney", third=("top", "middle", "bottom")[KIDNEY_POLES.index(lesion.sub_location)]), ids, kg_ids)]
    return [Link(say("lobe"), ids, kg_ids)]
