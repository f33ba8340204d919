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

// The submit form at once, with the knowledge base's articles that may
// answer the subject listed while it is typed. Without the script the
// form asks for the department and subject first and lists them then.
(function () {
  "use strict";

  var rest = document.querySelector("[data-kb-rest]");
  if (!rest) {
    return;
  }
  rest.hidden = false;
  ["continue", "continue-hint"].forEach(function (id) {
    var element = document.getElementById(id);
    if (element) {
      var actions = element.closest(".actions") || element;
      actions.parentNode.removeChild(actions);
    }
  });

  var subject = document.getElementById("subject");
  var department = document.getElementById("department");
  if (!subject || !window.fetch || !window.AbortController || !window.URLSearchParams) {
    return;
  }
  // The list the server wrote, or an empty one where it would be.
  var section = document.getElementById("kb-suggestions");
  if (!section) {
    section = document.createElement("section");
    section.className = "kb-suggestions";
    section.id = "kb-suggestions";
    section.setAttribute("aria-live", "polite");
    section.hidden = true;
    var heading = document.createElement("h2");
    heading.textContent = rest.getAttribute("data-kb-heading");
    section.appendChild(heading);
    section.appendChild(document.createElement("ul"));
    var field = subject.closest(".field") || subject;
    field.parentNode.insertBefore(section, field.nextSibling);
  }
  var list = section.querySelector("ul");
  // The IDs listed now, and those counted as suggested already (the
  // server counts those it wrote).
  var shown = [];
  var counted = {};
  section.querySelectorAll("li[data-id]").forEach(function (item) {
    var id = item.getAttribute("data-id");
    shown.push(id);
    counted[id] = true;
  });

  function show(articles) {
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    shown = [];
    articles.forEach(function (article) {
      // Our own pages only.
      var url = String(article.url || "");
      if (url.charAt(0) !== "/" || url.charAt(1) === "/") {
        return;
      }
      var item = document.createElement("li");
      item.setAttribute("data-id", String(article.id));
      var link = document.createElement("a");
      link.href = url;
      link.textContent = article.title;
      var excerpt = document.createElement("p");
      excerpt.className = "hint";
      excerpt.textContent = article.excerpt;
      item.appendChild(link);
      item.appendChild(excerpt);
      list.appendChild(item);
      shown.push(String(article.id));
    });
    section.hidden = shown.length === 0;
  }

  var pending = null;
  function suggest() {
    if (pending) {
      pending.abort();
      pending = null;
    }
    var text = subject.value;
    if (text.trim().length < 3) {
      show([]);
      return;
    }
    var controller = new AbortController();
    pending = controller;
    var params = new URLSearchParams();
    params.set("q", text);
    params.set("department", department ? department.value : "");
    params.set("lang", document.documentElement.lang);
    fetch("/kb/suggest?" + params.toString(), {
      credentials: "same-origin",
      headers: { "Accept": "application/json" },
      signal: controller.signal
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("suggestions: " + response.status);
      }
      return response.json();
    }).then(function (data) {
      if (pending === controller) {
        pending = null;
        show(data.articles || []);
      }
    }).catch(function () {
      // Dropped for a newer one, or failed: the form works without.
    });
  }

  var timer = null;
  function suggestSoon() {
    clearTimeout(timer);
    timer = setTimeout(suggest, 250);
  }
  subject.addEventListener("input", suggestSoon);
  if (department) {
    department.addEventListener("change", suggestSoon);
  }
  // Those listed when the visitor is done with the subject count as
  // suggested, each once.
  subject.addEventListener("change", function () {
    if (section.hidden) {
      return;
    }
    var ids = shown.filter(function (id) { return !counted[id]; });
    if (!ids.length) {
      return;
    }
    ids.forEach(function (id) { counted[id] = true; });
    fetch("/kb/suggest/shown", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: ids.map(function (id) { return "id=" + encodeURIComponent(id); }).join("&")
    }).catch(function () {
      // A count lost is no loss to the visitor.
    });
  });
  // A form that came back (with errors) lists them at once.
  if (!shown.length) {
    suggest();
  }
})();
