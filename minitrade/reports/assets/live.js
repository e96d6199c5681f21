// Reload the page when the site is published again: `minitrade serve` serves version.txt, which
// every publish rewrites. Pages opened from disk (file://) do nothing: they stay fully offline.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !/^https?:$/.test(location.protocol)) return;
  var url = script.src.replace(/assets\/live\.js(\?.*)?$/, "version.txt");
  var seen = null;
  function poll() {
    fetch(url, {cache: "no-store"})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (text === null) return;
        if (seen === null) seen = text;
        else if (text !== seen) location.reload();
      })
      .catch(function () { /* the server stopped: try again later */ })
      .finally(function () { setTimeout(poll, 3000); });
  }
  poll();
})();
