// Verdict state of a tumorcot review pack: kept in localStorage, exported as one JSON file.
(function () {
  "use strict";
  const PACK = JSON.parse(document.getElementById("pack-meta").textContent);
  const KEY = "tumorcot-review:" + PACK.id;
  let state;
  try { state = JSON.parse(localStorage.getItem(KEY)) || {}; } catch (e) { state = {}; }
  state.reviewer = state.reviewer || "";
  state.records = state.records || {};

  function entry(rid, step) {
    const rec = state.records[rid] = state.records[rid] || {verdict: null, reason: "", steps: {}};
    if (step === undefined) return rec;
    return rec.steps[step] = rec.steps[step] || {verdict: null, reason: ""};
  }

  function save(rid) {
    if (rid) state.records[rid].time = new Date().toISOString();
    localStorage.setItem(KEY, JSON.stringify(state));
    refresh();
  }

  function refresh() {
    let judged = 0;
    document.querySelectorAll("section.record").forEach(function (sec) {
      const rec = state.records[sec.dataset.recordId];
      const done = !!(rec && rec.verdict);
      sec.classList.toggle("judged", done);
      if (done) judged += 1;
    });
    document.getElementById("progress").textContent = judged + " of " + PACK.records.length + " records judged";
  }

  document.getElementById("reviewer").value = state.reviewer;
  document.getElementById("reviewer").addEventListener("input", function (ev) {
    state.reviewer = ev.target.value.trim();
    save();
  });

  document.querySelectorAll("[data-record]").forEach(function (el) {
    const rid = el.dataset.record;
    const step = el.dataset.step;
    const target = (state.records[rid] && (step === undefined ? state.records[rid] : state.records[rid].steps[step])) || null;
    if (el.type === "radio") {
      el.checked = !!target && target.verdict === el.value;
      el.addEventListener("change", function () { entry(rid, step).verdict = el.value; save(rid); });
    } else {
      el.value = (target && target.reason) || "";
      el.addEventListener("input", function () { entry(rid, step).reason = el.value; save(rid); });
    }
  });

  function verdicts() {
    const out = [];
    PACK.records.forEach(function (rid) {
      const rec = state.records[rid];
      if (!rec) return;
      const steps = Object.keys(rec.steps).map(Number).sort(function (a, b) { return a - b; })
        .filter(function (i) { return rec.steps[i].verdict; })
        .map(function (i) { return {index: i, verdict: rec.steps[i].verdict, reason: rec.steps[i].reason || ""}; });
      if (!rec.verdict && steps.length === 0) return;
      out.push({record_id: rid, reviewer: state.reviewer, verdict: rec.verdict || null,
                reason: rec.reason || "", steps: steps, time: rec.time || null});
    });
    return out;
  }

  document.getElementById("export").addEventListener("click", function () {
    if (!state.reviewer) {
      alert("Enter your reviewer id first.");
      document.getElementById("reviewer").focus();
      return;
    }
    const body = {format: PACK.format, exported: new Date().toISOString(),
                  pack: {id: PACK.id, dataset_run: PACK.dataset_run, seed: PACK.seed, records: PACK.records.length},
                  verdicts: verdicts()};
    const blob = new Blob([JSON.stringify(body, null, 1)], {type: "application/json"});
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "verdicts-" + PACK.id + "-" + state.reviewer.replace(/[^A-Za-z0-9_.-]/g, "_") + ".json";
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 0);
  });

  refresh();
})();
