// Tao's web console: the live task log. The task page works without this (it refreshes itself in a
// <noscript> block); with it, log lines and the final status arrive over Server-Sent Events.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var log = document.getElementById("log");
  if (!log || !log.dataset.events || !window.EventSource) return;
  var status = document.getElementById("status");
  var error = document.getElementById("error");
  var source = new EventSource(log.dataset.events);
  source.addEventListener("line", function (e) {
    var l = JSON.parse(e.data);
    var span = document.createElement("span");
    span.className = "line level-" + l.level;
    // textContent, never innerHTML: log lines are data.
    span.textContent = [l.at, l.level, l.place, l.line].join(" ");
    log.appendChild(span);
    log.appendChild(document.createTextNode("\n"));
    if (status && status.textContent === "queued") status.textContent = "running";
  });
  source.addEventListener("status", function (e) {
    var s = JSON.parse(e.data);
    if (status) { status.textContent = s.status; status.className = "status-" + s.status; }
    if (error && s.error) error.textContent = "— " + s.error;
    var cancel = document.getElementById("cancel-form");
    if (cancel) cancel.remove();
    source.close();
  });
});
