(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("fleet-data").textContent);
  var byName = {};
  data.hosts.forEach(function (h) { byName[h.name] = h; });
  var table = document.getElementById("hosts");
  var tbody = table.tBodies[0];
  var rows = Array.prototype.slice.call(tbody.rows);
  var text = document.getElementById("filter");
  var statusSel = document.getElementById("status-filter");
  var modeSel = document.getElementById("mode-filter");
  var shown = document.getElementById("shown-count");
  var showAll = document.getElementById("show-all");
  // Only the first pageSize matching rows are laid out (problems come first); "Show all" lifts the limit.
  var pageSize = Number(table.dataset.pageSize) || Infinity;

  function applyFilter() {
    var q = text.value.trim().toLowerCase();
    var st = statusSel.value, md = modeSel.value, n = 0;
    var terms = q ? q.split(/\s+/) : [];
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i], ok = (!st || r.dataset.status === st) && (!md || r.dataset.mode === md);
      if (ok && terms.length) {
        var s = r.dataset.search;
        for (var j = 0; j < terms.length && ok; j++) { ok = s.indexOf(terms[j]) !== -1; }
      }
      if (ok) { n++; }
      r.hidden = !ok || n > pageSize;
    }
    shown.textContent = String(n);
    showAll.hidden = n <= pageSize;
    showAll.textContent = "Show all " + n + " (first " + pageSize + " shown)";
  }

  function sortBy(th) {
    var col = th.cellIndex;
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var numeric = th.dataset.type === "num";
    var keyed = rows.map(function (r, i) {
      var v = r.cells[col].dataset.v || "";
      return { r: r, i: i, v: numeric ? (v === "" ? Infinity : Number(v)) : v };
    });
    keyed.sort(function (a, b) {
      var c = a.v < b.v ? -1 : a.v > b.v ? 1 : a.i - b.i;
      return dir === "ascending" ? c : -c;
    });
    // reorder detached from the document: one layout instead of one per moved row
    var next = tbody.nextSibling;
    table.removeChild(tbody);
    keyed.forEach(function (k) { tbody.appendChild(k.r); });
    table.insertBefore(tbody, next);
    rows = keyed.map(function (k) { return k.r; });
    applyFilter();
  }

  function el(tag, cls, txt) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (txt !== undefined && txt !== null) { e.textContent = String(txt); }
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined || v === "") { return "-"; }
    if (Array.isArray(v)) { return v.length ? v.map(fmt).join("; ") : "none"; }
    if (typeof v === "object") {
      return Object.keys(v).map(function (k) { return k + ": " + fmt(v[k]); }).join(", ");
    }
    return String(v);
  }
  function dl(pairs) {
    var d = el("dl");
    pairs.forEach(function (p) { d.appendChild(el("dt", null, p[0])); d.appendChild(el("dd", null, fmt(p[1]))); });
    return d;
  }

  function showDetail(name) {
    var h = byName[name];
    var box = document.getElementById("detail");
    if (!h) { return; }
    while (box.firstChild) { box.removeChild(box.firstChild); }
    var close = el("button", null, "Close");
    close.type = "button";
    close.id = "detail-close";
    close.addEventListener("click", function () { box.hidden = true; });
    box.appendChild(close);
    box.appendChild(el("h3", null, h.name));
    box.appendChild(dl([["Status", h.status], ["Requested mode", h.mode], ["Observed mode", h.observed_mode],
      ["Groups", h.groups.join(", ")]]));
    box.appendChild(el("h4", null, "Problems (" + h.problems.length + ")"));
    if (!h.problems.length) { box.appendChild(el("p", null, "None.")); }
    h.problems.forEach(function (p) {
      var d = el("div", "p sev-" + p.severity);
      d.appendChild(el("strong", null, "[" + p.severity + "] " + p.title));
      d.appendChild(el("div", "cause", "Cause: " + p.cause));
      d.appendChild(el("div", "fix", "Fix: " + p.fix));
      box.appendChild(d);
    });
    var t = h.tpm;
    if (t) {
      box.appendChild(el("h4", null, "TPM"));
      box.appendChild(dl([["Present", t.present], ["Driver", t.driver], ["Kernel", t.kernel], ["TCTI", t.tcti],
        ["Manufacturer", t.manufacturer ? t.manufacturer + " (" + t.manufacturer_name + ")" : null],
        ["Vendor strings", t.vendor_strings], ["Firmware", t.firmware_version],
        ["Spec", t.spec_family ? t.spec_family + " level " + t.spec_level + " rev " + t.spec_revision : null],
        ["Software TPM", t.software_tpm], ["PCR banks", t.pcr_banks ? Object.keys(t.pcr_banks).join(", ") : null],
        ["Lockout", t.lockout], ["Auth set", t.auth], ["EK", t.ek],
        ["EK certificates", t.ek_certificates.filter(function (c) { return c.present; })
          .map(function (c) { return c.index + " " + c.algorithm + (c.issuer ? " (" + c.issuer + ")" : ""); })
          .join("; ") || "none"],
        ["Persistent handles", t.persistent_handles.map(function (p) {
          return p.handle + " " + (p.range || "?") + " " + (p.key || ""); }).join("; ") || "none"],
        ["Event log", t.event_log], ["Errors", t.errors.length ? t.errors : null]]));
    }
    if (h.expected || h.observed) {
      box.appendChild(el("h4", null, "Expected vs observed"));
      var e = h.expected || {}, o = h.observed || {};
      box.appendChild(dl([["TCTI", fmt(e.tcti) + "  /  " + fmt(o.tcti_env)],
        ["tpm2-abrmd running", fmt(e.abrmd_running) + "  /  " + fmt(o.abrmd_running)],
        ["tpm2-abrmd masked", fmt(e.abrmd_masked) + "  /  " + fmt(o.abrmd_unit_file_state)],
        ["Nodes", fmt(e.nodes) + "  /  " + fmt(o.nodes)], ["/dev/tpm0 holders", o.tpm0_holders],
        ["tss GID", o.tss_gid], ["docker GID", o.docker_gid]]));
    }
    box.appendChild(el("h4", null, "Checks"));
    var ul = el("ul");
    h.checks.forEach(function (c) {
      ul.appendChild(el("li", "check-" + c.status, c.status.toUpperCase() + " " + c.title +
        (c.message ? ": " + c.message : "")));
    });
    box.appendChild(ul);
    box.hidden = false;
  }

  text.addEventListener("input", applyFilter);
  statusSel.addEventListener("change", applyFilter);
  modeSel.addEventListener("change", applyFilter);
  showAll.addEventListener("click", function () { pageSize = Infinity; applyFilter(); });
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
  tbody.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest(".host-link") : null;
    if (b) { showDetail(b.closest("tr").dataset.host); }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { document.getElementById("detail").hidden = true; }
  });
  applyFilter();
})();
