// The live SMS counter under a textarea (a question's answer, a broadcast's text): characters,
// encoding and segments counted as flows/encoding.py's sms_cost does, with what the server puts
// before (an answer's opening) or after (a broadcast's stop line) the text. The rules come from
// the page's data attributes; the server checks again on sending, so this only helps while
// typing. Each textarea names its own counter and warning (data-sms-counter, data-sms-warning);
// without data-sms-max there is no limit, only the count.
(function () {
  "use strict";

  function cost(text, rules) {
    var basic = rules.gsm7_basic, extension = rules.gsm7_extension;
    var chars = Array.from(text); // code points, as Python iterates a str
    var gsm = chars.every(function (ch) {
      return basic.indexOf(ch) >= 0 || extension.indexOf(ch) >= 0;
    });
    var widths, single, part;
    if (gsm) {
      widths = chars.map(function (ch) { return extension.indexOf(ch) >= 0 ? 2 : 1; });
      single = rules.gsm7_single; part = rules.gsm7_part;
    } else {
      // UTF-16 units per user-perceived character: a flag or an accent never splits.
      var clusters;
      if (typeof Intl !== "undefined" && Intl.Segmenter) {
        clusters = Array.from(new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(text),
          function (s) { return s.segment; });
      } else {
        clusters = chars;
      }
      widths = clusters.map(function (c) { return c.length; }); // JS strings are UTF-16
      single = rules.ucs2_single; part = rules.ucs2_part;
    }
    var units = widths.reduce(function (a, b) { return a + b; }, 0);
    var segments = 1;
    if (units > single) {
      var used = 0;
      widths.forEach(function (width) {
        if (used + width > part) { segments += 1; used = 0; }
        while (width > part) { segments += 1; width -= part; }
        used += width;
      });
    }
    return { encoding: gsm ? "GSM-7" : "UCS-2", units: units, segments: segments };
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, name) { return String(values[name]); });
  }

  function watch(area) {
    var rules = JSON.parse(area.dataset.smsRules);
    var prefix = area.dataset.smsPrefix || "";
    var suffix = area.dataset.smsSuffix || "";
    var max = parseInt(area.dataset.smsMax, 10);
    var counter = document.getElementById(area.dataset.smsCounter || "sms-counter");
    var warning = document.getElementById(area.dataset.smsWarning || "sms-warning");
    function update() {
      // As the server sends it: trimmed, between prefix and suffix (a textarea's value has LF
      // breaks).
      var body = prefix + area.value.trim() + suffix;
      var result = cost(body, rules);
      var values = {
        chars: Array.from(body).length, encoding: result.encoding, segments: result.segments,
        max: max, part: rules.ucs2_part, gsm: rules.gsm7_part
      };
      counter.textContent = fill(counter.dataset.labelCount, values);
      // An empty broadcast text is not sent (its readers get the default one): nothing to count.
      counter.hidden = Boolean(suffix) && !area.value.trim();
      counter.dataset.segments = String(result.segments);
      counter.dataset.encoding = result.encoding;
      var over = !isNaN(max) && result.segments > max;
      counter.classList.toggle("over", over);
      if (over) { area.setAttribute("aria-invalid", "true"); } else { area.removeAttribute("aria-invalid"); }
      if (over) {
        warning.textContent = fill(counter.dataset.labelOver, values);
      } else if (result.encoding === "UCS-2") {
        warning.textContent = fill(counter.dataset.labelUcs2, values);
      } else {
        warning.textContent = "";
      }
      warning.hidden = !warning.textContent;
      warning.classList.toggle("over", over);
    }
    area.addEventListener("input", update);
    update();
  }

  window.rutaSmsCost = cost; // the browser tests compare it with the server's count
  document.querySelectorAll("textarea[data-sms-rules]").forEach(watch);
})();
