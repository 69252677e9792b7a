// "12 s ago" for every <time datetime=… data-relative>: the server sends the moment, the page
// keeps the words current between live updates (and after each htmx swap).
(function () {
  function words(seconds) {
    var future = seconds < 0, s = Math.abs(seconds), text;
    if (s < 5) return "just now";
    if (s < 60) text = Math.round(s) + " s";
    else if (s < 3600) text = Math.round(s / 60) + " min";
    else if (s < 172800) text = Math.round(s / 3600) + " h";
    else text = Math.round(s / 86400) + " d";
    return future ? "in " + text : text + " ago";
  }
  function refresh(root) {
    var now = Date.now();
    (root || document).querySelectorAll("time[data-relative]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(at)) el.textContent = words((now - at) / 1000);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { refresh(); });
  document.addEventListener("htmx:afterSettle", function () { refresh(); });
  setInterval(refresh, 5000);
})();
