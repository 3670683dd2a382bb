// The run page's image viewer: an output image, and the same file of the reference run,
// drawn on canvases that share one zoom and pan (wheel, drag, double-click to fit). Zoomed
// in, pixels are drawn as hard squares (imageSmoothingEnabled = false). Four ways to
// compare: side by side, a split slider, blink (key b), and a heatmap of the difference
// with its colour scale. The pixel values of both images under the cursor are shown.
// A large image is first drawn from the server's downscaled preview; zooming in past the
// preview's resolution loads the full image.
// State for tests and people alike is mirrored on the <figure>: data-mode, data-shown,
// data-scale, data-x, data-y (CSS px), data-source (preview or full), data-ready.
"use strict";
(function () {
  // an inferno-like colour map, 0 -> black, 1 -> pale yellow
  var STOPS = [[0, 0, 0, 0], [0.25, 87, 16, 110], [0.5, 188, 55, 84], [0.75, 249, 142, 9], [1, 252, 255, 164]];

  function colour(t) {
    for (var i = 1; i < STOPS.length; i++) {
      if (t <= STOPS[i][0]) {
        var a = STOPS[i - 1], b = STOPS[i], f = (t - a[0]) / (b[0] - a[0]);
        return [0, 1, 2].map(function (k) { return Math.round(a[k + 1] + f * (b[k + 1] - a[k + 1])); });
      }
    }
    return STOPS[STOPS.length - 1].slice(1);
  }

  // One image as the viewer knows it: its full size, the source drawn (preview or full),
  // and its pixels (read once, when asked).
  function Side(src, preview, width, height) {
    this.src = src; this.preview = preview || null;
    this.width = width; this.height = height;
    this.image = null; this.full = !preview; this.pixels = null;
  }
  Side.prototype.load = function (url) {
    var side = this;
    return new Promise(function (resolve, reject) {
      var img = new Image();
      img.onload = function () {
        side.image = img; side.pixels = null;
        if (!side.width) { side.width = img.naturalWidth; side.height = img.naturalHeight; }
        resolve(side);
      };
      img.onerror = function () { reject(new Error("cannot load " + url)); };
      img.src = url;
    });
  };
  Side.prototype.data = function () {
    if (!this.pixels) {
      var c = document.createElement("canvas");
      c.width = this.image.naturalWidth; c.height = this.image.naturalHeight;
      var ctx = c.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(this.image, 0, 0);
      this.pixels = ctx.getImageData(0, 0, c.width, c.height);
    }
    return this.pixels;
  };
  Side.prototype.pixel = function (u, v) {  // u, v in full-resolution pixels
    if (u < 0 || v < 0 || u >= this.width || v >= this.height) return null;
    var d = this.data();
    var x = Math.floor(u * d.width / this.width), y = Math.floor(v * d.height / this.height);
    var i = (y * d.width + x) * 4;
    return [d.data[i], d.data[i + 1], d.data[i + 2], d.data[i + 3]];
  };

  function Viewer(figure) {
    this.figure = figure;
    this.stage = figure.querySelector(".stage");
    this.readout = figure.querySelector(".readout");
    this.scaleBar = figure.querySelector(".colour-scale");
    this.slider = figure.querySelector("input.split");
    this.which = figure.querySelector(".hint-line .which");
    var d = figure.dataset;
    this.mine = new Side(d.src, d.preview, +d.width || 0, +d.height || 0);
    this.ref = d.refSrc ? new Side(d.refSrc, d.refPreview, +d.refWidth || 0, +d.refHeight || 0) : null;
    this.state = null;  // {scale, x, y}: image pixel (u, v) is drawn at (x + u*scale, y + v*scale)
    this.mode = "side"; this.showRef = false; this.diff = null; this.loadingFull = false;
    this.panes = [];
  }

  Viewer.prototype.start = function () {
    var v = this;
    var sides = [v.mine].concat(v.ref ? [v.ref] : []);
    Promise.all(sides.map(function (s) { return s.load(s.preview || s.src); }))
      .then(function () {
        v.layout();
        v.fit();
        v.figure.setAttribute("data-ready", "1");
      })
      .catch(function (error) { v.stage.textContent = String(error.message || error); });
    v.figure.querySelectorAll(".modes button").forEach(function (button) {
      button.addEventListener("click", function () { v.setMode(button.getAttribute("data-mode")); });
    });
    if (v.slider) v.slider.addEventListener("input", function () { v.draw(); });
    window.addEventListener("resize", function () { if (v.state) { v.layout(); v.draw(); } });
  };

  Viewer.prototype.setMode = function (mode) {
    this.mode = mode;
    this.figure.setAttribute("data-mode", mode);
    this.figure.querySelectorAll(".modes button").forEach(function (b) {
      b.classList.toggle("active", b.getAttribute("data-mode") === mode);
    });
    if (this.slider) this.slider.hidden = mode !== "split";
    this.scaleBar.hidden = mode !== "diff";
    if (mode === "diff") this.makeDiff();
    this.layout();
    this.draw();
  };

  Viewer.prototype.blink = function () {
    this.showRef = !this.showRef;
    this.draw();
  };

  // the panes: two canvases side by side, else one
  Viewer.prototype.layout = function () {
    var count = this.mode === "side" && this.ref ? 2 : 1;
    if (this.panes.length !== count) {
      this.stage.textContent = "";
      this.panes = [];
      for (var i = 0; i < count; i++) this.panes.push(this.makePane(i));
      this.stage.classList.toggle("pair", count === 2);
    }
    var ratio = window.devicePixelRatio || 1;
    var before = this.paneWidth;
    this.paneWidth = this.panes[0].parentNode.getBoundingClientRect().width;
    if (this.state && before) this.state.x += (this.paneWidth - before) / 2;  // keep the centre
    this.panes.forEach(function (pane) {
      var box = pane.parentNode.getBoundingClientRect();
      pane.width = Math.max(1, Math.round(box.width * ratio));
      pane.height = Math.max(1, Math.round(box.height * ratio));
      pane.style.width = box.width + "px"; pane.style.height = box.height + "px";
    });
  };

  Viewer.prototype.makePane = function (index) {
    var v = this;
    var wrap = document.createElement("div");
    wrap.className = "pane";
    var canvas = document.createElement("canvas");
    canvas.setAttribute("data-pane", String(index));
    wrap.appendChild(canvas);
    v.stage.appendChild(wrap);
    wrap.addEventListener("wheel", function (event) {
      event.preventDefault();
      var r = canvas.getBoundingClientRect();
      v.zoomAt(event.clientX - r.left, event.clientY - r.top, Math.exp(-event.deltaY * 0.0015));
    }, { passive: false });
    var drag = null;
    wrap.addEventListener("pointerdown", function (event) {
      drag = { x: event.clientX - v.state.x, y: event.clientY - v.state.y };
      wrap.setPointerCapture(event.pointerId);
      wrap.classList.add("dragging");
      v.figure.focus({ preventScroll: true });
    });
    wrap.addEventListener("pointermove", function (event) {
      var r = canvas.getBoundingClientRect();
      v.showPixel(event.clientX - r.left, event.clientY - r.top);
      if (!drag) return;
      v.state.x = event.clientX - drag.x; v.state.y = event.clientY - drag.y;
      v.draw();
    });
    function stop() { drag = null; wrap.classList.remove("dragging"); }
    wrap.addEventListener("pointerup", stop);
    wrap.addEventListener("pointercancel", stop);
    wrap.addEventListener("dblclick", function () { v.fit(); });
    return canvas;
  };

  Viewer.prototype.fit = function () {
    var box = this.panes[0].getBoundingClientRect();
    var w = this.mine.width, h = this.mine.height;
    var scale = Math.min(box.width / w, box.height / h);
    if (scale > 1) scale = Math.max(1, Math.floor(scale));  // small images: whole screen pixels per pixel
    this.state = { scale: scale, x: (box.width - w * scale) / 2, y: (box.height - h * scale) / 2 };
    this.draw();
  };

  Viewer.prototype.zoomAt = function (px, py, factor) {
    var s = this.state;
    var scale = Math.min(256, Math.max(0.02, s.scale * factor));
    s.x = px - (px - s.x) * (scale / s.scale);
    s.y = py - (py - s.y) * (scale / s.scale);
    s.scale = scale;
    this.draw();
    this.loadFullIfNeeded();
  };

  // past the preview's resolution, the full images replace the previews
  Viewer.prototype.loadFullIfNeeded = function () {
    var v = this;
    var sides = [v.mine].concat(v.ref ? [v.ref] : []).filter(function (s) { return !s.full; });
    if (!sides.length || v.loadingFull) return;
    var shown = sides[0].image.naturalWidth / sides[0].width;  // preview pixels per image pixel
    if (v.state.scale <= shown) return;
    v.loadingFull = true;
    Promise.all(sides.map(function (s) { return s.load(s.src).then(function () { s.full = true; }); }))
      .then(function () {
        v.loadingFull = false; v.diff = null;
        if (v.mode === "diff") v.makeDiff();
        v.draw();
      })
      .catch(function () { v.loadingFull = false; });
  };

  // the heatmap: per pixel, the largest difference of the R, G and B channels, scaled to
  // the largest over the image, coloured with STOPS; drawn at the new image's resolution
  Viewer.prototype.makeDiff = function () {
    if (this.diff || !this.ref) return;
    var a = this.mine.data(), b = this.ref.data();
    var w = Math.min(a.width, b.width), h = Math.min(a.height, b.height);
    var values = new Uint8Array(w * h), largest = 0;
    for (var y = 0; y < h; y++) {
      for (var x = 0; x < w; x++) {
        var i = (y * a.width + x) * 4, j = (y * b.width + x) * 4;
        var d = Math.max(Math.abs(a.data[i] - b.data[j]), Math.abs(a.data[i + 1] - b.data[j + 1]),
          Math.abs(a.data[i + 2] - b.data[j + 2]));
        values[y * w + x] = d;
        if (d > largest) largest = d;
      }
    }
    var lut = [];
    for (var k = 0; k < 256; k++) lut.push(colour(largest ? Math.min(1, k / largest) : 0));
    var canvas = document.createElement("canvas");
    canvas.width = w; canvas.height = h;
    var ctx = canvas.getContext("2d");
    var out = ctx.createImageData(w, h);
    for (var p = 0; p < w * h; p++) {
      var c = lut[values[p]];
      out.data[p * 4] = c[0]; out.data[p * 4 + 1] = c[1]; out.data[p * 4 + 2] = c[2]; out.data[p * 4 + 3] = 255;
    }
    ctx.putImageData(out, 0, 0);
    this.diff = { canvas: canvas, largest: largest, width: w * this.mine.width / a.width, height: h * this.mine.height / a.height };
    this.drawScale(largest);
  };

  Viewer.prototype.drawScale = function (largest) {
    var bar = this.scaleBar.querySelector("canvas"), ctx = bar.getContext("2d");
    for (var x = 0; x < bar.width; x++) {
      var c = colour(x / (bar.width - 1));
      ctx.fillStyle = "rgb(" + c.join(",") + ")";
      ctx.fillRect(x, 0, 1, bar.height);
    }
    this.scaleBar.querySelector(".high").textContent = String(largest);
    this.figure.setAttribute("data-largest-difference", String(largest));
  };

  Viewer.prototype.draw = function () {
    if (!this.state) return;
    var v = this, s = v.state, ratio = window.devicePixelRatio || 1;
    var mode = v.ref ? v.mode : "side";
    v.panes.forEach(function (canvas, index) {
      var ctx = canvas.getContext("2d");
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.imageSmoothingEnabled = s.scale < 1;  // zoomed in: hard pixel edges
      function put(source, width, height) { ctx.drawImage(source, s.x, s.y, width * s.scale, height * s.scale); }
      if (mode === "side") {
        var side = index === 0 ? v.mine : v.ref;
        put(side.image, side.width, side.height);
      } else if (mode === "blink") {
        var shown = v.showRef ? v.ref : v.mine;
        put(shown.image, shown.width, shown.height);
      } else if (mode === "diff") {
        v.makeDiff();
        put(v.diff.canvas, v.diff.width, v.diff.height);
      } else {  // split: this run left of the line, the reference right of it
        var at = canvas.width / ratio * (+v.slider.value / 100);
        put(v.ref.image, v.ref.width, v.ref.height);
        ctx.save();
        ctx.beginPath(); ctx.rect(0, 0, at, canvas.height / ratio); ctx.clip();
        put(v.mine.image, v.mine.width, v.mine.height);
        ctx.restore();
        ctx.fillStyle = "#ffd400"; ctx.fillRect(at - 1, 0, 2, canvas.height / ratio);
      }
    });
    var f = v.figure;
    f.setAttribute("data-scale", s.scale.toFixed(4));
    f.setAttribute("data-x", s.x.toFixed(2));
    f.setAttribute("data-y", s.y.toFixed(2));
    f.setAttribute("data-shown", mode === "blink" && v.showRef ? "ref" : "new");
    if (v.which) v.which.textContent = v.whichText(mode);
    f.setAttribute("data-source", v.mine.full && (!v.ref || v.ref.full) ? "full" : "preview");
  };

  // what the panes show, in words: in blink mode, which of the two images is on screen
  Viewer.prototype.whichText = function (mode) {
    var ref = this.which.getAttribute("data-ref");
    if (mode === "split") return "left of the line: this run, right of it: " + ref;
    if (mode === "blink") return this.showRef ? "showing " + ref + " (b: this run)" : "showing this run (b: " + ref + ")";
    if (mode === "diff") return "difference between this run and " + ref;
    return "left: this run, right: " + ref;
  };

  Viewer.prototype.showPixel = function (px, py) {
    var s = this.state;
    if (!s) return;
    var u = Math.floor((px - s.x) / s.scale), w = Math.floor((py - s.y) / s.scale);
    var a = this.mine.pixel(u, w), b = this.ref ? this.ref.pixel(u, w) : null;
    if (!a && !b) { this.readout.textContent = "\u00a0"; return; }
    function text(p) { return p ? p.slice(0, 3).join(" ") + (p[3] !== 255 ? " α" + p[3] : "") : "—"; }
    var line = "x " + u + ", y " + w + " · this run: " + text(a);
    if (this.ref) line += " · reference: " + text(b);
    if (a && b) line += " · Δ " + [0, 1, 2].map(function (k) { return a[k] - b[k]; }).join(" ");
    if (!this.mine.full) line += " (from the preview: zoom in for full resolution)";
    this.readout.textContent = line;
  };

  var viewers = [];
  document.querySelectorAll("figure.image-view").forEach(function (figure) {
    figure.tabIndex = 0;
    var viewer = new Viewer(figure);
    viewers.push(viewer);
    viewer.start();
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "b" || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA")) return;
    viewers.forEach(function (viewer) {
      if (viewer.ref && viewer.mode === "blink") viewer.blink();
    });
  });
})();
