// seqshap page: send the review to /api/explain and show the server-rendered pictures.
// The pictures are an HTML fragment built by seqshap.viz.html on the server, where every
// string from the review is escaped; everything this script writes itself goes through
// textContent, never innerHTML. The page's CSP allows no inline script either.
"use strict";
(function () {
  const form = document.getElementById("explain-form");
  const text = document.getElementById("review");
  const output = document.getElementById("output");
  const target = document.getElementById("target");  // only for a model with one output per class
  const button = document.getElementById("explain-button");
  const status = document.getElementById("status");
  const result = document.getElementById("result");
  const count = document.getElementById("char-count");
  const maxChars = Number(form.dataset.maxChars);
  let busy = false;

  // data-state ("busy" | "done" | "error") lets people's tools and the tests wait for the answer.
  function setStatus(message, state) {
    status.textContent = message;
    status.dataset.state = state;
    status.style.color = state === "error" ? "#b00020" : "";
  }

  function updateCount() {
    count.textContent = `${text.value.length.toLocaleString("en")} / ${maxChars.toLocaleString("en")} characters`;
  }

  async function explain() {
    if (busy) return;  // one request at a time from this page
    if (!text.value.trim()) {
      setStatus("Paste a review first.", "error");
      return;
    }
    busy = true;
    button.disabled = true;
    result.setAttribute("aria-busy", "true");
    setStatus("Explaining…", "busy");
    const started = performance.now();
    try {
      let resp;
      try {
        resp = await fetch("/api/explain", {
          method: "POST",
          headers: {"Content-Type": "application/json"},
          body: JSON.stringify(Object.assign(
            {text: text.value, output: output.value, html: true},
            target && target.value !== "" ? {target: target.value} : {},  // "": the predicted class
          )),
        });
      } catch (_) {
        throw new Error("could not reach the server (is `seqshap serve` still running?)");
      }
      let data = null;
      try { data = await resp.json(); } catch (_) { /* not JSON, e.g. a proxy's error page */ }
      if (!resp.ok || !data) {
        throw new Error(data && data.error ? data.error : `the server answered ${resp.status}`);
      }
      result.innerHTML = data.html;  // escaped on the server (seqshap.viz.html.esc)
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      const why = target ? ` — why ${data.output_name}:` : " —";
      setStatus(`Predicted ${data.label}${why} explained in ${seconds} s`, "done");
    } catch (err) {
      result.textContent = "";
      setStatus(`Error: ${err.message}`, "error");
    } finally {
      busy = false;
      button.disabled = false;
      result.removeAttribute("aria-busy");
    }
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); explain(); });
  text.addEventListener("input", updateCount);
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      explain();
    }
  });
  updateCount();
})();
