import json
from importlib import resources

import pytest

from tumorcot.knowledge_graph import load_kg


def test_kg_loads_from_its_data_file_and_versions_by_content():
    kg = load_kg()
    raw = resources.files("tumorcot.knowledge_graph").joinpath("data", "tumor_kg_v1.json").read_bytes()
    import hashlib
    assert kg.version == "kg-" + hashlib.sha256(raw).hexdigest()[:16]
    data = json.loads(raw)
    assert kg.graph.number_of_nodes() == len(data["nodes"])
    # every edge is typed and cites a source listed in the file
    assert all(e["ref"] in data["sources"] for e in data["edges"])
    for organ in ("liver", "pancreas", "stomach", "colon", "esophagus", "kidney", "lung"):
        assert kg.subregions(organ)
        assert kg.staging_rule(organ) is not None
    assert kg.staging_rule("spleen") is None


@pytest.mark.parametrize("organ, features, expected, absent", [
    # a fluid, well-defined liver lesion: cyst first, never HCC (cystic excludes it)
    ("liver", {"feature:cystic", "feature:hypodense", "feature:well_defined", "feature:solitary"},
     "impression:liver:simple_cyst", "impression:liver:hcc"),
    # metastases need more than one lesion
    ("liver", {"feature:hypodense", "feature:solid", "feature:solitary"}, "impression:liver:hcc",
     "impression:liver:metastasis"),
    ("liver", {"feature:hypodense", "feature:solid", "feature:multiple"}, "impression:liver:metastasis", None),
    # a solid, ill-defined pancreatic mass touching a vessel: ductal adenocarcinoma
    ("pancreas", {"feature:hypodense", "feature:solid", "feature:ill_defined", "feature:vascular_contact"},
     "impression:pancreas:pdac", "impression:pancreas:pseudocyst"),
    # fat in a kidney lesion: angiomyolipoma only
    ("kidney", {"feature:fatty", "feature:solitary"}, "impression:kidney:angiomyolipoma", "impression:kidney:rcc"),
    # an organ with no lesion
    ("spleen", {"feature:no_focal_lesion"}, "impression:spleen:normal", "impression:spleen:cyst"),
])
def test_impressions_licensed_by_features(organ, features, expected, absent):
    kg = load_kg()
    ids = [m.node_id for m in kg.impressions_for(organ, features)]
    assert ids[0] == expected
    assert absent not in ids
    path = kg.reasoning_path(organ, features, expected)
    assert path[0] == f"organ:{organ}" and path[-2] == expected and path[-1].startswith("pathology:")


def test_impression_of_another_organ_is_not_licensed():
    kg = load_kg()
    assert not kg.is_licensed("spleen", "impression:pancreas:pdac", {"feature:hypodense", "feature:solid"})


@pytest.mark.parametrize("organ, cm, expected", [
    ("pancreas", 2.0, "T1"),    # <= 2 cm
    ("pancreas", 2.1, "T2"),    # > 2-4 cm
    ("pancreas", 4.5, "T3"),    # > 4 cm
    ("kidney", 4.0, "T1a"), ("kidney", 6.9, "T1b"), ("kidney", 8.0, "T2a"), ("kidney", 12.0, "T2b"),
    ("lung", 0.9, "T1a"), ("lung", 2.5, "T1c"), ("lung", 3.5, "T2a"), ("lung", 6.0, "T3"), ("lung", 7.5, "T4"),
    ("liver", 1.8, "T1a"), ("liver", 3.0, "T1b"),
    ("stomach", 3.0, None),     # wall depth decides: only from pathology labels
    ("colon", 3.0, None), ("esophagus", 3.0, None),
])
def test_size_based_t_category(organ, cm, expected):
    assert load_kg().t_category_by_size(organ, cm) == expected


def test_liver_t_by_size_and_number_of_lesions():
    kg = load_kg()
    # multiple HCC: T2 when none exceeds 5 cm, T3 when one does (largest lesion)
    assert kg.t_category_by_size("liver", 3.0, solitary=False) == "T2"
    assert kg.t_category_by_size("liver", 5.5, solitary=False) == "T3"
    # solitary > 2 cm touching a vessel: contact is not proven invasion, so size does not decide
    assert kg.t_category_by_size("liver", 3.0, vascular_contact=True) is None
    assert kg.t_category_by_size("liver", 1.5, vascular_contact=True) == "T1a"


def test_size_rules_stage_only_the_tumour_types_they_apply_to():
    kg = load_kg()
    assert kg.size_rule_applies("liver", ["impression:liver:hcc"])
    assert not kg.size_rule_applies("liver", ["impression:liver:metastasis", "impression:liver:hcc"])
    assert kg.size_rule_applies("pancreas", ["impression:pancreas:pdac"])
    assert kg.size_rule_applies("pancreas", ["impression:pancreas:pnet"],
                                ["histology:pancreatic_ductal_adenocarcinoma"])
    assert not kg.size_rule_applies("lung", ["impression:lung:metastases"])
    assert not kg.size_rule_applies("stomach", ["impression:stomach:gastric_mass"])
