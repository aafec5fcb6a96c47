/* Ruta admin, flow graph: pan and zoom (buttons, mouse wheel, drag, keys on the graph).
 *
 * The server draws the graph as an SVG with a viewBox of the whole flow; this moves that viewBox.
 * Without script the box scrolls around the graph at its full size and the buttons stay hidden.
 * When the editor redraws the graph as the source changes, the view the user chose is kept.
 */
(function () {
  "use strict";

  var MIN_SHARE = 0.08; // zoomed in at most to a twelfth of the whole flow's width
  var MAX_SHARE = 1.5;

  function setup(box) {
    var tools = document.querySelector('[data-graph-tools="' + box.id + '"]');
    if (!tools) return;
    var view = null; // [x, y, width, height] the user chose; null: the whole flow

    function svg() { return box.querySelector("svg"); }

    function whole(graph) {
      if (!graph.getAttribute("data-whole")) graph.setAttribute("data-whole", graph.getAttribute("viewBox"));
      return graph.getAttribute("data-whole").split(/[\s,]+/).map(Number);
    }

    function show() {
      var graph = svg();
      if (!graph) return;
      var full = whole(graph);
      var shown = view || full;
      graph.setAttribute("viewBox", shown.map(function (n) { return Math.round(n * 10) / 10; }).join(" "));
    }

    function zoom(factor, cx, cy) {
      var graph = svg();
      if (!graph) return;
      var full = whole(graph);
      var current = view || full.slice();
      var width = current[2] * factor;
      width = Math.min(Math.max(width, full[2] * MIN_SHARE), full[2] * MAX_SHARE);
      factor = width / current[2];
      if (cx === undefined) { cx = current[0] + current[2] / 2; cy = current[1] + current[3] / 2; }
      view = [cx - (cx - current[0]) * factor, cy - (cy - current[1]) * factor, width, current[3] * factor];
      show();
    }

    function pan(dx, dy) { // in shares of the view
      var graph = svg();
      if (!graph) return;
      var current = view || whole(graph).slice();
      view = [current[0] + current[2] * dx, current[1] + current[3] * dy, current[2], current[3]];
      show();
    }

    function unitsPerPixel() {
      var graph = svg();
      var matrix = graph && graph.getScreenCTM();
      return matrix && matrix.a ? 1 / matrix.a : 1;
    }

    function pointAt(event) {
      var graph = svg();
      var matrix = graph.getScreenCTM();
      if (!matrix) return [undefined, undefined];
      var point = graph.createSVGPoint();
      point.x = event.clientX;
      point.y = event.clientY;
      var inside = point.matrixTransform(matrix.inverse());
      return [inside.x, inside.y];
    }

    var PANS = { left: [-0.25, 0], right: [0.25, 0], up: [0, -0.25], down: [0, 0.25] };

    tools.hidden = false;
    box.classList.add("zoomable");
    tools.addEventListener("click", function (event) {
      var button = event.target.closest("button");
      if (!button) return;
      var how = button.getAttribute("data-zoom");
      if (how === "in") zoom(1 / 1.4);
      else if (how === "out") zoom(1.4);
      else if (how === "fit") { view = null; show(); }
      var direction = PANS[button.getAttribute("data-pan")];
      if (direction) pan(direction[0], direction[1]);
    });

    box.addEventListener("keydown", function (event) {
      if (event.target !== box || event.altKey || event.ctrlKey || event.metaKey) return;
      var keys = { ArrowLeft: "left", ArrowRight: "right", ArrowUp: "up", ArrowDown: "down" };
      if (keys[event.key]) pan(PANS[keys[event.key]][0] / 2, PANS[keys[event.key]][1] / 2);
      else if (event.key === "+" || event.key === "=") zoom(1 / 1.25);
      else if (event.key === "-" || event.key === "_") zoom(1.25);
      else if (event.key === "0") { view = null; show(); }
      else return;
      event.preventDefault();
    });

    box.addEventListener("wheel", function (event) {
      if (!svg()) return;
      event.preventDefault();
      var at = pointAt(event);
      zoom(event.deltaY < 0 ? 1 / 1.15 : 1.15, at[0], at[1]);
    }, { passive: false });

    var drag = null;
    box.addEventListener("pointerdown", function (event) {
      if (!svg() || event.button !== 0) return;
      drag = { x: event.clientX, y: event.clientY, scale: unitsPerPixel() };
      box.classList.add("dragging");
      box.setPointerCapture(event.pointerId);
    });
    box.addEventListener("pointermove", function (event) {
      if (!drag) return;
      var graph = svg();
      var current = view || whole(graph).slice();
      view = [
        current[0] - (event.clientX - drag.x) * drag.scale,
        current[1] - (event.clientY - drag.y) * drag.scale,
        current[2], current[3]
      ];
      drag.x = event.clientX;
      drag.y = event.clientY;
      show();
    });
    function stop() { drag = null; box.classList.remove("dragging"); }
    box.addEventListener("pointerup", stop);
    box.addEventListener("pointercancel", stop);

    // The editor puts a new SVG in the box as the source changes: keep the chosen view.
    new MutationObserver(show).observe(box, { childList: true });
    show();
  }

  Array.prototype.forEach.call(document.querySelectorAll(".graph-box"), setup);
})();

/* Ruta admin, flow editor: YAML highlighting, live validation and graph, examples, simulator.
 *
 * Plain JavaScript, no build step. The page works without it (plain textarea, validation on
 * save); this file only adds to it. Every text from the server goes in through textContent,
 * except the graph, an SVG the server builds with every text escaped.
 */
(function () {
  "use strict";

  var root = document.getElementById("flow-editor");
  if (!root) return;
  var source = document.getElementById("flow-source");
  var highlight = document.getElementById("flow-highlight");
  var wrap = document.getElementById("code-wrap");
  var csrf = root.getAttribute("data-csrf");
  var textsNode = document.getElementById("flows-texts");
  var TEXTS = textsNode ? JSON.parse(textsNode.textContent) : {};

  // A text of the page's language, its {names} filled in; ``count`` picks "_one" or "_other".
  function t(name, values, count) {
    if (count !== undefined) name += count === 1 ? "_one" : "_other";
    var text = TEXTS[name] || name;
    return text.replace(/\{(\w+)\}/g, function (all, key) {
      return values && values[key] !== undefined && values[key] !== null ? String(values[key]) : all;
    });
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, "Accept": "application/json" },
      body: JSON.stringify(body)
    });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // --- highlighting -----------------------------------------------------------------------

  function escapeHtml(text) {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function span(cls, text) {
    return '<span class="' + cls + '">' + escapeHtml(text) + "</span>";
  }

  // strings | keys (a word followed by ": ") | numbers and constants | punctuation and list dashes
  var TOKEN = /("(?:[^"\\]|\\.)*"?|'(?:[^']|'')*'?)|([A-Za-z_][\w.\-]*)(?=\s*:(?:\s|$))|(\b(?:true|false|null)\b|-?\b\d+(?:\.\d+)?\b)|([{}\[\],]|^\s*-(?=\s|$))/g;

  function commentAt(line) {
    var quote = null;
    for (var i = 0; i < line.length; i++) {
      var ch = line.charAt(i);
      if (quote) {
        if (ch === "\\" && quote === '"') i++;
        else if (ch === quote) quote = null;
      } else if (ch === '"' || ch === "'") {
        quote = ch;
      } else if (ch === "#" && (i === 0 || /\s/.test(line.charAt(i - 1)))) {
        return i;
      }
    }
    return -1;
  }

  function highlightLine(line) {
    var cut = commentAt(line);
    var code = cut < 0 ? line : line.slice(0, cut);
    var out = "";
    var last = 0;
    var match;
    TOKEN.lastIndex = 0;
    while ((match = TOKEN.exec(code)) !== null) {
      if (match[0] === "") { TOKEN.lastIndex++; continue; }
      out += escapeHtml(code.slice(last, match.index));
      if (match[1] !== undefined) out += span("s", match[0]);
      else if (match[2] !== undefined) out += span("k", match[0]);
      else if (match[3] !== undefined) out += span("n", match[0]);
      else out += span("p", match[0]);
      last = match.index + match[0].length;
    }
    out += escapeHtml(code.slice(last));
    if (cut >= 0) out += span("c", line.slice(cut));
    return out;
  }

  var painted = null;
  function paint() {
    if (!highlight || painted === source.value) return;
    painted = source.value;
    // The extra lines let the overlay scroll as far as the textarea (which has scrollbars).
    highlight.innerHTML = source.value.split("\n").map(highlightLine).join("\n") + "\n\n\n";
    syncScroll();
  }

  function syncScroll() {
    if (!highlight) return;
    highlight.scrollTop = source.scrollTop;
    highlight.scrollLeft = source.scrollLeft;
  }

  if (highlight && wrap) {
    wrap.classList.add("highlighting");
    paint();
    source.addEventListener("scroll", syncScroll);
  }

  if (!source.readOnly) {
    source.addEventListener("keydown", function (event) {
      if (event.key !== "Tab" || event.shiftKey || event.ctrlKey || event.altKey || event.metaKey) return;
      event.preventDefault(); // YAML has no tabs: indent with two spaces
      if (!document.execCommand || !document.execCommand("insertText", false, "  ")) {
        source.setRangeText("  ", source.selectionStart, source.selectionEnd, "end");
        source.dispatchEvent(new Event("input"));
      }
    });
  }

  // --- live validation and graph ----------------------------------------------------------

  var list = document.getElementById("validation");
  var summary = document.getElementById("validation-summary");
  var graphBox = document.getElementById("flow-graph");
  var validateUrl = root.getAttribute("data-validate-url");
  var graphUrl = root.getAttribute("data-graph-url");
  var sequence = 0;
  var timer = null;

  function showIssues(issues) {
    list.textContent = "";
    var errors = 0;
    issues.forEach(function (issue) {
      if (issue.error) errors++;
      var item = el("li", issue.error ? "error" : "warning");
      item.appendChild(el("strong", null, t(issue.error ? "error" : "warning")));
      item.appendChild(document.createTextNode(" "));
      item.appendChild(el("code", null, issue.path));
      item.appendChild(document.createTextNode(": " + issue.message));
      list.appendChild(item);
    });
    var warnings = issues.length - errors;
    var text = errors ? t("errors", { n: errors }, errors) : t("no_errors");
    if (warnings) text += ", " + t("warnings", { n: warnings }, warnings);
    summary.textContent = text;
    summary.className = errors ? "error" : "ok";
  }

  function validateNow() {
    var mine = ++sequence;
    var body = { source: source.value };
    summary.textContent = t("checking");
    post(validateUrl, body)
      .then(function (response) { return response.json(); })
      .then(function (issues) {
        if (mine !== sequence) return;
        if (Array.isArray(issues)) showIssues(issues);
        return post(graphUrl, body).then(function (response) {
          if (mine !== sequence) return;
          if (response.status === 200) {
            return response.text().then(function (svg) { if (mine === sequence) graphBox.innerHTML = svg; });
          }
          graphBox.textContent = "";
          graphBox.appendChild(el("p", "error", t("unreadable")));
        });
      })
      .catch(function () {
        if (mine === sequence) summary.textContent = t("offline");
      });
  }

  source.addEventListener("input", function () {
    window.requestAnimationFrame(paint);
    if (timer) window.clearTimeout(timer);
    timer = window.setTimeout(validateNow, 450);
  });

  // --- examples ---------------------------------------------------------------------------

  var examplesButton = document.getElementById("run-examples");
  var examplesBox = document.getElementById("examples-result");
  var examplesUrl = root.getAttribute("data-examples-url");

  function showExamples(data) {
    examplesBox.textContent = "";
    if (data.issues && data.issues.length) {
      examplesBox.appendChild(el("p", "refused", t("unreadable_fix")));
      showIssues(data.issues);
      return;
    }
    var head = el("p", data.failed ? "refused" : "ok");
    head.appendChild(el("strong", null, t("examples", { passed: data.passed, failed: data.failed })));
    examplesBox.appendChild(head);
    data.results.forEach(function (result) {
      var row = el("div", "example " + (result.passed ? "ok" : "refused"),
        (result.passed ? "✓ " : "✗ ") + result.flow + ": " + result.example);
      if (result.failures.length) {
        var failures = el("ul");
        result.failures.forEach(function (failure) { failures.appendChild(el("li", null, failure)); });
        row.appendChild(failures);
      }
      if (result.transcript.length) {
        var details = el("details");
        details.appendChild(el("summary", null, t("transcript")));
        details.appendChild(el("pre", null, result.transcript.map(function (turn) {
          return "> " + turn.sent + "\n< " + turn.reply;
        }).join("\n")));
        row.appendChild(details);
      }
      examplesBox.appendChild(row);
    });
  }

  if (examplesButton && examplesUrl) {
    examplesButton.addEventListener("click", function (event) {
      event.preventDefault();
      examplesButton.disabled = true;
      examplesBox.textContent = t("running");
      post(examplesUrl, { source: source.value })
        .then(function (response) { return response.json(); })
        .then(showExamples)
        .catch(function () { examplesBox.textContent = t("examples_failed"); })
        .then(function () { examplesButton.disabled = false; });
    });
  }

  // --- phone simulator --------------------------------------------------------------------

  var simUrl = root.getAttribute("data-simulate-url");
  var simLog = document.getElementById("sim-log");
  var simForm = document.getElementById("sim-form");
  var simInput = document.getElementById("sim-input");
  var simMode = document.getElementById("sim-mode");
  var simReset = document.getElementById("sim-reset");
  var ussdEnded = false;

  function logLine(className, text) {
    var line = el("div", className, text);
    simLog.appendChild(line);
    simLog.scrollTop = simLog.scrollHeight;
    return line;
  }

  function showReply(data) {
    if (data.error) {
      logLine("system", data.error);
      (data.issues || []).forEach(function (issue) { logLine("system", issue.path + ": " + issue.message); });
      return;
    }
    if (!data.text) {
      if (!data.reset) logLine("system", t("no_reply"));
      return;
    }
    var bubble = logLine("reply", data.text);
    var meta;
    if (data.mode === "ussd") {
      meta = t("ussd_meta", data) + (data.ended ? " · END" : " · CON");
    } else {
      meta = t("sms_meta", data, data.segments);
    }
    bubble.appendChild(el("div", "meta" + (data.fits ? "" : " over"), meta + (data.fits ? "" : " · " + t("over"))));
    if (data.mode === "ussd" && data.ended) {
      ussdEnded = true;
      logLine("system", t("ussd_ended"));
    } else if (data.ended) {
      logLine("system", t("ended"));
    }
  }

  function simulate(text, reset) {
    return post(simUrl, { mode: simMode.value, text: text, reset: !!reset, source: source.value })
      .then(function (response) { return response.json(); })
      .then(showReply)
      .catch(function () { logLine("system", t("no_answer")); });
  }

  function startOver() {
    simLog.textContent = "";
    ussdEnded = false;
    if (simMode.value === "ussd") {
      logLine("sent", t("dial"));
      return simulate("", true);
    }
    return simulate("", true).then(function () { logLine("system", t("new_conversation")); });
  }

  if (simForm && simUrl) {
    simForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var text = simInput.value;
      simInput.value = "";
      if (simMode.value === "ussd" && ussdEnded) {
        startOver();
        return;
      }
      logLine("sent", text);
      simulate(text, false);
    });
    simReset.addEventListener("click", startOver);
    simMode.addEventListener("change", startOver);
  }
})();
