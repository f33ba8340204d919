// Progressive help for the pages; every page works without it.
(function () {
  "use strict";

  // Copy the tracking ID.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var target = document.querySelector(button.getAttribute("data-copy"));
    var status = document.getElementById(button.getAttribute("data-status"));
    if (!target || !navigator.clipboard) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent.trim()).then(function () {
        if (status) {
          status.textContent = button.getAttribute("data-copied");
        }
      });
    });
  });

  // Check the chosen files against the limits before they are sent.
  function checkFiles(input) {
    var files = input.files || [];
    var maxFiles = Number(input.getAttribute("data-max-files"));
    var maxBytes = Number(input.getAttribute("data-max-bytes"));
    var maxTotal = Number(input.getAttribute("data-max-total"));
    var message = "";
    var total = 0;
    if (files.length > maxFiles) {
      message = input.getAttribute("data-msg-count");
    }
    for (var i = 0; i < files.length && !message; i++) {
      total += files[i].size;
      if (files[i].size > maxBytes) {
        message = input.getAttribute("data-msg-size").replace("{name}", files[i].name);
      }
    }
    if (!message && total > maxTotal) {
      message = input.getAttribute("data-msg-total");
    }
    input.setCustomValidity(message);
    var out = document.getElementById(input.id + "-check");
    if (out) {
      out.textContent = message;
      out.hidden = !message;
    }
    return !message;
  }
  document.querySelectorAll("input[type=file][data-max-files]").forEach(function (input) {
    input.addEventListener("change", function () { checkFiles(input); });
  });

  // Send forms with files with a progress bar.
  document.querySelectorAll("form[data-progress]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest) {
        return;
      }
      event.preventDefault();
      var button = form.querySelector("button[type=submit], button:not([type])");
      var bar = form.querySelector("progress");
      // The attribute, not form.action: a control named "action" (the
      // staff answer form's canned-response button) hides that property.
      var action = new URL(form.getAttribute("action") || location.href, location.href).href;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", action);
      xhr.upload.addEventListener("progress", function (e) {
        if (bar && e.lengthComputable) {
          bar.hidden = false;
          bar.max = e.total;
          bar.value = e.loaded;
        }
      });
      xhr.addEventListener("load", function () {
        // A redirect means the form was taken: go where it leads. Anything
        // else is a page about the form (its errors): show it.
        if (xhr.responseURL && xhr.responseURL.split("#")[0] !== action) {
          window.location.assign(xhr.responseURL);
          return;
        }
        document.open();
        document.write(xhr.responseText);
        document.close();
      });
      xhr.addEventListener("error", function () {
        if (button) {
          button.disabled = false;
        }
        if (bar) {
          bar.hidden = true;
        }
        var out = form.querySelector("[data-send-error]");
        if (out) {
          out.hidden = false;
        }
      });
      if (button) {
        button.disabled = true;
      }
      var data = new FormData(form);
      // The button that sent the form says what to do with it.
      if (event.submitter && event.submitter.name) {
        data.append(event.submitter.name, event.submitter.value);
      }
      xhr.send(data);
    });
  });

  // Insert a canned response into the answer without a round trip: the
  // text, already filled in for the ticket, is on the chosen option.
  document.querySelectorAll("[data-canned-insert]").forEach(function (button) {
    var select = document.getElementById(button.getAttribute("data-canned-insert"));
    var target = document.getElementById(button.getAttribute("data-target"));
    if (!select || !target) {
      return;
    }
    button.addEventListener("click", function (event) {
      event.preventDefault();
      var option = select.options[select.selectedIndex];
      if (!option || !option.value) {
        select.focus();
        return;
      }
      var text = option.getAttribute("data-text") || "";
      var typed = target.value.replace(/\s+$/, "");
      target.value = typed ? typed + "\n\n" + text : text;
      target.focus();
      target.setSelectionRange(target.value.length, target.value.length);
    });
  });

  // A page that only leads on goes on at once: the staff's pages, reached
  // by a link from another site, are opened again from here.
  var follow = document.querySelector("a[data-auto-follow]");
  if (follow) {
    window.location.replace(follow.href);
  }
})();
