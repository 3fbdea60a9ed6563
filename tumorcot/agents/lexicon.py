"""The closed-world clinical lexicon: every clinical term a record may state, generated from the
knowledge graph and the label tables, and the scanner that finds those terms in text.

Generated, not hand-listed, so it grows with the KG and the label tables:

* organs: every TotalSegmentator ``total`` label (its spoken name, e.g. "right kidney", and its
  head noun, e.g. "kidney", "vertebrae"), every KG organ node (label, synonyms, abbreviations),
  plus the adjective forms of ``ORGAN_ALIASES`` ("hepatic", "renal", ...);
* sub-regions: every KG sub-region node and every sub-location value the imaging stage writes
  (``vocabulary.SUB_LOCATION_SCHEMES``), Couinaud segments in Roman and Arabic numerals;
* features and their opposites: KG feature nodes (label, synonyms, ``opposites``); a feature's
  *group* (attenuation, shape, margin, ...) is the set it is an alternative within;
* impressions, histologies, pathology classes and resectability statuses: KG node label, synonyms,
  abbreviations (and the node id's short name, e.g. "HCC");
* the contrast phases the imaging stage estimates (``knowledge_graph.features.PHASES``);
* patterns: TNM in every notation (``T2 N0 M0``, compact ``T3N1M1``, prefixed ``ypT3``), stage
  groups (``AJCC stage IV``, ``stage 4``), numbers with units (``183mL``, ``1,369 mL``, Unicode
  minus, ``34 x 23 mm``), count words ("two lesions"), lesion ids and sides (an axis named by its
  ends, "right-to-left", states no side).

What the lexicon does not know but looks clinical (``CLINICAL_WORD``: tumour nouns, -oma/-itis,
anatomy roots) is reported as an ``unknown`` term, so it is rejected rather than waved through.
"""

from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass, field

from tumorcot.knowledge_graph import KnowledgeGraph
from tumorcot.knowledge_graph.features import PHASES
from tumorcot.vocabulary import ATTRIBUTE_VALUES, NO_HOST, ROMAN, SUB_LOCATION_SCHEMES, display_name, organ_labels

# Spoken forms of organs that no label name contains (the label table is the source of names).
ORGAN_ALIASES = {
    "hepatic": ("liver",), "pancreatic": ("pancreas",), "renal": ("kidney",),
    "splenic": ("spleen",), "gastric": ("stomach",), "colonic": ("colon",), "colorectal": ("colon",),
    "oesophagus": ("esophagus",), "oesophageal": ("esophagus",), "esophageal": ("esophagus",),
    "pulmonary": ("lung",), "lungs": ("lung",), "lung": ("lung",), "bowel": ("small_bowel", "colon"),
    "small intestine": ("small_bowel",), "bladder": ("urinary_bladder",), "psoas": ("iliopsoas",),
    "adrenal": ("adrenal_gland",), "kidneys": ("kidney",),
    "vena cava": ("inferior_vena_cava", "superior_vena_cava"), "ivc": ("inferior_vena_cava",),
    "portal vein": ("portal_vein_and_splenic_vein",), "splenic vein": ("portal_vein_and_splenic_vein",),
    "gall bladder": ("gallbladder",), "soft tissue": NO_HOST,
    "vertebra": ("vertebrae",), "spine": ("vertebrae",), "ribs": ("rib",), "lymph node": ("lymph_node",),
}
# Fallback synonyms for feature nodes while the KG gives none (KG ``synonyms`` are added to these).
FEATURE_SYNONYMS = {
    "hypodense": ("hypoattenuating", "hypo-attenuating", "low-attenuation", "low attenuation"),
    "hyperdense": ("hyperattenuating", "hyper-attenuating", "high-attenuation", "high attenuation"),
    "isodense": ("isoattenuating", "iso-attenuating"),
    "well-defined": ("well defined", "well-circumscribed", "circumscribed", "sharply marginated"),
    "ill-defined": ("ill defined", "poorly defined", "poorly marginated", "indistinct"),
    "round": ("rounded", "spherical"), "oval": ("ovoid",), "lobulated": ("lobular",),
    "multiple": ("multifocal",), "vascular contact": ("abutting", "abuts", "encasing", "encases"),
}
# Feature groups (alternatives of one attribute) when the KG gives no ``opposites``.
FEATURE_GROUPS = {**{k: v for k, v in ATTRIBUTE_VALUES.items() if k not in ("presence", "behavior")},
                  "multiplicity": ("solitary", "multiple"), "size": ("small", "large")}
KIND_WORDS = ("cyst", "cysts")
# Organ-level findings: phrase -> (the finding value, the derived fact that decides it).
ORGAN_FINDINGS = {"splenomegaly": ("splenomegaly", "size_finding"),
                  "hepatic steatosis": ("hepatic steatosis", "fat_finding"),
                  "steatosis": ("hepatic steatosis", "fat_finding"),
                  "size discrepancy": ("size discrepancy", "length_finding")}
CATEGORY_WORDS = {"malignancy": "pathology:malignant", "cancer": "pathology:malignant"}
NUMBER_WORDS = {w: i for i, w in enumerate(("zero one two three four five six seven eight nine ten eleven "
                                            "twelve").split())}
# Generic clinical words that make no claim by themselves ("lesion", "impression", ...).
GENERIC = set("""lesion lesions focal tumour tumours tumor tumors mass masses nodule nodules organ organs tissue
imaging pathology pathological histology histological impression impressions finding findings differential
diagnosis diagnoses staging stage stages staged attenuation density densities margin margins boundary shape
contour content size volume diameter diameters axis axial slice slices segmented region regions subregion
sub-region sub-location location morphology ct scan plane radiologist knowledge graph confirmation biopsy
category categories tnm ajcc rule edition size-based surrounding parenchyma host measured measurement
characterise characterize vessel vessels contact mean hu features feature classed leading suspected causes
lobe lobes segment segments""".split())
CLINICAL_WORD = re.compile(
    r"\b(?:\w*(?:oma|omas|omata|itis|osis|ectomy|otomy|plasia|plastic|pathy|aemia|emia|cele)"
    r"|(?:carcino|sarcom|metasta|neoplas|malign|benign|lymph|adeno|cyst|tumou?r|nodul|polyp|abscess|necro"
    r"|haemorrh|hemorrh|thromb|enhanc|infiltr|invasi|stenos|dilat|obstruct|calcif|fibro|cirrho|steato"
    r"|hepat|nephr|pancrea|splen|gastr|colo|oesoph|esoph|pulmon|renal|duoden|jejun|ile|bowel|bladder"
    r"|psoas|muscl|vertebr|bone|arter|vein|venous|aort|portal|biliar|bile|duct|gland|node|peritone|pleur"
    r"|ascit|effusion|omentum|mesenter|segment|lobe|pole|uncinat|hilum|hilar|capsul|cortex|cortic|wall)\w*)\b",
    re.I)
CLINICAL_EXEMPT = {"colour", "colours", "color", "column", "columns", "colon", "portal", "wall", "nodes"}


@dataclass(frozen=True)
class Term:
    """A lexicon entry: ``kind`` (organ, subregion, feature, impression, category, ...) and ``keys``
    (structure names, sub-location keys, KG node ids) it may stand for; ``group`` is the closed set
    of alternatives it belongs to (a feature attribute, an organ's sub-regions, ...)."""

    kind: str
    keys: tuple[str, ...]
    group: str = ""


@dataclass(frozen=True)
class Hit:
    """One clinical term found in text, at ``span``; ``value``/``unit``/``hint`` for numbers.
    Frozen: ``Lexicon.scan`` hands the same hits to every caller of the same text."""

    kind: str
    text: str
    span: tuple[int, int]
    term: Term | None = None
    value: float | None = None
    unit: str | None = None
    decimals: int = 0
    signed: bool = False
    hint: str | None = None
    negated: bool = False
    parts: list[str] = field(default_factory=list)  # TNM components


def segment_key(text: str) -> str:
    """'segment 8', 'Segment VIII', 'segment IVa' -> 'segment:VIII' / 'segment:IVa'."""
    number = text.split()[-1]
    if number.isdigit():
        number = ROMAN[int(number) - 1] if 1 <= int(number) <= 8 else number
    return f"segment:{number[:-1].upper() + number[-1] if number[-1] in 'ab' else number.upper()}"


def _phrase_forms(text: str) -> set[str]:
    text = text.lower().replace("_", " ").strip()
    forms = {text, text.replace("-", " "), text.replace("oe", "e") if "oesoph" in text else text}
    forms |= {f.replace("tumour", "tumor") for f in forms}
    return {f for f in forms if f}


def phrase_trie(phrases) -> str:
    """A regex matching the same as the alternation of ``phrases`` longest first, written as a
    trie ("kidney|kidneys" -> "kidney(?:s)?"): at each position the regex engine follows one
    branch instead of trying every phrase, and the greedy optional tails still give the longest
    phrase that the rest of the pattern accepts. ``phrases`` are lower case (matched with re.I)."""
    root: dict = {}
    for phrase in phrases:
        node = root
        for char in phrase:
            node = node.setdefault(char, {})
        node[""] = {}  # a phrase ends here

    def regex(node: dict) -> str:
        branches = [re.escape(char) + regex(child) for char, child in sorted(node.items()) if char]
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" not in node:
            return body
        return "" if not branches else f"(?:{body})?"

    return regex(root)


class Lexicon:
    """Phrase table + compiled scanner. Build one per KG with ``lexicon_for(kg)``."""

    def __init__(self, kg: KnowledgeGraph):
        self.kg = kg
        self.phrases: dict[str, set[tuple[str, str, str]]] = {}
        self._organs()
        self._subregions()
        self._features()
        self._nodes()
        for phrase, (finding, _) in ORGAN_FINDINGS.items():  # organ-level labels (schemas.derived)
            self.add(phrase, "organ_finding", finding)
        self.pattern = re.compile(r"(?<![\w-])(" + phrase_trie(self.phrases) + r")(?![\w-])", re.I)
        # The lexicon never changes after this point, so a text's hits are computed once: a record's
        # question, answer, steps and turns repeat sentences, and every gate re-checks them.
        self._scan_cached = lru_cache(maxsize=SCAN_CACHE_SIZE)(self._scan)

    def add(self, phrase: str, kind: str, key: str, group: str = "") -> None:
        for form in _phrase_forms(phrase):
            self.phrases.setdefault(form, set()).add((kind, key, group))

    def term(self, phrase: str) -> Term | None:
        entries = self.phrases.get(phrase.lower())
        if not entries:
            return None
        kinds = sorted({e[0] for e in entries}, key=("organ", "subregion", "feature", "impression", "histology",
                                                     "category", "resectability", "kind", "phase",
                                                     "organ_finding").index)
        kind = kinds[0]
        chosen = [e for e in entries if e[0] == kind]
        return Term(kind, tuple(sorted({e[1] for e in entries})), chosen[0][2])

    # -- generation ---------------------------------------------------------------------------
    def _organs(self) -> None:
        for name in organ_labels().values():
            if name.startswith("kidney_cyst"):
                continue
            self.add(display_name(name), "organ", name)
            head = [w for w in name.split("_") if w not in ("left", "right") and not w.isdigit()
                    and not re.fullmatch(r"[CTLS]\d+", w)]
            if head[:1] == ["lung"]:
                head = ["lung"]
            self.add(" ".join(head), "organ", "_".join(head))  # the family: "kidney", "rib", "lung"
        for alias, names in ORGAN_ALIASES.items():
            for name in names:
                self.add(alias, "organ", name)
        for node, data in self.kg.graph.nodes(data=True):
            if data.get("type") == "organ":
                key = node.split(":", 1)[1]
                for phrase in [data.get("label", "")] + list(data.get("synonyms", [])) + list(data.get("abbreviations", [])):
                    if phrase:
                        self.add(phrase, "organ", key)

    def _subregions(self) -> None:
        for node, data in self.kg.graph.nodes(data=True):
            if data.get("type") == "subregion":
                organ = node.split(":")[1]
                for phrase in [data.get("label", "")] + list(data.get("synonyms", [])):
                    key = segment_key(phrase) if phrase.lower().startswith("segment ") else phrase.lower()
                    self.add(phrase, "subregion", key, organ)
        for scheme in SUB_LOCATION_SCHEMES:
            for value in scheme:
                for part in value.split(", "):
                    self.add(part, "subregion", segment_key(part) if " segment " in f" {part} " and
                             part.split()[-1].rstrip("ab").upper() in ROMAN else part.lower(), "sub_location")
        for i, roman in enumerate(ROMAN, 1):
            for form in (f"segment {roman}", f"segment {i}", f"couinaud segment {roman}", f"couinaud segment {i}"):
                self.add(form, "subregion", f"segment:{roman}", "liver")
            if roman == "IV":
                for half in ("a", "b"):
                    self.add(f"segment IV{half}", "subregion", f"segment:IV{half}", "liver")
                    self.add(f"segment 4{half}", "subregion", f"segment:IV{half}", "liver")
        for value in ("interpolar region", "interpolar"):
            self.add(value, "subregion", "interpolar", "kidney")

    def _features(self) -> None:
        groups = {v: g for g, values in FEATURE_GROUPS.items() for v in values}
        for node, data in self.kg.graph.nodes(data=True):
            if data.get("type") != "feature":
                continue
            label = data.get("label", node.split(":", 1)[1])
            group = groups.get(label) or next((groups[o] for o in data.get("opposites", []) if o in groups),
                                              None) or label
            for phrase in {label, *FEATURE_SYNONYMS.get(label, ()), *data.get("synonyms", [])}:
                self.add(phrase, "feature", node, group)
            for opposite in data.get("opposites", []):  # an opposite named by label or node id
                groups.setdefault(opposite.split(":")[-1].replace("_", "-"), group)

    def _nodes(self) -> None:
        for node, data in self.kg.graph.nodes(data=True):
            kind = {"impression": "impression", "histology": "histology", "pathology": "category",
                    "resectability": "resectability"}.get(data.get("type"))
            if kind is None:
                continue
            names = [data.get("label", "")] + list(data.get("synonyms", [])) + list(data.get("abbreviations", []))
            short = node.rsplit(":", 1)[1]
            if kind == "impression" and len(short) <= 5 and short.isalpha() and short not in ("cyst", "normal"):
                names.append(short)  # hcc, pdac, rcc, pnet
            if kind == "category":
                names = [data.get("label", ""), data.get("label", "").split(" (")[0]]
            for phrase in names:
                if phrase:
                    self.add(phrase, kind, node)
                    if " (" in phrase and phrase.endswith(")"):
                        self.add(phrase.split(" (")[0], kind, node)
        for word, node in CATEGORY_WORDS.items():
            self.add(word, "category", node)
        for phase in PHASES:  # the contrast phase the imaging stage estimated
            for form in (phase.replace("_", " "), phase.replace("_", "-")):
                self.add(form, "phase", phase)
                self.add(form + " phase", "phase", phase)
        for word in KIND_WORDS:  # a lesion kind given with the lesion mask ("1:tumor;2:cyst")
            self.add(word, "kind", f"kind:{word.rstrip('s')}")

    # -- scanning -----------------------------------------------------------------------------
    def scan(self, text: str) -> list[Hit]:
        """Every clinical term in ``text``, left to right; numbers, TNM and stage groups first,
        then lexicon phrases (longest first), then lesion ids, sides and unknown clinical words.
        Memoised per lexicon (a new list of the same frozen hits for a text seen before)."""
        return list(self._scan_cached(text))

    def _scan(self, text: str) -> tuple[Hit, ...]:
        hits: list[Hit] = []
        taken = [False] * len(text)

        def free(a: int, b: int) -> bool:
            return not any(taken[a:b])

        def take(hit: Hit) -> None:
            hits.append(hit)
            for i in range(*hit.span):
                taken[i] = True

        for m in re.finditer(r"\{[^{}\s]*\}", text):  # a slot reference left unresolved
            take(Hit("slot", m.group(), m.span()))
        for m in STAGE_GROUP.finditer(text):
            if free(*m.span()):
                take(Hit("stage_group", m.group(), m.span()))
        for m in TNM_RUN.finditer(text):
            if free(*m.span()):
                parts = [p.group() for p in TNM_PART.finditer(m.group())]
                take(Hit("tnm", m.group(), m.span(), parts=parts))
        for m in self.pattern.finditer(text):
            if free(*m.span()):
                before = text[max(0, m.start() - 16):m.start()].lower()
                if before.endswith("how "):  # "How large is ...?" asks, it does not claim
                    continue
                take(Hit("term", m.group(), m.span(), term=self.term(m.group()),
                         negated=bool(NEGATION.search(before))))
        for hit in scan_numbers(text):
            if free(*hit.span):
                take(hit)
        for m in LESION_ID.finditer(text):
            if free(*m.span()):
                take(Hit("lesion", m.group(), m.span()))
        for m in AXIS.finditer(text):   # "right-to-left" names an axis, not a side
            for i in range(*m.span()):
                taken[i] = True
        for m in SIDE.finditer(text):
            if free(*m.span()):
                take(Hit("side", m.group().lower(), m.span()))
        for m in CLINICAL_WORD.finditer(text):
            word = m.group().lower()
            if free(*m.span()) and word not in GENERIC and word not in CLINICAL_EXEMPT:
                take(Hit("unknown", m.group(), m.span()))
        return tuple(sorted(hits, key=lambda h: h.span))


SCAN_CACHE_SIZE = 16384   # distinct texts remembered per lexicon (a build's case has a few hundred)
_LEXICA: dict[tuple[str, int], Lexicon] = {}


def lexicon_for(kg: KnowledgeGraph) -> Lexicon:
    """The lexicon of ``kg`` (built once per KG object and version)."""
    key = (kg.version, id(kg))
    if key not in _LEXICA:
        _LEXICA[key] = Lexicon(kg)
    return _LEXICA[key]


# -- patterns ---------------------------------------------------------------------------------
_TNM_ONE = r"(?:yp|yc|[ycpra])?[TNM](?:X|is|[0-4](?:mi|[a-d])?)"
TNM_RUN = re.compile(rf"(?<![A-Za-z0-9]){_TNM_ONE}(?:[ ,]?{_TNM_ONE})*(?![A-Za-z0-9])")
TNM_PART = re.compile(_TNM_ONE)
STAGE_GROUP = re.compile(r"(?:\bAJCC\s+)?\b(?:stage|Stage|STAGE)\s+(?:0|IV|I{1,3}|[1-4])(?:[ABC]\d?)?(?![\w])")
LESION_ID = re.compile(r"(?<![\w-])L\d+(?![\w])")
SIDE = re.compile(r"\b(left|right|bilateral)\b", re.I)
AXIS = re.compile(r"\b(?:right|left)[- ]to[- ](?:left|right)\b", re.I)
NEGATION = re.compile(r"\b(not|no|non|rather than|instead of|nor|without)\s+(?:\w+\s+)?$")
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
UNITS = {"mm": "mm", "cm": "cm", "ml": "mL", "cc": "mL", "cm3": "mL", "hu": "HU", "deg": "deg",
         "degree": "deg", "degrees": "deg", "°": "deg", "%": "%"}
NUMBER = re.compile(rf"(?<![\w.,])(?P<sign>[-+\u2212\u2013])?(?P<num>{_NUM})"
                    rf"(?:\s?(?P<unit>mm|cm3|cm|mL|ml|cc|HU|hu|degrees|degree|deg|°|%))?(?![\w.]\w|\w)")
_PAIR = re.compile(r"^\s*(?:x|×|by|and|to|/|-)\s*$")
_COUNT_NOUN = re.compile(r"^\s+(?:\w+\s+)?(?:lesions?|nodules?|masses|foci|tumou?rs?|cysts?)\b", re.I)
_DIRECTION = re.compile(r"^\s*(below|lower than|less than|under|above|higher than|greater than|more than|over)\b", re.I)
QUANTITY_WORDS = {
    "slice": "axial_slice", "volume": "volume_ml", "mean": "mean_hu", "difference": "hu_difference",
    "below": "hu_difference", "above": "hu_difference", "contact": "contact", "abutting": "contact",
    "long": "long_axis", "longest": "long_axis", "short": "short_axis", "perpendicular": "short_axis",
    "3d": "max_diameter_3d", "greatest": "max_diameter_3d", "maximum": "max_diameter_3d",
}
_WORD = re.compile(r"[A-Za-z0-9]+")
_CLAUSE_END = re.compile(r"[.;!?)](?:\s|$)|\n")  # a quantity word does not reach past a sentence


def scan_numbers(text: str) -> list[Hit]:
    """Numbers with unit, sign (explicit or 'below'/'above'), decimals and a quantity hint (the
    nearest quantity word since the previous number); 'A x B mm' gives A the unit of B; count
    words before a lesion noun are numbers too."""
    matches = list(NUMBER.finditer(text))
    hits: list[Hit] = []
    for i, m in enumerate(matches):
        raw = m.group("num").replace(",", "")
        unit = UNITS.get((m.group("unit") or "").lower())
        j = i
        while unit is None and j + 1 < len(matches) and _PAIR.match(text[matches[j].end():matches[j + 1].start()]):
            j += 1
            unit = UNITS.get((matches[j].group("unit") or "").lower())
        sign = m.group("sign")
        value = float(raw) * (-1 if sign in ("-", "\u2212", "\u2013") else 1)
        signed = sign is not None
        direction = _DIRECTION.match(text[m.end():m.end() + 24])
        if direction and unit == "HU":
            signed = True
            value = -abs(value) if direction.group(1).lower() in ("below", "lower than", "less than", "under") else abs(value)
        start = matches[i - 1].end() if i else 0
        start = max([start] + [b.end() for b in _CLAUSE_END.finditer(text, start, m.start())])
        words = [w.lower() for w in _WORD.findall(text[start:m.start()])]
        hint = next((QUANTITY_WORDS[w] for w in reversed(words) if w in QUANTITY_WORDS), None)
        if unit is None and _COUNT_NOUN.match(text[m.end():]):
            hint = "lesion_count"
        if direction and unit == "HU":
            hint = "hu_difference"
        hits.append(Hit("number", m.group(), m.span(), value=value, unit=unit, signed=signed, hint=hint,
                        decimals=len(raw.split(".")[1]) if "." in raw else 0))
    for m in re.finditer(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", text, re.I):
        if _COUNT_NOUN.match(text[m.end():]):
            hits.append(Hit("number", m.group(), m.span(), value=float(NUMBER_WORDS[m.group().lower()]),
                            hint="lesion_count"))
    return hits
