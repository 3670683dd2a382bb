// The board's plots: each element with data-figure holds a plotly figure as JSON (built by
// the server, web/charts.py), drawn here with the bundled plotly.js. A click on a point
// whose customdata is a board URL opens it (the run, with its reference).
"use strict";
(function () {
  function draw(element) {
    var figure = JSON.parse(element.getAttribute("data-figure"));
    if (!window.Plotly) { element.textContent = "plotly.js did not load"; return; }
    window.Plotly.newPlot(element, figure.data, figure.layout, { responsive: true, displaylogo: false })
      .then(function () {
        element.setAttribute("data-plotted", "1");
        element.on("plotly_click", function (event) {
          var url = event.points && event.points[0] && event.points[0].customdata;
          if (typeof url === "string" && url.charAt(0) === "/" && url.charAt(1) !== "/") window.location.href = url;
        });
      })
      .catch(function (error) { element.textContent = "Cannot draw this plot: " + error; });
  }
  document.querySelectorAll("[data-figure]").forEach(draw);
})();
