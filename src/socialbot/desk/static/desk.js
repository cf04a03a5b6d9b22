// socialbot desk: live length counters (progressive enhancement; the pages work without it).
// The server counts, with the composer itself: this only sends the form and shows the answer.
"use strict";
(function () {
  function setup(form) {
    var box = form.querySelector("[data-counters]");
    var section = form.querySelector(".counters");
    if (!box || !section) { return; }
    var url = section.getAttribute("data-count-url");
    var timer = null;
    function show(data) {
      while (box.firstChild) { box.removeChild(box.firstChild); }
      (data.posts || []).forEach(function (post) {
        var item = document.createElement("li");
        item.textContent = post.network + ": " + post.length + " / " + post.limit;
        if (post.length > post.limit) { item.className = "over"; item.textContent += " (too long)"; }
        box.appendChild(item);
      });
      if (data.error) {
        var problem = document.createElement("li");
        problem.className = "over";
        problem.textContent = data.error;
        box.appendChild(problem);
      }
    }
    function count() {
      var body = new FormData(form);
      fetch(url, { method: "POST", body: body, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) { if (data) { show(data); } })
        .catch(function () { /* the counters stay as they were */ });
    }
    form.addEventListener("input", function () {
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(count, 300);
    });
    count();
  }
  document.addEventListener("DOMContentLoaded", function () {
    var forms = document.querySelectorAll("form[data-live-count]");
    for (var i = 0; i < forms.length; i++) { setup(forms[i]); }
  });
})();
