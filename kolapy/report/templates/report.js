(function () {
  "use strict";
  var boxes = document.querySelectorAll(".filters input[data-result]");
  var search = document.getElementById("search");
  var shown = document.getElementById("shown");
  var entries = document.querySelectorAll(".entry");
  function apply() {
    var want = {};
    boxes.forEach(function (b) { want[b.dataset.result] = b.checked; });
    var q = search.value.trim().toLowerCase();
    var n = 0;
    entries.forEach(function (e) {
      var ok = want[e.dataset.result] !== false &&
               (!q || e.dataset.search.indexOf(q) !== -1);
      e.classList.toggle("hidden", !ok);
      if (ok) { n += 1; }
    });
    shown.textContent = n + " of " + entries.length + " shown";
  }
  boxes.forEach(function (b) { b.addEventListener("change", apply); });
  search.addEventListener("input", apply);
  apply();
  document.body.dataset.ready = "1";
})();
