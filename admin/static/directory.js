/* Ruta admin, directory: the municipality picker's filter.
 *
 * Without script the picker is a plain list of checkboxes; this shows a search field that hides
 * the municipalities whose name, country or code does not contain what is typed (the chosen ones
 * stay checked, hidden or not) and keeps the "Chosen:" line up to date.
 */
(function () {
  "use strict";

  var picker = document.getElementById("municipality-picker");
  if (!picker) return;
  var field = document.getElementById("municipality-filter");
  var chosen = document.getElementById("municipality-chosen");
  var choices = picker.querySelectorAll(".choices label");
  var prefix = chosen.textContent.split(":")[0] + ": ";
  var none = chosen.getAttribute("data-none") || "";

  function fold(text) {
    return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }

  field.closest("label").hidden = false;
  field.addEventListener("input", function () {
    var wanted = fold(field.value.trim());
    Array.prototype.forEach.call(choices, function (label) {
      var match = !wanted || fold(label.getAttribute("data-name")).indexOf(wanted) !== -1;
      label.classList.toggle("hidden", !match);
    });
  });
  field.addEventListener("keydown", function (event) {
    if (event.key === "Enter") event.preventDefault(); // Enter filters; it does not save the form
  });

  picker.addEventListener("change", function () {
    var names = [];
    Array.prototype.forEach.call(choices, function (label) {
      var box = label.querySelector("input");
      if (box.checked) names.push(label.textContent.trim());
    });
    chosen.textContent = prefix + (names.length ? names.join(", ") : none);
  });
})();
