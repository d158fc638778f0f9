/*
 * Draws every <canvas data-chart="ID"> from the JSON of <script id="ID"> (Django's
 * json_script), with the vendored Chart.js.
 *
 * The JSON (built by the views):
 *   {"type": "line" | "bar",
 *    "labels": ["10:00", ...],
 *    "datasets": [{"label": "Succeeded", "data": [3, 5, ...], "status": "SUCCESS"}, ...],
 *    "stacked": false,
 *    "links": ["/dashboard/jobs/?q=...", ...],      (optional, one per label)
 *    "link_template": "/dashboard/jobs/bucket/?...&i={i}"}  (optional, instead of links)
 * `status` picks that status's colour; datasets without one take --chart-1..6.
 * `links`: a click on a label's column opens its URL (the jobs behind that number).
 *
 * Colours come from the stylesheet's CSS variables, so light and dark mode follow the
 * page; a change of colour scheme redraws. Charts are drawn on load and again after every
 * htmx swap (live refresh), never animated: a live refresh redraws every few seconds and
 * must not flicker, and an animation caught half-way (a screenshot, a resize) lies.
 */
(function () {
  "use strict";

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function withAlpha(colour, alpha) {
    var hex = /^#([0-9a-f]{6})$/i.exec(colour);
    if (!hex) return colour;
    var n = parseInt(hex[1], 16);
    return "rgba(" + ((n >> 16) & 255) + ", " + ((n >> 8) & 255) + ", " + (n & 255) + ", " + alpha + ")";
  }

  function colourFor(dataset, index) {
    var status = typeof dataset.status === "string" ? dataset.status.toLowerCase() : "";
    var colour = status ? cssVar("--status-" + status) : "";
    return colour || cssVar("--chart-" + ((index % 6) + 1)) || "#1565c0";
  }

  function allIntegers(datasets) {
    return datasets.every(function (ds) {
      return (ds.data || []).every(function (v) {
        return v === null || Number.isInteger(v);
      });
    });
  }

  // Only http(s) URLs, resolved against the page: a link is never a javascript: URL.
  function safeUrl(raw) {
    if (typeof raw !== "string" || raw === "") return null;
    try {
      var url = new URL(raw, window.location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function datasetsFor(spec) {
    var line = spec.type === "line";
    var many = (spec.labels || []).length > 48;
    return (spec.datasets || []).map(function (ds, i) {
      var colour = colourFor(ds, i);
      var out = { label: ds.label || "", data: ds.data || [] };
      if (line) {
        out.borderColor = colour;
        out.backgroundColor = withAlpha(colour, spec.stacked ? 0.35 : 0.12);
        out.borderWidth = 2;
        out.pointRadius = many ? 0 : 2;
        out.pointHoverRadius = 4;
        out.pointBackgroundColor = colour;
        out.tension = 0;
        out.fill = spec.stacked ? (i === 0 ? "origin" : "-1") : false;
      } else {
        out.backgroundColor = withAlpha(colour, 0.85);
        out.hoverBackgroundColor = colour;
        out.borderWidth = 0;
        out.borderRadius = 2;
        out.maxBarThickness = 40;
      }
      return out;
    });
  }

  function configFor(spec, canvas) {
    var text = cssVar("--chart-text") || "#666";
    var grid = cssVar("--chart-grid") || "rgba(0,0,0,0.1)";
    var stacked = !!spec.stacked;
    var datasets = spec.datasets || [];
    var links = Array.isArray(spec.links) ? spec.links : null;
    var template = typeof spec.link_template === "string" ? spec.link_template : null;
    // The URL of bucket i: from `links`, or `link_template` with {i} replaced.
    var linkAt = function (i) {
      if (links) return links[i];
      return template ? template.split("{i}").join(String(i)) : null;
    };
    var narrow = canvas.parentElement && canvas.parentElement.clientWidth < 500;

    var options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      color: text,
      font: { family: cssVar("--font") || undefined },
      plugins: {
        legend: {
          display: datasets.length > 1,
          position: "bottom",
          labels: { color: text, boxWidth: 12, boxHeight: 12, padding: 14 },
        },
        tooltip: { mode: "index", intersect: false },
      },
      scales: {
        x: {
          stacked: stacked,
          grid: { display: false },
          border: { color: grid },
          ticks: { color: text, maxRotation: 0, autoSkip: true, autoSkipPadding: 12, maxTicksLimit: narrow ? 5 : 12 },
        },
        y: {
          stacked: stacked,
          beginAtZero: true,
          grid: { color: grid },
          border: { display: false },
          ticks: { color: text, precision: allIntegers(datasets) ? 0 : undefined, maxTicksLimit: 6 },
        },
      },
    };
    if (links || template) {
      options.onClick = function (event, elements) {
        if (!elements.length) return;
        var url = safeUrl(linkAt(elements[0].index));
        if (url) window.location.href = url;
      };
      options.onHover = function (event, elements) {
        var target = event.native && event.native.target;
        if (target) target.style.cursor = elements.length && safeUrl(linkAt(elements[0].index)) ? "pointer" : "default";
      };
    }
    return {
      type: spec.type === "bar" ? "bar" : "line",
      data: { labels: spec.labels || [], datasets: datasetsFor(spec) },
      options: options,
    };
  }

  function specFor(canvas) {
    var id = canvas.getAttribute("data-chart");
    var script = id ? document.getElementById(id) : null;
    if (!script) return null;
    try {
      return JSON.parse(script.textContent);
    } catch (e) {
      console.error("charts.js: #" + id + " does not hold JSON", e);
      return null;
    }
  }

  function draw(canvas) {
    if (!window.Chart) return;
    var spec = specFor(canvas);
    if (!spec) return;
    var old = window.Chart.getChart(canvas);
    if (old) old.destroy();
    var id = canvas.getAttribute("data-chart");
    if (!canvas.hasAttribute("role")) canvas.setAttribute("role", "img");
    if (!canvas.hasAttribute("aria-label")) {
      var names = (spec.datasets || []).map(function (ds) {
        return ds.label;
      });
      canvas.setAttribute("aria-label", "Chart: " + (spec.title || names.filter(Boolean).join(", ") || id));
    }
    new window.Chart(canvas, configFor(spec, canvas));
  }

  function canvases() {
    return Array.prototype.slice.call(document.querySelectorAll("canvas[data-chart]"));
  }

  function drawAll() {
    canvases().forEach(draw);
  }

  // After a swap: the canvases inside it, the canvases whose data came with it, and any
  // canvas that has no chart yet.
  function drawAfterSwap(swapped) {
    canvases().forEach(function (canvas) {
      var id = canvas.getAttribute("data-chart");
      var script = id ? document.getElementById(id) : null;
      var touched = swapped && (swapped.contains(canvas) || (script && swapped.contains(script)));
      if (touched || !window.Chart.getChart(canvas)) draw(canvas);
    });
  }

  function start() {
    if (!window.Chart) {
      console.error("charts.js: Chart.js is not loaded");
      return;
    }
    window.Chart.defaults.font.family = cssVar("--font") || window.Chart.defaults.font.family;
    drawAll();
  }

  document.addEventListener("htmx:afterSwap", function (event) {
    if (window.Chart) drawAfterSwap(event.detail && event.detail.target ? event.detail.target : event.target);
  });

  // htmx is about to drop this canvas: free its Chart (and its resize observer) now.
  document.addEventListener("htmx:beforeCleanupElement", function (event) {
    var el = event.target;
    if (window.Chart && el instanceof HTMLCanvasElement && el.hasAttribute("data-chart")) {
      var chart = window.Chart.getChart(el);
      if (chart) chart.destroy();
    }
  });

  var scheme = window.matchMedia("(prefers-color-scheme: dark)");
  var onScheme = function () {
    if (window.Chart) drawAll();
  };
  if (scheme.addEventListener) scheme.addEventListener("change", onScheme);
  else if (scheme.addListener) scheme.addListener(onScheme);

  // The scripts are deferred: the document is parsed when this runs, but wait for
  // DOMContentLoaded anyway in case the page loads it without defer.
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }

  window.dashboardCharts = { draw: draw, drawAll: drawAll };
})();
