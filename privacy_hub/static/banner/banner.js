/* Privacy Hub cookie banner. Embed on a shop page:
 *   <script src="https://HUB/consent/banner.js" defer></script>
 * Nothing optional is stored before a choice; the choice is kept in one first-party
 * cookie ("hub_consent": a random visitor id, the categories, the notice version) for at
 * most 13 months and asked again when the notice changes. Works under a strict CSP: no
 * inline script or style; allow the hub's origin in script-src, style-src and connect-src.
 * The page reads the answer from window.PrivacyHubConsent.allowed("statistics") and
 * listens for the "privacyhub:consent" event; any element with
 * data-privacy-hub-settings reopens the choices. */
(function () {
  "use strict";
  var script = document.currentScript;
  var hub = (script && script.getAttribute("data-hub")) || new URL(script.src).origin;
  var lang = (script && script.getAttribute("data-lang")) || document.documentElement.lang || navigator.language || "en";
  var COOKIE = "hub_consent";
  var gpc = navigator.globalPrivacyControl === true;
  var config = null;
  var state = { categories: {} };

  var api = window.PrivacyHubConsent = {
    ready: false,
    allowed: function (category) { return category === "necessary" || state.categories[category] === true; },
    categories: function () { return Object.assign({}, state.categories); },
    open: function () { if (config) { show(true); } }
  };

  function readCookie() {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === COOKIE) {
        try { return JSON.parse(decodeURIComponent(parts[i].slice(eq + 1))); } catch (e) { return null; }
      }
    }
    return null;
  }

  function writeCookie(value, days) {
    document.cookie = COOKIE + "=" + encodeURIComponent(JSON.stringify(value)) +
      "; Max-Age=" + Math.floor(days * 86400) + "; Path=/; SameSite=Lax" +
      (location.protocol === "https:" ? "; Secure" : "");
  }

  function newVisitorId() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function announce() {
    api.ready = true;
    document.dispatchEvent(new CustomEvent("privacyhub:consent", { detail: api.categories() }));
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text) { node.textContent = text; }
    return node;
  }

  function refusedByGpc(cat) { return gpc && cat.sale_or_sharing; }

  function save(action, chosen) {
    var saved = readCookie();
    var visitor = (saved && saved.visitor) || newVisitorId();
    var answer = {};
    config.categories.forEach(function (cat) {
      answer[cat.key] = !refusedByGpc(cat) && chosen[cat.key] === true;
    });
    state.categories = answer;
    writeCookie({ visitor: visitor, categories: answer, notice: config.notice_version,
                  at: Date.now(), expires: Date.now() + config.max_age_days * 86400000 },
                config.max_age_days);
    fetch(hub + "/consent/banner/choices", {
      method: "POST", credentials: "omit", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ visitor_id: visitor, action: action, categories: answer,
                             notice_version: config.notice_version })
    }).catch(function () { /* the choice holds on this device; the hub learns it next time */ });
    hide();
    announce();
  }

  var root = null;

  function hide() { if (root) { root.remove(); root = null; } }

  function show(withSettings) {
    hide();
    var t = config.texts;
    root = el("section", "phcb");
    root.setAttribute("role", "region");
    root.setAttribute("aria-labelledby", "phcb-title");
    root.lang = config.language;
    var box = el("div", "phcb-box");
    var title = el("h2", "phcb-title", t.title);
    title.id = "phcb-title";
    box.appendChild(title);
    var intro = el("p", "phcb-text", t.intro + " ");
    var policy = el("a", "phcb-link", t.policy);
    policy.href = config.policy_url;
    intro.appendChild(policy);
    box.appendChild(intro);

    var settings = el("form", "phcb-settings");
    settings.hidden = !withSettings;
    var necessary = el("p", "phcb-cat");
    var nbox = el("input");
    nbox.type = "checkbox"; nbox.checked = true; nbox.disabled = true; nbox.id = "phcb-necessary";
    var nlabel = el("label", "", t.necessary);
    nlabel.htmlFor = "phcb-necessary";
    necessary.appendChild(nbox); necessary.appendChild(nlabel);
    necessary.appendChild(el("small", "phcb-small", t.necessary_text));
    settings.appendChild(necessary);
    config.categories.forEach(function (cat) {
      var row = el("p", "phcb-cat");
      var box2 = el("input");
      box2.type = "checkbox"; box2.name = cat.key; box2.id = "phcb-" + cat.key;
      box2.checked = !refusedByGpc(cat) && state.categories[cat.key] === true;  /* never pre-ticked */
      box2.disabled = refusedByGpc(cat);
      var label = el("label", "", t[cat.key] || cat.key);
      label.htmlFor = box2.id;
      row.appendChild(box2); row.appendChild(label);
      var detail = cat.purposes.map(function (p) { return p.title + ": " + p.description; }).join(" ");
      row.appendChild(el("small", "phcb-small", refusedByGpc(cat) ? t.gpc : detail));
      settings.appendChild(row);
    });
    var saveButton = el("button", "phcb-btn", t.save);
    saveButton.type = "submit";
    settings.appendChild(saveButton);
    settings.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var chosen = {};
      config.categories.forEach(function (cat) { chosen[cat.key] = settings.elements[cat.key].checked; });
      save("settings", chosen);
    });

    var first = el("div", "phcb-actions");
    var accept = el("button", "phcb-btn", t.accept_all);
    var reject = el("button", "phcb-btn", t.reject_all);
    var more = el("button", "phcb-btn phcb-quiet", t.settings);
    [accept, reject, more].forEach(function (b) { b.type = "button"; first.appendChild(b); });
    accept.addEventListener("click", function () {
      var all = {}; config.categories.forEach(function (c) { all[c.key] = true; });
      save("accept_all", all);
    });
    reject.addEventListener("click", function () { save("reject_all", {}); });
    more.setAttribute("aria-expanded", withSettings ? "true" : "false");
    more.addEventListener("click", function () {
      settings.hidden = !settings.hidden;
      more.setAttribute("aria-expanded", settings.hidden ? "false" : "true");
    });
    box.appendChild(first);
    box.appendChild(settings);
    root.appendChild(box);
    document.body.appendChild(root);
    title.tabIndex = -1;
  }

  function start(cfg) {
    config = cfg;
    var saved = readCookie();
    var fresh = saved && saved.notice === cfg.notice_version && saved.expires > Date.now();
    if (fresh) {
      cfg.categories.forEach(function (cat) {
        state.categories[cat.key] = !refusedByGpc(cat) && saved.categories[cat.key] === true;
      });
      announce();
    } else {
      show(false);  /* nothing allowed until the visitor answers */
    }
    document.addEventListener("click", function (ev) {
      var target = ev.target && ev.target.closest && ev.target.closest("[data-privacy-hub-settings]");
      if (target) { ev.preventDefault(); show(true); }
    });
  }

  var css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = hub + "/consent/banner.css";
  document.head.appendChild(css);
  fetch(hub + "/consent/banner/config?lang=" + encodeURIComponent(lang), { credentials: "omit" })
    .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
    .then(start)
    .catch(function () { announce(); /* the hub is unreachable: nothing optional runs */ });
})();
