"""The knowledge graph v2: every edge cites a specific source, rankings follow documented weights,
exclusions hold, and features that cannot discriminate lead to an indeterminate impression."""

import json
from importlib import resources

import pytest

from tumorcot.knowledge_graph import load_kg

RAW = resources.files("tumorcot.knowledge_graph").joinpath("data", "tumor_kg_v2.json").read_bytes()
DATA = json.loads(RAW)
KG = load_kg()


def lead(organ, *features):
    return KG.assess(organ, {f"feature:{f}" for f in features})


def test_kg_loads_from_its_data_file_and_versions_by_content():
    assert KG.version.startswith("kg-") and load_kg().version == KG.version   # content-derived, stable
    assert KG.graph.number_of_nodes() == len(DATA["nodes"])
    assert KG.graph.number_of_edges() == len(DATA["edges"])
    for organ in ("liver", "pancreas", "stomach", "colon", "esophagus", "kidney", "lung", "soft_tissue", "adrenal_gland"):
        assert KG.staging_rule(organ) is not None
    assert KG.staging_rule("spleen") is None


def test_every_edge_cites_a_specific_section_of_a_listed_source():
    for edge in DATA["edges"]:
        assert edge["ref"] in DATA["sources"], edge
        # a section, table or figure of that source, not the whole document
        assert len(edge.get("where", "")) >= 8, edge
    # the TumorChain paper is a design reference, never a medical authority
    assert not any("tumorchain" in k.lower() or "TumorChain" in v for k, v in DATA["sources"].items())
    # the size and HU cut-offs the features use cite a guideline section (tumorcot.vocabulary.THRESHOLDS)
    from tumorcot.vocabulary import THRESHOLDS
    for name in ("small_mm", "large_mm", "adrenal_large_mm", "adenoma_max_hu", "node_short_axis_mm"):
        assert "tumorcot" not in THRESHOLDS[name][2] and ("Fig" in THRESHOLDS[name][2] or "section" in THRESHOLDS[name][2]
                                                          or "summary" in THRESHOLDS[name][2]), name
    for node in DATA["nodes"]:
        if node["type"] == "staging_rule":
            assert node["ref"] == "ajcc8" and node["where"].startswith("Chapter"), node["id"]
        if node["type"] in ("impression", "histology"):
            assert isinstance(node["synonyms"], list) and isinstance(node["abbreviations"], list), node["id"]
        if node["type"] == "feature":
            assert all(o in KG for o in node["opposites"]), node["id"]


def test_support_weights_are_the_documented_ones():
    assert {str(e["weight"]) for e in DATA["edges"] if e["type"] == "supports"} <= set(DATA["weights"])


@pytest.mark.parametrize("organ, features, excluded", [
    ("liver", ("solid", "hypodense", "well_defined"), "impression:liver:simple_cyst"),        # solid excludes a cyst
    ("kidney", ("cystic", "ill_defined", "irregular", "phase_portal_venous"), "impression:kidney:benign_cyst"),
    ("kidney", ("fatty", "solid"), "impression:kidney:rcc"),                                   # fat -> AML, not RCC
    ("pancreas", ("cystic", "history_pancreatitis"), "impression:pancreas:mucinous_cyst"),
    ("adrenal_gland", ("fatty",), "impression:adrenal_gland:adenoma"),
])
def test_exclusions(organ, features, excluded):
    ids = [m.node_id for m in KG.impressions_for(organ, {f"feature:{f}" for f in features})]
    assert excluded not in ids
    assert not KG.is_licensed(organ, excluded, {f"feature:{f}" for f in features})


@pytest.mark.parametrize("organ, features, leading", [
    ("liver", ("cystic", "hypodense", "well_defined", "solitary"), "impression:liver:simple_cyst"),
    ("kidney", ("fatty", "solitary"), "impression:kidney:angiomyolipoma"),
    ("adrenal_gland", ("fatty",), "impression:adrenal_gland:myelolipoma"),
    ("soft_tissue", ("fatty", "large"), "impression:soft_tissue:lipomatous"),
    # ACR 2017: an incidental pancreatic cyst is presumed mucinous unless there is a pancreatitis history
    ("pancreas", ("cystic", "hypodense", "round"), "impression:pancreas:mucinous_cyst"),
    ("pancreas", ("cystic", "history_pancreatitis"), "impression:pancreas:pseudocyst"),
    # a solid hypodense pancreatic mass on a contrast phase: PDAC leads
    ("pancreas", ("solid", "hypodense", "phase_portal_venous"), "impression:pancreas:pdac"),
    # adrenal <= 10 HU: adenoma only on non-contrast CT
    ("adrenal_gland", ("unenhanced_le_10hu", "phase_non_contrast"), "impression:adrenal_gland:adenoma"),
    # Bosniak 2019 classes only where their phase criteria can be met
    ("kidney", ("cystic", "well_defined", "phase_non_contrast"), "impression:kidney:benign_cyst"),
    ("lymph_node", ("short_axis_ge_10mm",), "impression:lymph_node:enlarged"),
    ("spleen", ("no_focal_lesion",), "impression:spleen:normal"),
])
def test_decisive_features_lead(organ, features, leading):
    assessment = lead(organ, *features)
    assert assessment.decisive and assessment.leading.node_id == leading
    path = KG.reasoning_path(organ, {f"feature:{f}" for f in features}, leading)
    assert path[0] == f"organ:{organ}" and path[-2] == leading and path[-1].startswith("pathology:")


@pytest.mark.parametrize("organ, features, in_differential", [
    # one phase, no risk context: a solid liver lesion is indeterminate, HCC and metastasis in the differential
    ("liver", ("solid", "hypodense", "solitary", "phase_non_contrast"), {"impression:liver:hcc", "impression:liver:metastasis"}),
    ("liver", ("solid", "hyperdense", "solitary", "phase_arterial"), {"impression:liver:hcc", "impression:liver:fnh"}),
    # a solitary metastasis exists (v1 required 'multiple')
    ("liver", ("solid", "hypodense", "solitary", "phase_portal_venous"), {"impression:liver:metastasis"}),
    # the same pancreatic mass without a known phase: PDAC only in the differential
    ("pancreas", ("solid", "hypodense"), {"impression:pancreas:pdac"}),
    # a fluid renal lesion without a phase: no Bosniak class can be assigned
    ("kidney", ("cystic", "well_defined"), set()),
    # an adrenal lesion <= 10 HU when the phase is not non-contrast is not an adenoma
    ("adrenal_gland", ("solid", "phase_portal_venous"), set()),
    # an abscess is in the differential of an ill-defined fluid liver lesion, flagged urgent
    ("liver", ("cystic", "ill_defined", "irregular"), {"impression:liver:abscess"}),
])
def test_indeterminate_when_features_cannot_discriminate(organ, features, in_differential):
    assessment = lead(organ, *features)
    assert not assessment.decisive
    assert assessment.leading.node_id == f"impression:{organ}:indeterminate"
    assert assessment.leading.category == "indeterminate"
    assert in_differential <= {m.node_id for m in assessment.differential}
    assert KG.is_licensed(organ, assessment.leading.node_id, {f"feature:{f}" for f in features})


def test_abscess_is_flagged_urgent_and_benign_cyst_label_names_bosniak_2019():
    assert KG.is_urgent("impression:liver:abscess") and not KG.is_urgent("impression:liver:simple_cyst")
    assert "Bosniak 2019" in KG.label("impression:kidney:benign_cyst")


def test_phase_restricted_edges_count_only_in_their_phases():
    arterial = {m.node_id: m.score for m in KG.impressions_for("pancreas", {"feature:solid", "feature:hyperdense", "feature:phase_arterial"})}
    plain = {m.node_id: m.score for m in KG.impressions_for("pancreas", {"feature:solid", "feature:hyperdense"})}
    assert arterial["impression:pancreas:pnet"] > plain["impression:pancreas:pnet"]


def test_impression_of_another_organ_is_not_licensed():
    assert not KG.is_licensed("spleen", "impression:pancreas:pdac", {"feature:hypodense", "feature:solid"})


@pytest.mark.parametrize("organ, cm, expected", [
    # AJCC 8 exocrine pancreas: T1a <= 0.5, T1b > 0.5 and < 1, T1c 1-2, T2 > 2-4, T3 > 4 cm
    ("pancreas", 0.5, "T1a"), ("pancreas", 0.9, "T1b"), ("pancreas", 1.0, "T1c"), ("pancreas", 2.0, "T1c"),
    ("pancreas", 2.2, "T2"), ("pancreas", 4.5, "T3"),
    ("kidney", 4.0, "T1a"), ("kidney", 6.9, "T1b"), ("kidney", 8.0, "T2a"), ("kidney", 12.0, "T2b"),
    ("lung", 0.9, "T1a"), ("lung", 2.5, "T1c"), ("lung", 3.5, "T2a"), ("lung", 6.0, "T3"), ("lung", 7.5, "T4"),
    ("liver", 1.8, "T1a"), ("liver", 3.0, "T1b"),
    # AJCC 8 trunk/extremity sarcoma: T1 <= 5, T2 > 5-10, T3 > 10-15, T4 > 15 cm
    ("soft_tissue", 5.0, "T1"), ("soft_tissue", 11.5, "T3"), ("soft_tissue", 16.0, "T4"),
    ("adrenal_gland", 6.0, "T2"),
    ("stomach", 3.0, None), ("colon", 3.0, None), ("esophagus", 3.0, None),
])
def test_size_based_t_category(organ, cm, expected):
    assert KG.t_category_by_size(organ, cm) == expected


def test_liver_t_by_size_and_number_of_lesions():
    assert KG.t_category_by_size("liver", 3.0, solitary=False) == "T2"
    assert KG.t_category_by_size("liver", 5.5, solitary=False) == "T3"
    assert KG.t_category_by_size("liver", 3.0, vascular_contact=True) is None
    assert KG.t_category_by_size("liver", 1.5, vascular_contact=True) == "T1a"


def test_size_rules_stage_only_the_tumour_types_they_apply_to():
    assert KG.size_rule_applies("liver", ["impression:liver:hcc"])
    assert not KG.size_rule_applies("liver", ["impression:liver:metastasis", "impression:liver:hcc"])
    assert KG.size_rule_applies("pancreas", ["impression:pancreas:pdac"])
    assert KG.size_rule_applies("pancreas", ["impression:pancreas:pnet"], ["histology:pancreatic_ductal_adenocarcinoma"])
    assert not KG.size_rule_applies("pancreas", ["impression:pancreas:pnet"], ["histology:neuroendocrine_tumour"])
    assert KG.size_rule_applies("soft_tissue", [], ["histology:soft_tissue_sarcoma"])
    assert not KG.size_rule_applies("lung", ["impression:lung:metastases"])
    assert not KG.size_rule_applies("stomach", ["impression:stomach:carcinoma"])


def test_given_t_is_compared_with_the_size_rule():
    from tumorcot.knowledge_graph.staging import compare_t

    assert compare_t(KG, "pancreas", "T1", "T2") is False       # a 21.7 mm PDAC labelled T1: AJCC 8 says T2
    assert compare_t(KG, "pancreas", "pT1", "T1c") is True
    assert compare_t(KG, "pancreas", "T2", "T1c") is False      # T2 is size-defined for the pancreas
    assert compare_t(KG, "kidney", "T3a", "T1b") is None        # extent, which size does not measure
    assert compare_t(KG, "liver", "T2", "T1b") is None          # vascular invasion may make T2


def test_histology_matches_labels_synonyms_and_abbreviations():
    assert KG.match_histology("PDAC of the head") == "histology:pancreatic_ductal_adenocarcinoma"
    assert KG.match_histology("clear cell renal cell carcinoma") == "histology:clear_cell_renal_cell_carcinoma"
    assert KG.match_histology("soft-tissue sarcoma") == "histology:soft_tissue_sarcoma"


def test_a_lymph_node_lesion_is_judged_by_its_short_axis_and_passes_the_calibrator():
    from factories import case_facts, lesion
    from tumorcot.agents.calibrator import calibrate
    from tumorcot.agents.offline import OfflineGenerator

    base = case_facts()
    # short axes 0.7 x long axis (factory): 21 mm and 7 mm, against RECIST 1.1's 10 mm
    nodes = [lesion("L5", "outside_organs", 30.0, 40.0, 40.0, kind="lymph_node"),
             lesion("L6", "outside_organs", 10.0, 40.0, 40.0, kind="lymph_node")]
    facts = base.model_copy(update={"lesions": [*base.lesions, *nodes]})
    accepted, rejected = calibrate(OfflineGenerator(KG).generate(facts), facts, KG)
    assert rejected == []
    [report] = [r for r in accepted if r.subtask == "organ_report" and r.organ == "outside_organs"]
    impressions = [s.kg_node_ids[0] for s in report.steps if s.stage == "impression"]
    assert impressions == ["impression:lymph_node:enlarged", "impression:lymph_node:normal_size"]
