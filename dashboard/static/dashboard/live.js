/*
 * The dashboard's small behaviours, all by event delegation on `document` so they keep
 * working on content that htmx swaps in later:
 *
 * - the live refresh control: every [data-live-src] element is re-fetched with
 *   htmx.ajax at the interval chosen in [data-refresh-control] (Off / 2 s / 5 s / 15 s,
 *   remembered in localStorage "dashboard.refresh" as "0"/"2"/"5"/"15"; default 5 s);
 *   paused while the tab is hidden, refreshed at once when it shows again; an element
 *   with data-live-every="60" is refreshed at most that often (in seconds);
 * - data-confirm on a form or on its submit button: asks before submitting;
 * - "select all": a header checkbox .select-all ticks every input[name=task_id] of its
 *   table (shift-click ticks a range); [data-selected-count] shows how many are ticked;
 * - autocomplete: <input data-suggest-url="..."> asks that URL for the word under the
 *   cursor (?q=word) and offers {"suggestions": [...]} in a keyboard-usable list.
 */
(function () {
  "use strict";

  // ---- Live refresh ----------------------------------------------------------------

  var STORAGE_KEY = "dashboard.refresh";
  var CHOICES = ["0", "2", "5", "15"];
  var DEFAULT_CHOICE = "5";

  var timer = null;
  // Elements whose last request has not finished: a slow fragment is skipped rather
  // than stacked up, so a slow server never gets more than one request per element.
  var inFlight = new Set();
  var failed = new Set();

  function liveElements() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-live-src]"));
  }

  function storedChoice() {
    var value = null;
    try {
      value = window.localStorage.getItem(STORAGE_KEY);
    } catch (e) {
      // Storage disabled (private mode, policy): the default applies.
    }
    return CHOICES.indexOf(value) >= 0 ? value : DEFAULT_CHOICE;
  }

  function storeChoice(value) {
    try {
      window.localStorage.setItem(STORAGE_KEY, value);
    } catch (e) {
      // Not remembered, still applied for this page.
    }
  }

  function controls() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-refresh-control]"));
  }

  function intervalSeconds() {
    return parseInt(storedChoice(), 10);
  }

  function state() {
    if (intervalSeconds() === 0) return "off";
    return document.hidden ? "paused" : "running";
  }

  // The control's box carries data-state (off / running / paused) and .is-loading, for
  // the eye (the dot) and for browser tests.
  function renderControls() {
    var hasLive = liveElements().length > 0;
    failed.forEach(function (el) {
      if (!document.contains(el)) failed.delete(el);
    });
    var current = storedChoice();
    controls().forEach(function (select) {
      var box = select.closest("[data-refresh]") || select;
      box.hidden = !hasLive;
      box.setAttribute("data-state", state());
      box.classList.toggle("is-loading", inFlight.size > 0);
      box.classList.toggle("is-error", failed.size > 0);
      box.title = failed.size > 0 ? "The last refresh failed; showing older data" : "";
      if (select.value !== current) select.value = current;
    });
  }

  // Someone is working inside this element (typing, ticking rows): replacing its
  // content now would throw their work away, so this round leaves it alone.
  function isBusy(el) {
    var active = document.activeElement;
    if (active && active !== document.body && el.contains(active) && active.matches("input, select, textarea")) {
      return true;
    }
    return el.querySelector("input[name=task_id]:checked") !== null;
  }

  // <details> the user opened (a traceback) stay open across a refresh if they have an id.
  function openDetailIds(el) {
    return Array.prototype.map.call(el.querySelectorAll("details[open][id]"), function (d) {
      return d.id;
    });
  }

  // data-live-every="60": refreshed at most once every 60 s whatever the control says
  // (the overview's charts move by the minute); counted from the page's load.
  var loadedAt = Date.now();

  function dueAgain(el) {
    var every = parseFloat(el.getAttribute("data-live-every") || "0");
    if (!(every > 0)) return true;
    var last = el._liveRefreshedAt || loadedAt;
    return Date.now() - last >= every * 1000;
  }

  function refreshElement(el) {
    var src = el.getAttribute("data-live-src");
    if (!src || inFlight.has(el) || isBusy(el) || !window.htmx || !dueAgain(el)) return;
    el._liveRefreshedAt = Date.now();
    var reopen = openDetailIds(el);
    inFlight.add(el);
    renderControls();
    var done = function () {
      inFlight.delete(el);
      reopen.forEach(function (id) {
        var d = document.getElementById(id);
        if (d && el.contains(d)) d.open = true;
      });
      renderControls();
    };
    // source: el makes the element its own htmx request queue; with the default source
    // (document.body) the fragments of one page would queue behind each other.
    var request = window.htmx.ajax("GET", src, { source: el, target: el, swap: "innerHTML" });
    if (request && typeof request.then === "function") {
      request.then(done, done);
    } else {
      done();
    }
  }

  function refreshAll() {
    if (document.hidden) return;
    liveElements().forEach(refreshElement);
  }

  function stopTimer() {
    if (timer !== null) {
      window.clearInterval(timer);
      timer = null;
    }
  }

  function schedule() {
    stopTimer();
    var seconds = intervalSeconds();
    if (seconds > 0 && !document.hidden && liveElements().length > 0) {
      timer = window.setInterval(refreshAll, seconds * 1000);
    }
    renderControls();
  }

  document.addEventListener("change", function (event) {
    var select = event.target;
    if (!(select instanceof HTMLSelectElement) || !select.matches("[data-refresh-control]")) return;
    storeChoice(CHOICES.indexOf(select.value) >= 0 ? select.value : DEFAULT_CHOICE);
    schedule();
    if (intervalSeconds() > 0) refreshAll();
  });

  document.addEventListener("visibilitychange", function () {
    schedule();
    if (!document.hidden && intervalSeconds() > 0) refreshAll();
  });

  // Another tab changed the choice: follow it.
  window.addEventListener("storage", function (event) {
    if (event.key === STORAGE_KEY) schedule();
  });

  // A swap may add or remove live elements (or the control itself): start or stop the
  // timer if that changed, without restarting a running one (that would shift its beat).
  document.addEventListener("htmx:afterSettle", function () {
    var shouldRun = intervalSeconds() > 0 && !document.hidden && liveElements().length > 0;
    if (shouldRun !== (timer !== null)) {
      schedule();
    } else {
      renderControls();
    }
  });

  // A live request that failed leaves the old content in place; the dot turns red
  // until that element refreshes again, so nobody trusts numbers that went stale.
  ["htmx:responseError", "htmx:sendError", "htmx:timeout"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      var el = event.detail && event.detail.elt;
      if (el && el.hasAttribute && el.hasAttribute("data-live-src")) {
        failed.add(el);
        renderControls();
      }
    });
  });

  // A live request that was redirected (an expired session sent to the login page) must
  // not paint that page inside the fragment: reload, so the whole page shows it.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var el = event.detail && event.detail.elt;
    var xhr = event.detail && event.detail.xhr;
    if (!el || !el.hasAttribute || !el.hasAttribute("data-live-src") || !xhr) return;
    var asked = new URL(el.getAttribute("data-live-src"), window.location.href);
    var answered = xhr.responseURL ? new URL(xhr.responseURL) : asked;
    if (answered.origin !== asked.origin || answered.pathname !== asked.pathname) {
      event.detail.shouldSwap = false;
      stopTimer();
      window.location.reload();
      return;
    }
    failed.delete(el);
  });

  // For tests and the console: dashboardLive.refresh() refreshes now.
  window.dashboardLive = {
    refresh: refreshAll,
    state: state,
    interval: intervalSeconds,
    running: function () {
      return timer !== null;
    },
  };

  // ---- Confirmation ----------------------------------------------------------------

  // Capture phase, so a refusal also stops htmx's own submit listener on the form.
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement)) return;
      var submitter = event.submitter;
      var question =
        (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) {
        event.preventDefault();
        event.stopPropagation();
      }
    },
    true
  );

  // ---- Select all ------------------------------------------------------------------

  var ROW_BOX = "input[type=checkbox][name=task_id]";
  var lastTicked = null;

  function scopeOf(el) {
    return el.closest("table") || el.closest("form") || document;
  }

  function rowBoxes(scope) {
    return Array.prototype.filter.call(scope.querySelectorAll(ROW_BOX), function (box) {
      return !box.disabled;
    });
  }

  function syncSelection(scope) {
    var boxes = rowBoxes(scope);
    var ticked = boxes.filter(function (box) {
      return box.checked;
    }).length;
    scope.querySelectorAll("input.select-all").forEach(function (all) {
      all.checked = boxes.length > 0 && ticked === boxes.length;
      all.indeterminate = ticked > 0 && ticked < boxes.length;
    });
    boxes.forEach(function (box) {
      var row = box.closest("tr");
      if (row) row.classList.toggle("is-selected", box.checked);
    });
    // Counters sit in the rows' form, which may be outside the table (a bulk bar above
    // it, rows joined to it with form="..."); without a form, anywhere on the page.
    var form = boxes.length ? boxes[0].form : null;
    var counterScope = form || (scope.closest && scope.closest("form")) || document;
    counterScope.querySelectorAll("[data-selected-count]").forEach(function (counter) {
      counter.textContent = String(ticked);
    });
  }

  document.addEventListener("click", function (event) {
    var box = event.target;
    if (!(box instanceof HTMLInputElement) || !box.matches(ROW_BOX)) return;
    var scope = scopeOf(box);
    if (event.shiftKey && lastTicked && lastTicked !== box && scope.contains(lastTicked)) {
      var boxes = rowBoxes(scope);
      var from = boxes.indexOf(lastTicked);
      var to = boxes.indexOf(box);
      if (from >= 0 && to >= 0) {
        boxes.slice(Math.min(from, to), Math.max(from, to) + 1).forEach(function (b) {
          b.checked = box.checked;
        });
      }
    }
    lastTicked = box;
  });

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!(box instanceof HTMLInputElement)) return;
    if (box.matches("input.select-all")) {
      var scope = scopeOf(box);
      rowBoxes(scope).forEach(function (b) {
        b.checked = box.checked;
      });
      syncSelection(scope);
    } else if (box.matches(ROW_BOX)) {
      syncSelection(scopeOf(box));
    }
  });

  // ---- Autocomplete ----------------------------------------------------------------

  var DEBOUNCE_MS = 150;
  var listCount = 0;

  // The word under the cursor: from the last space before it to the next space after.
  function wordAt(input) {
    var text = input.value;
    var caret = input.selectionStart === null ? text.length : input.selectionStart;
    var start = caret;
    while (start > 0 && !/\s/.test(text.charAt(start - 1))) start--;
    var end = caret;
    while (end < text.length && !/\s/.test(text.charAt(end))) end++;
    return { start: start, end: end, word: text.slice(start, end) };
  }

  function suggestState(input) {
    if (!input._suggest) {
      var list = document.createElement("ul");
      list.className = "suggest-list";
      list.id = "suggest-list-" + ++listCount;
      list.setAttribute("role", "listbox");
      list.hidden = true;
      input.insertAdjacentElement("afterend", list);
      input.setAttribute("role", "combobox");
      input.setAttribute("aria-autocomplete", "list");
      input.setAttribute("aria-expanded", "false");
      input.setAttribute("aria-controls", list.id);
      input.setAttribute("autocomplete", "off");
      list.addEventListener("mousedown", function (event) {
        // Keep focus in the input; the click chooses.
        event.preventDefault();
        var item = event.target.closest("li");
        if (item) choose(input, item.getAttribute("data-value"));
      });
      input._suggest = { list: list, items: [], active: -1, timer: null, controller: null, seq: 0 };
    }
    return input._suggest;
  }

  function closeList(input) {
    var s = input._suggest;
    if (!s) return;
    s.list.hidden = true;
    s.items = [];
    s.active = -1;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }

  function showList(input, suggestions) {
    var s = suggestState(input);
    s.list.textContent = "";
    s.items = suggestions.slice(0, 50).map(function (value, i) {
      var item = document.createElement("li");
      item.id = s.list.id + "-" + i;
      item.setAttribute("role", "option");
      item.setAttribute("aria-selected", "false");
      item.setAttribute("data-value", value);
      item.textContent = value;
      s.list.appendChild(item);
      return item;
    });
    s.active = -1;
    if (s.items.length === 0) {
      closeList(input);
      return;
    }
    // Under the input, in the coordinates of the input's positioned ancestor.
    s.list.style.left = input.offsetLeft + "px";
    s.list.style.top = input.offsetTop + input.offsetHeight + "px";
    s.list.style.minWidth = Math.min(input.offsetWidth, 420) + "px";
    s.list.style.maxWidth = Math.max(input.offsetWidth, 240) + "px";
    s.list.hidden = false;
    input.setAttribute("aria-expanded", "true");
  }

  function setActive(input, index) {
    var s = input._suggest;
    if (!s || s.items.length === 0) return;
    s.active = (index + s.items.length) % s.items.length;
    s.items.forEach(function (item, i) {
      item.setAttribute("aria-selected", i === s.active ? "true" : "false");
    });
    var item = s.items[s.active];
    input.setAttribute("aria-activedescendant", item.id);
    item.scrollIntoView({ block: "nearest" });
  }

  function choose(input, value) {
    var w = wordAt(input);
    var before = input.value.slice(0, w.start);
    var after = input.value.slice(w.end);
    var insert = value + (after.charAt(0) === " " ? "" : " ");
    input.value = before + insert + after;
    var caret = before.length + insert.length;
    input.setSelectionRange(caret, caret);
    closeList(input);
    input.focus();
  }

  function fetchSuggestions(input) {
    var s = suggestState(input);
    var w = wordAt(input);
    if (w.word.length === 0) {
      closeList(input);
      return;
    }
    if (s.controller) s.controller.abort();
    s.controller = typeof AbortController === "function" ? new AbortController() : null;
    var seq = ++s.seq;
    var base = input.getAttribute("data-suggest-url");
    var param = input.getAttribute("data-suggest-param") || "q";
    var url = base + (base.indexOf("?") >= 0 ? "&" : "?") + encodeURIComponent(param) + "=" + encodeURIComponent(w.word);
    fetch(url, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      signal: s.controller ? s.controller.signal : undefined,
    })
      .then(function (response) {
        return response.ok ? response.json() : { suggestions: [] };
      })
      .then(function (data) {
        // A slower, older answer must not replace a newer one.
        if (seq !== s.seq || document.activeElement !== input) return;
        var list = data && Array.isArray(data.suggestions) ? data.suggestions : [];
        showList(
          input,
          list.filter(function (v) {
            return typeof v === "string" && v !== w.word;
          })
        );
      })
      .catch(function () {
        // Aborted by a newer keystroke, or offline: no list, typing goes on.
      });
  }

  document.addEventListener("input", function (event) {
    var input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.hasAttribute("data-suggest-url")) return;
    var s = suggestState(input);
    window.clearTimeout(s.timer);
    s.timer = window.setTimeout(function () {
      fetchSuggestions(input);
    }, DEBOUNCE_MS);
  });

  document.addEventListener("keydown", function (event) {
    var input = event.target;
    if (!(input instanceof HTMLInputElement) || !input._suggest) return;
    var s = input._suggest;
    var open = !s.list.hidden && s.items.length > 0;
    if (event.key === "ArrowDown" && open) {
      event.preventDefault();
      setActive(input, s.active + 1);
    } else if (event.key === "ArrowUp" && open) {
      event.preventDefault();
      setActive(input, s.active - 1);
    } else if ((event.key === "Enter" || event.key === "Tab") && open && s.active >= 0) {
      event.preventDefault();
      choose(input, s.items[s.active].getAttribute("data-value"));
    } else if (event.key === "Escape" && open) {
      event.preventDefault();
      closeList(input);
    }
  });

  document.addEventListener("focusout", function (event) {
    var input = event.target;
    if (input instanceof HTMLInputElement && input._suggest) {
      window.clearTimeout(input._suggest.timer);
      closeList(input);
    }
  });

  // ---- Start -----------------------------------------------------------------------

  function start() {
    schedule();
    document.querySelectorAll("input.select-all").forEach(function (all) {
      syncSelection(scopeOf(all));
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
