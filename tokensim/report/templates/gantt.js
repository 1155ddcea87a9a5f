// Zoom and pan for the Gantt charts that tokensim/report/svg.py draws (no libraries, ES2017).
//
// Each chart is an <svg data-t0 data-t1> (the time window, seconds) holding a nested
// <svg class="gantt-plot"> whose x coordinates are seconds since data-t0, so a view [a, b] is
// just the viewBox "a-t0 0 b-a H". Wheel over the plot zooms around the cursor, dragging pans,
// a double click resets, and the [data-zoom="in|out|reset"] buttons do the same. After each
// change the ticks in .gantt-axis are redrawn; the tick rules mirror nice_ticks, _axis and
// _tick_labels in svg.py.
(function () {
  "use strict";

  var SVGNS = "http://www.w3.org/2000/svg";
  var STEPS = [1, 2, 2.5, 5, 10];
  // [below this magnitude in s, the unit's length in s, its name]; 3 h and longer is shown in h.
  var UNITS = [
    [1e-6, 1e-9, "ns"],
    [1e-3, 1e-6, "\u00b5s"],
    [1, 1e-3, "ms"],
    [180, 1, "s"],
    [10800, 60, "min"],
  ];
  var MAX_ZOOM = 1e4; // the narrowest view is the window divided by this

  function timeUnit(mag) {
    if (mag === 0) return [1, "s"];
    for (var i = 0; i < UNITS.length; i++) {
      if (mag < UNITS[i][0]) return [UNITS[i][1], UNITS[i][2]];
    }
    return [3600, "h"];
  }

  function clean(v) {
    return parseFloat(v.toPrecision(15)) + 0;
  }

  function niceTicks(lo, hi, n) {
    var raw = (hi - lo) / Math.max(n, 1);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = STEPS[STEPS.length - 1] * mag;
    for (var i = 0; i < STEPS.length; i++) {
      if (STEPS[i] * mag >= raw * (1 - 1e-9)) {
        step = STEPS[i] * mag;
        break;
      }
    }
    var ticks = [];
    var last = Math.ceil(hi / step - 1e-9);
    for (var k = Math.floor(lo / step + 1e-9); k <= last; k++) ticks.push(clean(k * step));
    return ticks;
  }

  function decimals(step) {
    for (var d = 0; d < 13; d++) {
      var p = Math.pow(10, d);
      if (Math.abs(Math.round(step * p) / p - step) <= Math.abs(step) * 1e-6) return d;
    }
    return 12;
  }

  function trim(s) {
    return s.indexOf(".") < 0 ? s : s.replace(/0+$/, "").replace(/\.$/, "");
  }

  // Ticks inside [lo, hi] (seconds, hi > lo) with labels in one unit: [{t, label}].
  function timeTicks(lo, hi, n) {
    var unit = timeUnit(Math.max(Math.abs(lo), Math.abs(hi)));
    if (unit[0] < 60) unit = null; // below a minute, units are powers of ten
    var scale = unit ? unit[0] : 1;
    var all = niceTicks(lo / scale, hi / scale, n).map(function (t) {
      return clean(t * scale);
    });
    var step = all[1] - all[0];
    var ticks = all.filter(function (t) {
      return t >= lo - step * 1e-6 && t <= hi + step * 1e-6;
    });
    if (!unit) {
      var top = Math.max.apply(null, ticks.map(Math.abs).concat([0]));
      unit = top < 1 ? timeUnit(top) : [1, "s"];
    }
    var d = decimals(step / unit[0]);
    return ticks.map(function (t) {
      var zero = Math.abs(t) <= Math.abs(step) * 1e-9;
      return { t: t, label: zero ? "0" : trim((t / unit[0]).toFixed(d)) + " " + unit[1] };
    });
  }

  function setup(svg) {
    var plot = svg.querySelector(".gantt-plot");
    var axis = svg.querySelector(".gantt-axis");
    var T0 = parseFloat(svg.getAttribute("data-t0"));
    var T1 = parseFloat(svg.getAttribute("data-t1"));
    if (!plot || !(T1 > T0)) return;
    var box = (plot.getAttribute("viewBox") || "").split(/[\s,]+/);
    var H = box.length === 4 ? box[3] : "1";
    var full = T1 - T0;
    var a = T0;
    var b = T1;
    var drag = null;

    // Sets the viewBox and redraws the ticks (cheap: the browser repaints once per frame anyway).
    function draw() {
      plot.setAttribute("viewBox", a - T0 + " 0 " + (b - a) + " " + H);
      if (!axis) return;
      var x = parseFloat(axis.getAttribute("data-x"));
      var y = parseFloat(axis.getAttribute("data-y"));
      var w = parseFloat(axis.getAttribute("data-w"));
      var h = parseFloat(axis.getAttribute("data-h"));
      var grid = axis.querySelector("path");
      while (axis.lastChild && axis.lastChild !== grid) axis.removeChild(axis.lastChild);
      var d = "";
      timeTicks(a, b, Math.max(3, Math.round(w / 100))).forEach(function (tick) {
        var px = (x + ((tick.t - a) / (b - a)) * w).toFixed(1);
        d += "M" + px + "," + y.toFixed(1) + "v" + (h + 4).toFixed(1);
        var text = document.createElementNS(SVGNS, "text");
        text.setAttribute("x", px);
        text.setAttribute("y", (y + h + 15).toFixed(1));
        text.textContent = tick.label;
        axis.appendChild(text);
      });
      if (grid) grid.setAttribute("d", d);
    }

    // Show [start, start + span], kept inside the window.
    function show(start, span) {
      span = Math.min(full, Math.max(full / MAX_ZOOM, span));
      a = Math.min(Math.max(start, T0), T1 - span);
      b = a + span;
      draw();
    }

    function zoomAt(factor, t) {
      var span = Math.min(full, Math.max(full / MAX_ZOOM, (b - a) * factor));
      show(t - ((t - a) * span) / (b - a), span);
    }

    // The plot's viewport in client px. (Not plot.getBoundingClientRect(): for an <svg> inside
    // an <svg> that is the box around its bars, which grows past the viewport when zoomed.)
    function plotRect() {
      var m = svg.getScreenCTM();
      if (!m) return null;
      var at = function (name) {
        return parseFloat(plot.getAttribute(name)) || 0;
      };
      return {
        left: m.e + at("x") * m.a,
        top: m.f + at("y") * m.d,
        width: at("width") * m.a,
        height: at("height") * m.d,
      };
    }

    function over(e) {
      var r = plotRect();
      return !!r && e.clientX >= r.left && e.clientX <= r.left + r.width &&
        e.clientY >= r.top && e.clientY <= r.top + r.height;
    }

    function timeAt(clientX) {
      var r = plotRect();
      return a + ((clientX - r.left) / r.width) * (b - a);
    }

    svg.addEventListener(
      "wheel",
      function (e) {
        if (!over(e)) return;
        e.preventDefault();
        var dy = e.deltaY * (e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? 400 : 1);
        zoomAt(Math.exp(dy * 0.002), timeAt(e.clientX));
      },
      { passive: false }
    );
    svg.addEventListener("pointerdown", function (e) {
      if (e.button !== 0 || !over(e)) return;
      e.preventDefault();
      drag = { x: e.clientX, a: a, w: plotRect().width };
      try {
        svg.setPointerCapture(e.pointerId); // keeps the drag when the pointer leaves the chart
      } catch (err) {
        // not an active pointer (a synthetic event): dragging still works inside the chart
      }
      svg.style.cursor = "grabbing";
    });
    svg.addEventListener("pointermove", function (e) {
      if (drag && drag.w > 0) show(drag.a - ((e.clientX - drag.x) / drag.w) * (b - a), b - a);
    });
    function endDrag() {
      drag = null;
      svg.style.cursor = "";
    }
    svg.addEventListener("pointerup", endDrag);
    svg.addEventListener("pointercancel", endDrag);
    svg.addEventListener("dblclick", function (e) {
      if (over(e)) show(T0, full);
    });
    Array.prototype.forEach.call(svg.querySelectorAll("[data-zoom]"), function (button) {
      button.addEventListener("click", function () {
        var action = button.getAttribute("data-zoom");
        if (action === "reset") show(T0, full);
        else zoomAt(action === "in" ? 1 / 1.5 : 1.5, (a + b) / 2);
      });
    });
    Array.prototype.forEach.call(svg.querySelectorAll(".gantt-zoom"), function (group) {
      group.removeAttribute("visibility");
    });
    svg.style.touchAction = "pan-y";
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("svg[data-t0]"), function (svg) {
      if (svg.querySelector(".gantt-plot")) setup(svg);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
