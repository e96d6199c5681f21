/* minitrade report charts: small, dependency-free SVG line charts that work from file:// offline.
 *
 * Every element with data-chart="ID" is drawn from the JSON in <script type="application/json" id="ID">:
 *   {"dates": ["2020-01-02", ...], "format": "money"|"pct", "area": false,
 *    "series": [{"name": "Strategy", "values": [10000, ...]}, ...],   (null values leave a gap)
 *    "markers": [{"date": "2024-01-02", "label": "trading starts"}]}
 * Interaction: hover or touch shows the date and values; 1Y/3Y/5Y/All zoom the date range.
 * Styling uses classes and the CSSOM only, so the page's Content-Security-Policy needs no 'unsafe-inline'.
 */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var COLORS = ["#2364aa", "#e07a1f", "#16794a", "#8e44ad", "#b3261e"];
  var RANGES = [["1Y", 1], ["3Y", 3], ["5Y", 5], ["All", 0]];

  function svgEl(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    for (var key in attrs) { node.setAttribute(key, attrs[key]); }
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function htmlEl(name, cls, parent, text) {
    var node = document.createElement(name);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    if (parent) { parent.appendChild(node); }
    return node;
  }

  // `scale` (the axis maximum) keeps every tick of one axis in the same unit: 7.5k next to 10.0k.
  function fmt(value, format, scale) {
    if (value === null || value === undefined || !isFinite(value)) { return "–"; }
    if (format === "pct") { return value.toFixed(1) + "%"; }
    var abs = Math.abs(scale === undefined ? value : scale);
    if (abs >= 1e6) { return (value / 1e6).toFixed(2) + "M"; }
    if (abs >= 1e4) { return (value / 1e3).toFixed(1) + "k"; }
    return value.toLocaleString(undefined, { maximumFractionDigits: 2 });
  }

  function niceTicks(lo, hi, count) {
    if (lo === hi) { lo -= 1; hi += 1; }
    var raw = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 2.5, 5, 10].map(function (m) { return m * mag; })
      .filter(function (s) { return s >= raw; })[0] || 10 * mag;
    var ticks = [];
    for (var t = Math.floor(lo / step) * step; t <= hi + step * 1e-9; t += step) { ticks.push(t); }
    return ticks;
  }

  function startIndex(dates, years) {
    if (!years || !dates.length) { return 0; }
    var last = new Date(dates[dates.length - 1] + "T00:00:00Z");
    last.setUTCFullYear(last.getUTCFullYear() - years);
    var cutoff = last.toISOString().slice(0, 10);
    for (var i = 0; i < dates.length; i++) { if (dates[i] >= cutoff) { return i; } }
    return 0;
  }

  function Chart(host, data) {
    this.host = host;
    this.data = data;
    this.from = 0;
    this.build();
  }

  Chart.prototype.build = function () {
    var self = this, data = this.data;
    var bar = htmlEl("div", "controls", this.host);
    var firstYear = data.dates.length ? +data.dates[0].slice(0, 4) : 0;
    var lastYear = data.dates.length ? +data.dates[data.dates.length - 1].slice(0, 4) : 0;
    this.buttons = [];
    RANGES.forEach(function (range) {
      if (range[1] && range[1] >= lastYear - firstYear + 1) { return; }
      var button = htmlEl("button", range[1] ? "" : "on", bar, range[0]);
      button.type = "button";
      button.addEventListener("click", function () {
        self.from = startIndex(data.dates, range[1]);
        self.buttons.forEach(function (b) { b.className = b === button ? "on" : ""; });
        self.draw();
      });
      self.buttons.push(button);
    });
    var legend = htmlEl("div", "legend", bar);
    data.series.forEach(function (s, i) {
      var item = htmlEl("span", "", legend);
      htmlEl("span", "swatch", item).style.background = COLORS[i % COLORS.length];
      item.appendChild(document.createTextNode(s.name));
    });
    this.tip = htmlEl("div", "tip", null);
    this.draw();
  };

  Chart.prototype.draw = function () {
    var data = this.data, host = this.host, format = data.format;
    if (this.svg) { host.removeChild(this.svg); }
    if (this.tip.parentNode) { host.removeChild(this.tip); }
    var width = Math.max(host.clientWidth, 280);
    var height = host.classList.contains("small") ? 150 : (width < 500 ? 220 : 260);
    var m = { top: 8, right: 10, bottom: 22, left: format === "pct" ? 44 : 56 };
    var w = width - m.left - m.right, h = height - m.top - m.bottom;
    var dates = data.dates.slice(this.from), n = dates.length;
    var series = data.series.map(function (s) { return s.values.slice(this.from); }, this);
    var lo = Infinity, hi = -Infinity;
    series.forEach(function (vals) {
      vals.forEach(function (v) { if (v !== null && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    });
    if (data.area) { hi = Math.max(hi, 0); }
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    var ticks = niceTicks(lo, hi, 5);
    lo = Math.min(lo, ticks[0]); hi = Math.max(hi, ticks[ticks.length - 1]);
    var x = function (i) { return m.left + (n > 1 ? (i / (n - 1)) * w : w / 2); };
    var y = function (v) { return m.top + h - ((v - lo) / (hi - lo || 1)) * h; };

    var svg = svgEl("svg", { viewBox: "0 0 " + width + " " + height, width: width, height: height,
                             "class": "plot", "data-points": 0 });
    var grid = svgEl("g", { "class": "grid axis" }, svg);
    ticks.forEach(function (t) {
      svgEl("line", { x1: m.left, x2: m.left + w, y1: y(t), y2: y(t) }, grid);
      svgEl("text", { x: m.left - 6, y: y(t) + 4, "text-anchor": "end" }, grid).textContent =
        fmt(t, format, Math.max(Math.abs(lo), Math.abs(hi)));
    });
    var years = {}, labelEvery = Math.max(1, Math.ceil((n ? (+dates[n - 1].slice(0, 4) - +dates[0].slice(0, 4) + 1) : 1) / Math.max(1, Math.floor(w / 60))));
    dates.forEach(function (d, i) {
      var yr = +d.slice(0, 4);
      if (!years[yr] && i > 0 && yr % labelEvery === 0) {
        years[yr] = true;
        svgEl("text", { x: x(i), y: m.top + h + 16, "text-anchor": "middle" }, grid).textContent = String(yr);
      }
    });
    if (n && Object.keys(years).length < 2) {  // short ranges: label the ends with full dates
      svgEl("text", { x: m.left, y: m.top + h + 16, "text-anchor": "start" }, grid).textContent = dates[0];
      svgEl("text", { x: m.left + w, y: m.top + h + 16, "text-anchor": "end" }, grid).textContent = dates[n - 1];
    }

    (data.markers || []).forEach(function (mark) {  // e.g. trade_start: signals before it never trade
      var at = dates.indexOf(mark.date);
      if (at < 0) { return; }
      svgEl("line", { "class": "marker", x1: x(at), x2: x(at), y1: m.top, y2: m.top + h }, svg);
      svgEl("text", { "class": "marker-label", x: x(at) + 4, y: m.top + 12 }, svg).textContent = mark.label;
    });

    var drawn = 0;
    series.forEach(function (vals, k) {
      var d = "", pen = false, count = 0;
      vals.forEach(function (v, i) {
        if (v === null || !isFinite(v)) { pen = false; return; }
        d += (pen ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1);
        pen = true; count++;
      });
      var color = COLORS[k % COLORS.length];
      if (data.area && d) {
        var base = y(Math.min(Math.max(0, lo), hi)).toFixed(1);
        svgEl("path", { d: d + "L" + x(n - 1).toFixed(1) + " " + base + "L" + x(0).toFixed(1) + " " + base + "Z",
                        "class": "area", fill: color }, svg);
      }
      svgEl("path", { d: d, "class": "series", stroke: color, "data-name": data.series[k].name,
                      "data-count": count }, svg);
      drawn += count;
    });
    svg.setAttribute("data-points", drawn);

    var cursor = svgEl("line", { "class": "cursor", y1: m.top, y2: m.top + h, visibility: "hidden" }, svg);
    var dots = series.map(function (vals, k) {
      return svgEl("circle", { r: 3.5, fill: COLORS[k % COLORS.length], visibility: "hidden" }, svg);
    });
    var overlay = svgEl("rect", { x: m.left, y: m.top, width: w, height: h, fill: "transparent" }, svg);
    var tip = this.tip, self = this;
    function show(evt) {
      var point = evt.touches ? evt.touches[0] : evt;
      var box = svg.getBoundingClientRect();
      var px = (point.clientX - box.left) * (width / box.width);
      var i = Math.round(((px - m.left) / (w || 1)) * (n - 1));
      if (!(i >= 0 && i < n)) { return hide(); }
      cursor.setAttribute("x1", x(i)); cursor.setAttribute("x2", x(i));
      cursor.setAttribute("visibility", "visible");
      tip.textContent = "";
      htmlEl("div", "", tip, dates[i]);
      series.forEach(function (vals, k) {
        var v = vals[i], visible = v !== null && isFinite(v);
        dots[k].setAttribute("visibility", visible ? "visible" : "hidden");
        if (visible) { dots[k].setAttribute("cx", x(i)); dots[k].setAttribute("cy", y(v)); }
        htmlEl("div", "", tip, self.data.series[k].name + ": " + fmt(v, format));
      });
      host.appendChild(tip);
      var left = (x(i) / width) * box.width;
      tip.style.left = Math.min(Math.max(left - tip.offsetWidth / 2, 0), box.width - tip.offsetWidth) + "px";
      tip.style.top = (svg.offsetTop + 4) + "px";
    }
    function hide() {
      cursor.setAttribute("visibility", "hidden");
      dots.forEach(function (dot) { dot.setAttribute("visibility", "hidden"); });
      if (tip.parentNode) { host.removeChild(tip); }
    }
    overlay.addEventListener("mousemove", show);
    overlay.addEventListener("touchstart", show, { passive: true });
    overlay.addEventListener("touchmove", show, { passive: true });
    overlay.addEventListener("mouseleave", hide);
    host.appendChild(svg);
    this.svg = svg;
  };

  function init() {
    var charts = [];
    var hosts = document.querySelectorAll("[data-chart]");
    for (var i = 0; i < hosts.length; i++) {
      var source = document.getElementById(hosts[i].getAttribute("data-chart"));
      if (!source) { continue; }
      charts.push(new Chart(hosts[i], JSON.parse(source.textContent)));
    }
    var pending = null;
    window.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(function () { charts.forEach(function (c) { c.draw(); }); }, 150);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
