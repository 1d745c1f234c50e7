// inkorg admin UI: our own small script. It disables the fields that the chosen e-mail method and
// authentication flow do not use (the table comes from the server in data-applies), and asks before
// a removal. No inline script anywhere: the Content-Security-Policy forbids it.
"use strict";
(function () {
  function update(form) {
    var table;
    try { table = JSON.parse(form.dataset.applies || "{}"); } catch (e) { return; }
    var methodSel = form.querySelector("select[name=emailMethod]");
    var flowSel = form.querySelector("select[name=authFlow]");
    var method = form.dataset.method || (methodSel && methodSel.value) || form.dataset.inheritMethod || "";
    var flow = (flowSel && flowSel.value) || form.dataset.inheritFlow || "";
    var na = table[method + "|" + flow] || [];
    form.querySelectorAll(".field[data-field]").forEach(function (div) {
      var off = na.indexOf(div.dataset.field) >= 0;
      div.classList.toggle("na", off);
      div.querySelectorAll("input, select, textarea").forEach(function (el) { el.disabled = off; });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-applies]").forEach(function (form) {
      form.addEventListener("change", function (ev) {
        if (ev.target.name === "emailMethod" || ev.target.name === "authFlow") { update(form); }
      });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (!window.confirm(form.dataset.confirm)) { ev.preventDefault(); }
      });
    });
  });
})();
