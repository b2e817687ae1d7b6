// The fleet report page: builds the problems view and one page of the host table from the embedded model.
// Strings from the model are only ever written as text (textContent, .value, .title), never as markup;
// rows and hosts are addressed by their index in data.hosts, never by name.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("page-config").textContent);
  var data = JSON.parse(document.getElementById("fleet-data").textContent);
  var hosts = data.hosts;
  var N = hosts.length;
  var CUT = 120; // characters shown in a table cell; the detail view shows the whole value
  var SEVERITIES = ["error", "warning", "info"];
  // not run: the check applies but could not run (never a pass); skip: it does not apply
  var CHECK_LABELS = { pass: "PASS", fail: "FAIL", not_run: "NOT RUN", skip: "SKIP" };
  var validModes = cfg.modes;
  var statusIndex = {};
  var statusLabel = {};
  cfg.statuses.forEach(function (s, i) { statusIndex[s.id] = i; statusLabel[s.id] = s.label; });
  var $ = function (id) { return document.getElementById(id); };

  function str(v) { return v === null || v === undefined ? "" : String(v); }
  var ODD = /[\u0000-\u001f\u007f-\u009f]/;
  // A value as the page shows it: plain when tame, JSON-quoted when "", padded or with control characters.
  function shown(v, valid) {
    if (v === null || v === undefined) { return ""; }
    var t = String(v);
    if (valid && valid.indexOf(t) !== -1) { return t; }
    return (t === "" || t !== t.trim() || ODD.test(t)) ? JSON.stringify(t) : t;
  }
  function cut(t) { return t.length > CUT ? t.slice(0, CUT - 1) + "\u2026" : t; }
  function el(tag, cls, txt) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (txt !== undefined && txt !== null) { e.textContent = String(txt); }
    return e;
  }
  function button(cls, txt) { var b = el("button", cls, txt); b.type = "button"; return b; }
  function sevRank(s) { var r = SEVERITIES.indexOf(s); return r === -1 ? SEVERITIES.length : r; }

  // Names to indices (a name may repeat in a hostile inventory: every index is kept).
  var byName = Object.create(null);
  hosts.forEach(function (h, i) { (byName[h.name] = byName[h.name] || []).push(i); });
  function indicesOf(names) {
    var out = [];
    (names || []).forEach(function (n) { (byName[n] || []).forEach(function (i) { out.push(i); }); });
    return out;
  }

  // ---------------------------------------------------------------- rows: one precomputed record per host
  var rows = new Array(N);
  for (var i = 0; i < N; i++) {
    var h = hosts[i], tpm = h.tpm || {}, lockout = tpm.lockout || null, obs = h.observed || {};
    var tpmText = "", lockText = "", ekText = "";
    if (h.reachable === false) { tpmText = "unknown"; }
    else if (!h.tpm) { tpmText = "not read"; }
    else if (!tpm.present) { tpmText = "none"; }
    else {
      tpmText = [str(tpm.manufacturer), str(tpm.firmware_version)].filter(Boolean).join(" ") || "not opened";
      lockText = lockout ? (lockout.in_lockout ? "LOCKOUT" : str(lockout.counter) + "/" + str(lockout.max_tries)) : "";
      ekText = (tpm.ek_certificates || []).some(function (c) { return c.present; }) ? "yes" : (tpm.opened ? "no" : "");
    }
    var problems = h.problems || [], groups = h.groups || [];
    var worst = problems.length ? problems[0] : null;
    var sev = SEVERITIES.length;
    problems.forEach(function (p) { sev = Math.min(sev, sevRank(p.severity)); });
    var modeKey = validModes.indexOf(h.mode) !== -1 ? h.mode : "invalid";
    rows[i] = {
      status: h.status, st: h.status in statusIndex ? statusIndex[h.status] : cfg.statuses.length,
      name: str(h.name), mode: h.mode === null || h.mode === undefined ? "(not set)" : shown(h.mode, validModes),
      modeKey: modeKey, observed: shown(h.observed_mode), tpm: shown(tpmText), lock: lockText, ek: ekText,
      tss: obs.tss_gid, docker: obs.docker_gid, problem: worst ? str(worst.title) : "",
      severity: worst ? str(worst.severity) : "", count: problems.length, sev: sev, stale: h.stale === true,
      search: [h.name, h.status, statusLabel[h.status], h.mode, h.observed_mode, tpmText, obs.tss_gid,
        h.stale === true ? "stale" : "",
        obs.docker_gid].concat(groups, problems.map(function (p) { return str(p.title) + " " + str(p.cause); }))
        .map(str).join("\n").toLowerCase()
    };
  }

  // ---------------------------------------------------------------- sort keys per column, computed once
  function num(v) { return typeof v === "number" ? v : Infinity; }
  var KEYS = [
    function (r) { return r.st; },
    function (r) { return r.name.toLowerCase(); },
    function (r) { return r.mode.toLowerCase(); },
    function (r) { return r.observed.toLowerCase(); },
    function (r) { return r.tpm.toLowerCase(); },
    function (r) { return r.lock; },
    function (r) { return r.ek; },
    function (r) { return num(r.tss); },
    function (r) { return num(r.docker); },
    function (r) { return r.sev * 1e6 + (999999 - Math.min(r.count, 999999)); }
  ];
  var keyCache = [];
  function keys(col) {
    if (!keyCache[col]) { keyCache[col] = rows.map(KEYS[col]); }
    return keyCache[col];
  }

  // ---------------------------------------------------------------- state
  var table = $("hosts"), tbody = table.tBodies[0];
  var text = $("filter"), statusSel = $("status-filter"), modeSel = $("mode-filter"), sizeSel = $("page-size");
  var order = rows.map(function (_r, k) { return k; }); // model order: problems first
  var view = order;
  var page = 0, pageSize = cfg.page_size;
  var sortCol = -1, sortDir = "ascending";

  cfg.statuses.forEach(function (s) {
    var o = el("option", null, s.label); o.value = s.id; statusSel.appendChild(o);
  });
  validModes.concat(["invalid"]).forEach(function (m) {
    var o = el("option", null, m); o.value = m; modeSel.appendChild(o);
  });
  [50, 100, 250, 500].concat([cfg.page_size]).filter(function (v, k, a) { return a.indexOf(v) === k; })
    .sort(function (a, b) { return a - b; }).forEach(function (v) {
      var o = el("option", null, String(v)); o.value = String(v); o.selected = v === pageSize; sizeSel.appendChild(o);
    });

  function applyFilter() {
    var q = text.value.trim().toLowerCase();
    var terms = q ? q.split(/\s+/) : [];
    var st = statusSel.value, md = modeSel.value, out = [];
    for (var k = 0; k < order.length; k++) {
      var r = rows[order[k]];
      if ((st && r.status !== st) || (md && r.modeKey !== md)) { continue; }
      var ok = true;
      for (var j = 0; j < terms.length && ok; j++) { ok = r.search.indexOf(terms[j]) !== -1; }
      if (ok) { out.push(order[k]); }
    }
    view = out;
    page = 0;
    render();
  }

  function sortBy(col) {
    sortDir = sortCol === col && sortDir === "ascending" ? "descending" : "ascending";
    sortCol = col;
    var ks = keys(col), sign = sortDir === "ascending" ? 1 : -1;
    order = rows.map(function (_r, k) { return k; });
    order.sort(function (a, b) {
      var x = ks[a], y = ks[b];
      return sign * (x < y ? -1 : x > y ? 1 : a - b); // descending is the exact reverse of ascending
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, c) {
      th.setAttribute("aria-sort", c === col ? sortDir : "none");
    });
    applyFilter();
  }

  function cell(tr, textValue, full, cls) {
    var td = el("td", cls, cut(textValue));
    if (full !== undefined && (full.length > CUT || full !== textValue)) { td.title = full.slice(0, 2000); }
    else if (textValue.length > CUT) { td.title = textValue.slice(0, 2000); }
    tr.appendChild(td);
    return td;
  }

  function row(k) {
    var r = rows[k], tr = el("tr");
    tr.dataset.i = String(k);
    var td = el("td");
    td.appendChild(el("span", "badge st-" + r.st, statusLabel[r.status] || shown(r.status)));
    if (r.stale) { td.appendChild(el("span", "badge stale", "stale")); }
    tr.appendChild(td);
    td = el("td", "host");
    var b = button("host-link", cut(shown(r.name)));
    b.dataset.i = String(k);
    if (r.name.length > CUT) { b.title = r.name.slice(0, 2000); }
    td.appendChild(b);
    tr.appendChild(td);
    cell(tr, r.mode, undefined, r.modeKey === "invalid" ? "odd" : null);
    cell(tr, r.observed);
    cell(tr, r.tpm);
    cell(tr, r.lock, undefined, r.lock === "LOCKOUT" ? "odd" : null);
    cell(tr, r.ek);
    cell(tr, str(r.tss));
    cell(tr, str(r.docker));
    if (r.count) {
      td = cell(tr, shown(r.problem) + (r.count > 1 ? "  (+" + (r.count - 1) + " more)" : ""), r.problem,
        "problem sev-" + r.severity);
    } else {
      cell(tr, "none");
    }
    return tr;
  }

  function render() {
    var pages = Math.max(1, Math.ceil(view.length / pageSize));
    page = Math.min(Math.max(0, page), pages - 1);
    var start = page * pageSize, end = Math.min(view.length, start + pageSize);
    var frag = document.createDocumentFragment();
    for (var k = start; k < end; k++) { frag.appendChild(row(view[k])); }
    tbody.textContent = "";
    tbody.appendChild(frag);
    $("shown-count").textContent = String(view.length);
    $("page-info").textContent = view.length ? "Rows " + (start + 1) + "\u2013" + end + " of " + view.length +
      " \u00b7 page " + (page + 1) + " of " + pages : "No host matches";
    $("page-first").disabled = $("page-prev").disabled = page === 0;
    $("page-next").disabled = $("page-last").disabled = page >= pages - 1;
  }

  // ---------------------------------------------------------------- detail view (by index)
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
    pairs.forEach(function (p) {
      if (p[2] === "optional" && (p[1] === null || p[1] === undefined)) { return; } d.appendChild(el("dt", null, p[0])); d.appendChild(el("dd", null, fmt(p[1]))); });
    return d;
  }
  var detail = $("detail"), opener = null;
  // Where the host's data came from and how old it is (a cache run may show old data).
  function dataAge(h) {
    var from = h.source === "cache" ? "from the fact cache, read" : "read live";
    if (!h.read_at) { return h.source === "cache" ? "no cached data" : "read live"; }
    function n(v, unit) { return v + " " + unit + (v === 1 ? "" : "s"); }
    var s = h.age_seconds, age = s >= 172800 ? n(Math.floor(s / 86400), "day") : s >= 3600 ?
      n(Math.floor(s / 3600), "hour") : s >= 120 ? n(Math.floor(s / 60), "minute") : n(s, "second");
    return from + " at " + h.read_at + " (" + age + " old" + (h.stale ? ", STALE" : "") + ")";
  }

  function closeDetail() {
    detail.hidden = true;
    if (opener && document.contains(opener)) { opener.focus(); }
    opener = null;
  }
  function showDetail(k, from) {
    var h = hosts[k];
    if (!h) { return; }
    opener = from || null;
    detail.textContent = "";
    detail.dataset.i = String(k);
    var close = button(null, "Close");
    close.id = "detail-close";
    close.addEventListener("click", closeDetail);
    detail.appendChild(close);
    detail.appendChild(el("h3", null, str(h.name)));
    var name = str(h.name), mode = h.mode;
    detail.appendChild(dl([["Name (JSON)", name !== shown(name) ? JSON.stringify(name) : null, "optional"],
      ["Status", statusLabel[h.status] || h.status],
      ["Requested mode", mode === null || mode === undefined ? "(not set)" : (validModes.indexOf(mode) !== -1 ? mode :
        JSON.stringify(mode) + " (not a valid mode)")],
      ["Observed mode", h.observed_mode], ["Groups", (h.groups || []).join(", ")], ["Data", dataAge(h)],
      ["tss GID", (h.observed || {}).tss_gid], ["docker GID", (h.observed || {}).docker_gid]]));
    var problems = h.problems || [];
    detail.appendChild(el("h4", null, "Problems (" + problems.length + ")"));
    if (!problems.length) { detail.appendChild(el("p", null, "None.")); }
    problems.forEach(function (p) {
      var d = el("div", "p sev-" + str(p.severity));
      d.appendChild(el("strong", null, "[" + str(p.severity) + "] " + str(p.title)));
      d.appendChild(el("div", "cause", "Cause: " + str(p.cause)));
      d.appendChild(el("div", "fix", "Fix: " + str(p.fix)));
      if (p.group) { d.appendChild(el("div", "more", "Problem group: " + str(p.group))); }
      detail.appendChild(d);
    });
    var t = h.tpm;
    if (t) {
      detail.appendChild(el("h4", null, "TPM"));
      detail.appendChild(dl([["Present", t.present], ["Driver", t.driver], ["Kernel", t.kernel], ["TCTI", t.tcti],
        ["Manufacturer", t.manufacturer ? t.manufacturer + " (" + str(t.manufacturer_name) + ")" : null],
        ["Vendor strings", t.vendor_strings], ["Firmware", t.firmware_version],
        ["Spec", t.spec_family ? t.spec_family + " level " + t.spec_level + " rev " + t.spec_revision : null],
        ["Software TPM", t.software_tpm], ["PCR banks", t.pcr_banks ? Object.keys(t.pcr_banks).join(", ") : null],
        ["Lockout", t.lockout], ["Auth set", t.auth], ["EK", t.ek],
        ["EK certificates", (t.ek_certificates || []).filter(function (c) { return c.present; })
          .map(function (c) { return c.index + " " + c.algorithm + (c.issuer ? " (" + c.issuer + ")" : ""); })
          .join("; ") || "none"],
        ["Persistent handles", (t.persistent_handles || []).map(function (p) {
          return p.handle + " " + (p.range || "?") + " " + (p.key || ""); }).join("; ") || "none"],
        ["Event log", t.event_log], ["Last ansible-pull run", t.last_run && t.last_run.exists ? t.last_run : null],
        ["Errors", t.errors && t.errors.length ? t.errors : null]]));
    }
    if (h.expected || h.observed) {
      detail.appendChild(el("h4", null, "Expected vs observed"));
      var e = h.expected || {}, o = h.observed || {};
      detail.appendChild(dl([["TCTI", fmt(e.tcti) + "  /  " + fmt(o.tcti_env)],
        ["tpm2-abrmd running", fmt(e.abrmd_running) + "  /  " + fmt(o.abrmd_running)],
        ["tpm2-abrmd masked", fmt(e.abrmd_masked) + "  /  " + fmt(o.abrmd_unit_file_state)],
        ["Nodes", fmt(e.nodes) + "  /  " + fmt(o.nodes)], ["/dev/tpm0 holders", o.tpm0_holders]]));
    }
    detail.appendChild(el("h4", null, "Checks"));
    var ul = el("ul");
    (h.checks || []).forEach(function (c) {
      var li = el("li", "check-" + str(c.status));
      li.appendChild(el("span", "cst", CHECK_LABELS[c.status] || shown(c.status)));
      li.appendChild(document.createTextNode(" " + str(c.title) + (c.message ? ": " + c.message : "")));
      ul.appendChild(li);
    });
    detail.appendChild(ul);
    if (h.attestation && typeof h.attestation === "object") { attestSection(h.attestation); }
    detail.hidden = false;
    close.focus();
  }

  // ---------------------------------------------------------------- attestation (only with tpm_attest_checks)
  function certText(c) {
    var problems = (c.problems || []).map(function (p) { return str(p.reason) + ": " + str(p.cause); });
    return str(c.algorithm) + " at " + str(c.index) + "; subject " + str(c.subject) + "; issuer " + str(c.issuer) +
      "; valid " + str(c.not_before) + " to " + str(c.not_after) + (problems.length ? "; " + problems.join("; ") : "");
  }
  function attestDetails(o) {
    var d = o.details && typeof o.details === "object" ? o.details : {};
    if (o.check === "ek_chain") {
      return [["EK certificates", Array.isArray(d.certificates) ? d.certificates.map(certText) : d.certificates],
        ["Chained", d.chained]];
    }
    if (o.check === "eventlog") {
      return [["Replayed PCRs", d.compared], ["Differ", Array.isArray(d.mismatches) ? d.mismatches.map(function (m) {
        return str(m.pcr) + ": log " + str(m.replayed) + ", quoted " + str(m.quoted); }) : d.mismatches],
        ["Not quoted", d.not_quoted], ["Events", d.events], ["Quote", d.quote_selection],
        ["Log SHA-256", d.log_sha256]];
    }
    if (o.check === "ima") {
      return [["Entries", d.entries], ["Policy loaded", d.policy_loaded], ["Banks", d.banks], ["Note", d.note]];
    }
    if (o.check === "consumer_quote") {
      return [["Consumers", Array.isArray(d.consumers) ? d.consumers.map(function (c) {
        return str(c.user) + " over " + str(c.tcti) + ": " + (CHECK_LABELS[c.status] || shown(c.status)) +
          (c.cause ? " (" + str(c.cause) + ")" : "") + (c.fix ? "; fix: " + str(c.fix) : ""); }) : d.consumers]];
    }
    return [["Details", Object.keys(d).length ? d : null]];
  }
  function attestSection(a) {
    detail.appendChild(el("h4", null, "Attestation"));
    detail.appendChild(dl([["Ready", a.ready ? "yes" : "no"],
      ["Evidence read", a.read_at ? a.read_at + (a.stale ? " (STALE: older than tpm_report_max_age)" : "") : null,
        "optional"], ["Checks enabled", a.checks_enabled]]));
    var ul = el("ul", "attest");
    (Array.isArray(a.outcomes) ? a.outcomes : []).forEach(function (o) {
      var li = el("li", "check-" + str(o.status));
      li.appendChild(el("span", "cst", CHECK_LABELS[o.status] || shown(o.status)));
      li.appendChild(document.createTextNode(" " + str(cfg.attest_titles[o.check] || o.check) +
        (o.reason ? " (" + str(o.reason) + ")" : "")));
      if (o.cause) { li.appendChild(el("div", "cause", "Cause: " + str(o.cause))); }
      if (o.fix) { li.appendChild(el("div", "fix", "Fix: " + str(o.fix))); }
      li.appendChild(dl(attestDetails(o).map(function (p) { return [p[0], p[1], "optional"]; })));
      ul.appendChild(li);
    });
    detail.appendChild(ul);
  }

  // ---------------------------------------------------------------- problems view
  function hostList(box, indices) {
    var LIMIT = 500;
    function fill(all) {
      box.textContent = "";
      var ul = el("ul", "hosts-of");
      (all ? indices : indices.slice(0, LIMIT)).forEach(function (k) {
        var li = el("li"), b = button("host-link", cut(shown(str(hosts[k].name))));
        b.dataset.i = String(k);
        li.appendChild(b);
        ul.appendChild(li);
      });
      box.appendChild(ul);
      if (!all && indices.length > LIMIT) {
        var more = button("more-hosts", "Show all " + indices.length + " hosts");
        more.addEventListener("click", function () { fill(true); });
        box.appendChild(more);
      }
    }
    fill(false);
  }
  function lazyHosts(details, indices) {
    var box = details.querySelector(".hostlist");
    details.addEventListener("toggle", function () {
      if (details.open && !box.firstChild) { hostList(box, indices); }
    });
  }

  function copy(value, btn) {
    var label = btn.textContent;
    function done(ok) {
      btn.dataset.copied = ok ? "ok" : "failed";
      btn.textContent = ok ? "Copied" : "Copy failed: select the command";
      setTimeout(function () { btn.textContent = label; }, 2000);
    }
    function fallback() {
      var ta = el("textarea");
      ta.value = value;
      document.body.appendChild(ta);
      ta.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (err) { ok = false; }
      document.body.removeChild(ta);
      done(ok);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(function () { done(true); }, fallback);
    } else { fallback(); }
  }

  // The model's problem groups (report.build always writes them), host names turned into indices.
  function problemGroups() {
    return (data.problem_groups || []).map(function (g) {
      return { id: g.id, severity: g.severity, title: g.title, cause: g.cause, fix: g.fix, command: g.command,
        limit_file: g.limit_file, count: g.count, hosts: indicesOf(g.hosts), outside: indicesOf(g.not_in_limit_file) };
    });
  }

  // Hosts a limit file cannot carry (their name would select other hosts): listed, to be fixed one by one.
  function outsideLimit(indices) {
    var det = el("details", "outside-limit");
    det.appendChild(el("summary", null, indices.length + " host" + (indices.length === 1 ? "" : "s") +
      " not in the limit file: fix on each host"));
    det.appendChild(el("p", "more", "A line of a limit file cannot carry these names as themselves (whitespace, " +
      "control characters, a leading ! & ~ @, glob characters, \"all\" or a group's name would select other " +
      "hosts): run the fix for each of them with its own --limit."));
    det.appendChild(el("div", "hostlist"));
    lazyHosts(det, indices);
    return det;
  }

  function commandLine(value) {
    var c = el("div", "cmd");
    c.appendChild(el("code", "clip", str(value)));
    var b = button("copy", "Copy command");
    b.addEventListener("click", function () { copy(str(value), b); });
    c.appendChild(b);
    return c;
  }

  function renderProblems() {
    var box = $("problems"), groups = problemGroups(), shownGroups = 0, STEP = 8;
    box.textContent = "";
    if (!groups.length) { box.appendChild(el("p", null, "No host has a problem.")); return; }
    box.appendChild(el("p", "meta", groups.length + " problem" + (groups.length === 1 ? "" : "s") +
      ", most severe and most frequent first."));
    var list = el("div", "pgroups"), more = button("more-groups", "");
    box.appendChild(list);
    box.appendChild(more);
    function group(g) {
      var d = el("div", "pgroup sev-" + str(g.severity));
      var head = el("div", "phead");
      head.appendChild(el("span", "sev", str(g.severity)));
      head.appendChild(el("strong", "ptitle", cut(shown(str(g.title)))));
      head.appendChild(el("span", "count", g.count + " host" + (g.count === 1 ? "" : "s")));
      d.appendChild(head);
      d.appendChild(el("div", "cause clip", "Cause: " + str(g.cause)));
      d.appendChild(el("div", "fix clip", "Fix: " + str(g.fix)));
      if (g.command) { d.appendChild(commandLine(g.command)); }
      if (g.limit_file) {
        var lf = el("div", "limit", "Limit file: ");
        var path = str(g.limit_file);
        if (/^limits\/[A-Za-z0-9._-]+\.txt$/.test(path)) {
          var a = el("a", null, path); a.href = path; lf.appendChild(a);
        } else { lf.appendChild(el("code", null, shown(path))); }
        d.appendChild(lf);
      }
      var det = el("details", "group-hosts");
      det.appendChild(el("summary", null, "Hosts (" + g.hosts.length + ")"));
      det.appendChild(el("div", "hostlist"));
      lazyHosts(det, g.hosts);
      d.appendChild(det);
      if (g.outside.length) { d.appendChild(outsideLimit(g.outside)); }
      return d;
    }
    function step() {
      var frag = document.createDocumentFragment();
      groups.slice(shownGroups, shownGroups + STEP).forEach(function (g) { frag.appendChild(group(g)); });
      list.appendChild(frag);
      shownGroups = Math.min(groups.length, shownGroups + STEP);
      more.hidden = shownGroups >= groups.length;
      more.textContent = "Show " + Math.min(STEP, groups.length - shownGroups) + " more problems (" +
        (groups.length - shownGroups) + " not shown)";
    }
    more.addEventListener("click", step);
    step();
  }

  // ---------------------------------------------------------------- wiring
  Array.prototype.forEach.call(document.querySelectorAll("details.finding-hosts"), function (d) {
    var f = (data.fleet_findings || [])[Number(d.dataset.finding)] || {};
    lazyHosts(d, indicesOf(f.hosts));
    var box = d.parentNode;
    if (f.command) { box.insertBefore(commandLine(f.command), d); }
    if ((f.not_in_limit_file || []).length) { box.appendChild(outsideLimit(indicesOf(f.not_in_limit_file))); }
  });
  text.addEventListener("input", applyFilter);
  statusSel.addEventListener("change", applyFilter);
  modeSel.addEventListener("change", applyFilter);
  sizeSel.addEventListener("change", function () { pageSize = Number(sizeSel.value); page = 0; render(); });
  $("page-first").addEventListener("click", function () { page = 0; render(); });
  $("page-prev").addEventListener("click", function () { page -= 1; render(); });
  $("page-next").addEventListener("click", function () { page += 1; render(); });
  $("page-last").addEventListener("click", function () { page = Infinity; render(); });
  table.tHead.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("button.sort") : null;
    if (b) { sortBy(Number(b.dataset.col)); }
  });
  document.body.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("button.host-link") : null;
    if (b && b.dataset.i !== undefined) { showDetail(Number(b.dataset.i), b); }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && !detail.hidden) { closeDetail(); }
  });
  renderProblems();
  render();
  window.tpmfleetReport = { showDetail: showDetail, rows: function () { return view.slice(); } };
  performance.mark("report-ready");
  document.documentElement.dataset.ready = "1";
  // after the first frame with the rows laid out and painted (what benchmarks/report_bench.py reads)
  requestAnimationFrame(function () { setTimeout(function () { performance.mark("report-painted"); }, 0); });
})();
