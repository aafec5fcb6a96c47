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
      item.appendChild(el("code", null, issue.path));
      item.appendChild(document.createTextNode(": " + issue.message));
      list.appendChild(item);
    });
    var warnings = issues.length - errors;
    var text = errors ? errors + (errors === 1 ? " error" : " errors") : "no errors";
    if (warnings) text += ", " + warnings + (warnings === 1 ? " warning" : " warnings");
    summary.textContent = text;
    summary.className = errors ? "error" : "ok";
  }

  function validateNow() {
    var mine = ++sequence;
    var body = { source: source.value };
    summary.textContent = "checking…";
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
          graphBox.appendChild(el("p", "error", "The source cannot be read."));
        });
      })
      .catch(function () {
        if (mine === sequence) summary.textContent = "could not check (offline?)";
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
      examplesBox.appendChild(el("p", "refused", "The source cannot be read: fix it first."));
      showIssues(data.issues);
      return;
    }
    var head = el("p", data.failed ? "refused" : "ok");
    head.appendChild(el("strong", null, "Examples: " + data.passed + " passed, " + data.failed + " failed."));
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
        details.appendChild(el("summary", null, "transcript"));
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
      examplesBox.textContent = "Running the examples…";
      post(examplesUrl, { source: source.value })
        .then(function (response) { return response.json(); })
        .then(showExamples)
        .catch(function () { examplesBox.textContent = "The examples could not run."; })
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
      if (!data.reset) logLine("system", "(no reply)");
      return;
    }
    var bubble = logLine("reply", data.text);
    var meta;
    if (data.mode === "ussd") {
      meta = "USSD screen: " + data.chars + "/" + data.limit + " characters" + (data.ended ? " · END" : " · CON");
    } else {
      meta = data.encoding + " · " + data.segments + (data.segments === 1 ? " segment" : " segments") +
        " (limit " + data.limit + ") · " + data.chars + " characters";
    }
    bubble.appendChild(el("div", "meta" + (data.fits ? "" : " over"), meta + (data.fits ? "" : " · over the budget")));
    if (data.mode === "ussd" && data.ended) {
      ussdEnded = true;
      logLine("system", "Session ended. Send anything to dial again.");
    } else if (data.ended) {
      logLine("system", "The conversation ended; the next message starts over.");
    }
  }

  function simulate(text, reset) {
    return post(simUrl, { mode: simMode.value, text: text, reset: !!reset, source: source.value })
      .then(function (response) { return response.json(); })
      .then(showReply)
      .catch(function () { logLine("system", "The simulator did not answer."); });
  }

  function startOver() {
    simLog.textContent = "";
    ussdEnded = false;
    if (simMode.value === "ussd") {
      logLine("sent", "(dial)");
      return simulate("", true);
    }
    return simulate("", true).then(function () { logLine("system", "New conversation: send HOLA."); });
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
