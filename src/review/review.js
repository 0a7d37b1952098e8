(function () {
  "use strict";
  // Reads only data-* attributes and textContent; writes only `hidden` and textContent.
  var doc = document;
  var cards = doc.querySelectorAll("#cards > .card");
  var total = cards.length;
  var items = new Array(total);
  function text(card, selector) {
    var el = card.querySelector(selector);
    return el ? el.textContent : "";
  }
  for (var i = 0; i < total; i++) {
    var card = cards[i];
    var warnings = card.getAttribute("data-warnings") || "";
    items[i] = {
      el: card,
      action: card.getAttribute("data-action") || "",
      reason: card.getAttribute("data-reason") || "",
      status: card.getAttribute("data-status") || "",
      audit: card.getAttribute("data-audit") || "",
      warnings: warnings ? warnings.split(" ") : [],
      hay: ((card.getAttribute("data-user") || "") + "\n" + text(card, ".e") + "\n" +
        text(card, ".d")).toLowerCase()
    };
  }
  var search = doc.getElementById("q");
  var shown = doc.getElementById("shown");
  var warningSelect = doc.getElementById("f-warning");
  function value(id) {
    var el = doc.getElementById(id);
    return el ? el.value : "";
  }
  // One pass: compare, toggle `hidden` where it changes, count; no layout is read.
  function apply() {
    var action = value("f-action"), reason = value("f-reason"), status = value("f-status");
    var audit = value("f-audit");
    var option = warningSelect ? warningSelect.options[warningSelect.selectedIndex] : null;
    var mode = option ? (option.getAttribute("data-special") || "one") : "all";
    var warning = option ? option.value : "";
    var query = search ? search.value.trim().toLowerCase() : "";
    var n = 0;
    for (var i = 0; i < total; i++) {
      var it = items[i];
      var ok = (!action || it.action === action) &&
        (!reason || it.reason === reason) &&
        (!status || it.status === status) &&
        (!audit || it.audit === audit) &&
        (mode === "all" ||
          (mode === "any" ? it.warnings.length > 0 :
            mode === "none" ? it.warnings.length === 0 :
              it.warnings.indexOf(warning) >= 0)) &&
        (!query || it.hay.indexOf(query) >= 0);
      if (it.el.hidden === ok) {
        it.el.hidden = !ok;
      }
      if (ok) {
        n++;
      }
    }
    shown.textContent = n + " of " + total + " cards shown";
  }
  var selects = doc.querySelectorAll(".bar select");
  for (var s = 0; s < selects.length; s++) {
    selects[s].addEventListener("change", apply);
  }
  if (search) {
    search.addEventListener("input", apply);
  }
  doc.getElementById("reset").addEventListener("click", function () {
    for (var s = 0; s < selects.length; s++) {
      selects[s].selectedIndex = 0;
    }
    if (search) {
      search.value = "";
    }
    apply();
  });
  // The browser may restore the controls' state on reload: show what they say.
  apply();
  doc.documentElement.setAttribute("data-ready", "1");
})();
