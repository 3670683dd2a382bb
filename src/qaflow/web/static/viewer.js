// Output files on a run page: images that zoom (wheel) and pan (drag) together with their
// reference image, text and JSON files loaded when opened, plotly JSON figures drawn.
"use strict";
(function () {
  function zoomGroup(group) {
    var images = Array.prototype.slice.call(group.querySelectorAll("img"));
    var state = { scale: 1, x: 0, y: 0 };
    function apply() {
      images.forEach(function (img) {
        img.style.transform = "translate(" + state.x + "px," + state.y + "px) scale(" + state.scale + ")";
      });
      group.setAttribute("data-scale", state.scale.toFixed(3));
      if (state.scale > 2) group.setAttribute("data-zoomed", "1"); else group.removeAttribute("data-zoomed");
    }
    group.querySelectorAll(".zoom-pane").forEach(function (pane) {
      pane.addEventListener("wheel", function (event) {
        event.preventDefault();
        var rect = pane.getBoundingClientRect();
        var px = event.clientX - rect.left, py = event.clientY - rect.top;
        var factor = Math.exp(-event.deltaY * 0.0015);
        var scale = Math.min(64, Math.max(0.1, state.scale * factor));
        // keep the point under the cursor where it is
        state.x = px - (px - state.x) * (scale / state.scale);
        state.y = py - (py - state.y) * (scale / state.scale);
        state.scale = scale;
        apply();
      }, { passive: false });
      var drag = null;
      pane.addEventListener("pointerdown", function (event) {
        drag = { x: event.clientX - state.x, y: event.clientY - state.y };
        pane.setPointerCapture(event.pointerId);
        pane.classList.add("dragging");
      });
      pane.addEventListener("pointermove", function (event) {
        if (!drag) return;
        state.x = event.clientX - drag.x;
        state.y = event.clientY - drag.y;
        apply();
      });
      function stop() { drag = null; pane.classList.remove("dragging"); }
      pane.addEventListener("pointerup", stop);
      pane.addEventListener("pointercancel", stop);
      pane.addEventListener("dblclick", function () { state = { scale: 1, x: 0, y: 0 }; apply(); });
    });
    apply();
  }

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

  document.querySelectorAll(".zoom-group").forEach(zoomGroup);
  document.querySelectorAll("details[data-text-src]").forEach(textView);
  window.addEventListener("load", function () {
    document.querySelectorAll("[data-plotly-src]").forEach(plot);
  });
})();
