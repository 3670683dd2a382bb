// Output files on a run page: text and JSON files loaded when opened, plotly JSON figures
// drawn (images: imageview.js).
"use strict";
(function () {
  function textView(details) {
    details.addEventListener("toggle", function () {
      if (!details.open || details.getAttribute("data-loaded")) return;
      details.setAttribute("data-loaded", "1");
      var pre = details.querySelector("pre");
      fetch(details.getAttribute("data-text-src"), { credentials: "same-origin" })
        .then(function (response) { return response.text(); })
        .then(function (text) {
          if (details.getAttribute("data-kind") === "json") {
            try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* shown as is */ }
          }
          pre.textContent = text;
        });
    });
  }

  function plot(element) {
    fetch(element.getAttribute("data-plotly-src"), { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (figure) {
        if (!window.Plotly) { element.textContent = "plotly.js did not load"; return; }
        var data = Array.isArray(figure) ? figure : figure.data || [];
        var layout = Array.isArray(figure) ? {} : figure.layout || {};
        return window.Plotly.newPlot(element, data, layout, { responsive: true, displaylogo: false });
      })
      .then(function () { element.setAttribute("data-plotted", "1"); })
      .catch(function (error) { element.textContent = "Cannot draw this plot: " + error; });
  }

  document.querySelectorAll("details[data-text-src]").forEach(textView);
  window.addEventListener("load", function () {
    document.querySelectorAll("[data-plotly-src]").forEach(plot);
  });
})();
