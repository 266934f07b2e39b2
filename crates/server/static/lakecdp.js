// lakecdp admin centre: what updates while it happens.
//
// - An element with `data-events` (a run in progress) subscribes to the run's
//   server-sent events, marks each process of its tree as it starts and ends, and
//   shows the load progress; when the run ends it asks htmx to load the element
//   again (its `run-ended` trigger), which shows the final state from the catalog.
//   Text from events is only ever set as text, never as markup.
// - A form with `data-stream` posts itself and shows the server's answer in the
//   element it names while the answer arrives (the prerequisite checks of a new
//   environment, row by row); what follows the final mark replaces the rest.
(function () {
  "use strict";

  function mib(bytes) {
    return (bytes / 1048576).toFixed(1) + " MiB";
  }

  function row(tree, process) {
    var found = null;
    tree.querySelectorAll("li[data-process]").forEach(function (li) {
      if (li.getAttribute("data-process") === process) {
        found = li;
      }
    });
    if (!found) {
      found = document.createElement("li");
      found.setAttribute("data-process", process);
      var status = document.createElement("span");
      status.className = "status-queued";
      status.textContent = "Queued";
      var name = document.createElement("span");
      name.textContent = " " + process + " ";
      var progress = document.createElement("span");
      progress.className = "progress";
      found.append(status, name, progress);
      tree.appendChild(found);
    }
    return found;
  }

  function mark(li, status, detail) {
    var s = li.querySelector("span");
    s.className = "status-" + status.toLowerCase();
    s.textContent = status;
    var p = li.querySelector(".progress");
    if (p) {
      p.textContent = detail || "";
    }
  }

  // how often each run's stream was followed to its end, to pause before following
  // it again when the run still shows as unfinished
  var followed = {};

  function follow(el) {
    if (el.getAttribute("data-following")) {
      return;
    }
    el.setAttribute("data-following", "1");
    var url = el.getAttribute("data-events");
    followed[url] = (followed[url] || 0) + 1;
    var pause = followed[url] > 1 ? Math.min(500 * Math.pow(2, followed[url] - 2), 10000) : 0;
    var tree = el.querySelector(".tree");
    var line = el.querySelector(".live");
    var current = null;
    var load = { table: "", bytes: 0, read: 0, records: 0 };
    var ended = false;
    var source = new EventSource(url);

    function end(wait) {
      if (ended) {
        return;
      }
      ended = true;
      source.close();
      if (!document.body.contains(el)) {
        return;
      }
      // after a broken stream, or a run read again still unfinished, a pause first
      setTimeout(function () { htmx.trigger(el, "run-ended"); }, Math.max(wait || 0, pause));
    }
    // an element swapped out of the page stops following (a stream holds a connection)
    el.addEventListener("htmx:beforeCleanupElement", function () {
      ended = true;
      source.close();
    });

    source.onmessage = function (message) {
      if (!document.body.contains(el)) {
        ended = true;
        source.close();
        return;
      }
      var e;
      try {
        e = JSON.parse(message.data);
      } catch (_) {
        return;
      }
      switch (e.type) {
        case "refresh_started":
          (e.processes || []).forEach(function (p) { row(tree, String(p)); });
          break;
        case "process_started":
          current = row(tree, String(e.process));
          mark(current, "Running", "");
          break;
        case "process_finished":
          var o = e.outcome || {};
          var detail = [];
          if (o.rows !== null && o.rows !== undefined) { detail.push(o.rows + " rows"); }
          if (o.elapsed !== undefined) { detail.push(Number(o.elapsed).toFixed(1) + " s"); }
          if (o.reason) { detail.push(o.reason); }
          mark(row(tree, String(o.process)), String(o.status), detail.join(" · "));
          break;
        case "load_started":
          load = { table: e.table, bytes: e.bytes, read: 0, records: 0, pass: e.pass };
          break;
        case "load_advanced":
          load.read += e.bytes;
          load.records += e.records;
          if (line) {
            line.textContent = "Loading " + load.table + " (pass " + load.pass + "): " +
              load.records + " records, " + mib(load.read) + " of " + mib(load.bytes);
          }
          break;
        case "load_finished":
          if (line) { line.textContent = ""; }
          break;
        case "unifying":
          if (line) { line.textContent = "Unifying " + e.tables + " tables"; }
          break;
        case "exported_table":
          if (line) { line.textContent = "Sent " + e.table + ": " + e.rows + " rows"; }
          break;
        case "finished":
          end();
          break;
      }
    };
    source.onerror = function () {
      // the stream ended or broke: the element loads the run's state again
      end(1000);
    };
  }

  var FINAL = "<!--final-->";

  function stream(form) {
    if (form.getAttribute("data-streaming")) {
      return;
    }
    form.setAttribute("data-streaming", "1");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var target = document.querySelector(form.getAttribute("data-stream"));
      var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
      headers["content-type"] = "application/x-www-form-urlencoded";
      // answers for a part of the page (errors as fragments, redirects as headers)
      headers["hx-request"] = "true";
      var button = form.querySelector("button[type=submit]");
      if (button) {
        button.disabled = true;
      }
      target.textContent = "Running the prerequisite checks…";
      fetch(form.getAttribute("action"), {
        method: "POST",
        headers: headers,
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin"
      }).then(function (response) {
        var redirect = response.headers.get("hx-redirect");
        if (redirect) {
          window.location.assign(redirect);
          return null;
        }
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var text = "";
        // the server's own escaped markup, shown as it grows
        var show = function () {
          var at = text.indexOf(FINAL);
          target.innerHTML = at >= 0 ? text.slice(at + FINAL.length) : text;
        };
        var pump = function () {
          return reader.read().then(function (part) {
            if (part.done) {
              text += decoder.decode();
              show();
              return null;
            }
            text += decoder.decode(part.value, { stream: true });
            show();
            return pump();
          });
        };
        return pump();
      }).catch(function (e) {
        target.textContent = "The request failed: " + e;
      }).finally(function () {
        if (button) {
          button.disabled = false;
        }
      });
    });
  }

  function scan(root) {
    if (root.querySelectorAll) {
      root.querySelectorAll("[data-events]").forEach(follow);
      root.querySelectorAll("form[data-stream]").forEach(stream);
    }
    if (root.getAttribute && root.getAttribute("data-events")) {
      follow(root);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    scan(document);
    if (window.htmx) {
      htmx.onLoad(scan);
    }
  });
})();
