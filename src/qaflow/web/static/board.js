// The board's live parts: elements with data-live-src are refreshed from that URL while
// they carry data-live; the server stops it by answering without the X-Live header.
// A run's log (#log) is followed by fetching the bytes after data-offset.
"use strict";
(function () {
  var INTERVAL = 1500;

  function follow(element) {
    var url = element.getAttribute("data-live-src");
    function tick() {
      fetch(url, { headers: { "X-Requested-With": "board" }, credentials: "same-origin" })
        .then(function (response) {
          var live = response.headers.get("X-Live") === "1";
          return response.text().then(function (html) {
            if (response.ok) element.innerHTML = html;
            if (live) {
              setTimeout(tick, INTERVAL);
            } else {
              element.removeAttribute("data-live");
              element.dispatchEvent(new CustomEvent("board:settled", { bubbles: true }));
            }
          });
        })
        .catch(function () { setTimeout(tick, INTERVAL * 2); });
    }
    setTimeout(tick, INTERVAL);
  }

  function followLog(pre) {
    var url = pre.getAttribute("data-log-src");
    var offset = parseInt(pre.getAttribute("data-offset") || "0", 10);
    function tick() {
      fetch(url + "?offset=" + offset, { credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (data) {
          if (data.text) {
            var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
            pre.classList.remove("hidden");
            var none = document.getElementById("no-log");
            if (none) none.remove();
            pre.appendChild(document.createTextNode(data.text));
            if (atBottom) pre.scrollTop = pre.scrollHeight;
          }
          offset = data.offset;
          pre.setAttribute("data-offset", String(offset));
          if (data.finished) {
            // the run ended: reload once, to show its metrics and files
            if (pre.getAttribute("data-live")) window.location.reload();
          } else {
            setTimeout(tick, INTERVAL);
          }
        })
        .catch(function () { setTimeout(tick, INTERVAL * 2); });
    }
    setTimeout(tick, INTERVAL);
  }

  document.querySelectorAll("[data-live-src][data-live]").forEach(follow);
  var log = document.getElementById("log");
  if (log && log.getAttribute("data-live")) followLog(log);
  if (log) log.scrollTop = log.scrollHeight;
})();
