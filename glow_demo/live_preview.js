/* The page's side of the fast preview route (glow_demo/live_route.py).

   While a slider of the Edit tab moves (its range input's "input" event: a drag or a key),
   post the sliders' values to the app's live/preview and draw the JPEG it answers in the
   "after" picture, ahead of Gradio's own event for the same move (queue, event stream,
   then a second request for the picture file). At most one request is in flight and one
   waits (the newest values: older waiting ones are replaced); an answer is drawn only if
   the page still shows its photo and either its values or a newer request (a drag going
   on), so a reset or another photo is never painted over.

   Gradio's events still run and have the last word (release at full resolution, the
   model's view, the status line), but Gradio hears of a move a little later: the range's
   "input" event is kept from Gradio's slider until the fast picture is drawn and no
   request waits (or the pointer is let go, before the slider reads its value for
   "release", or MAX_DEFER_MS pass), then replayed to it. Run at once, Gradio's event for
   the same move competed with the fast request for the two cores and the page's main
   thread: measured, 130 ms to the fast picture instead of 78 (README, Speed). Its edit is
   decoded by then, so it only fetches the picture's file and updates the rest.

   While the fast path leads, a picture Gradio sets is one or two moves old: it is held
   back (the fast picture kept) until Gradio shows the fast path's own picture (frames
   are named by content, so the names match) or HOLD_MS pass without a fast picture;
   then Gradio's newest stands.

   window.glowLive: enabled (false: Gradio's path alone), busy (a request in flight),
   counters, and the newest drawn picture (name, url, strengths, first: false where
   Gradio's event had shown it already, width, ms from the move to drawn, the server's
   Server-Timing, ms from the move to each stage: sent, answered, received, decoded); a
   "glow-live-drawn" event on document each time one is drawn. */
(() => {
  "use strict";
  const ROUTE = "live/preview";
  const HOLD_MS = 1500;
  const MAX_DEFER_MS = 500;
  const REPLAY = Symbol("glow-live replay");
  const live = (window.glowLive = {
    enabled: true, busy: false, sent: 0, drawn: 0, late: 0, dropped: 0, failed: 0, held: 0,
    lastError: null, last: null,
  });
  let inFlight = false;
  let pending = null; // the newest values waiting for the request in flight
  let blobUrl = null; // the fast picture drawn now
  let owned = null; // {name, body, token} of the fast picture that leads Gradio's
  let deferred = null; // Gradio's newest picture, held back while the fast path leads
  let holdTimer = null;
  const unheard = new Set(); // ranges moved whose "input" Gradio's slider has not had
  let deferTimer = null;

  const afterImg = () => document.querySelectorAll("#result img")[1] || null;
  const token = () => {
    const box = document.querySelector("#live-token textarea, #live-token input");
    return box ? box.value.trim() : "";
  };
  const endpoint = () => {
    const root = (window.gradio_config && window.gradio_config.root) || "";
    return new URL(ROUTE, root ? root.replace(/\/?$/, "/") : document.baseURI).href;
  };
  const frameName = (src) => {
    try {
      return decodeURIComponent(new URL(src, document.baseURI).pathname).split("/").pop();
    } catch {
      return "";
    }
  };

  /* The slider's element (#slider-smile, #custom-0): its range and its number box. */
  function sliderBlock(range) {
    return range.closest('[id^="slider-"], [id^="custom-"]');
  }

  /* "smile" for #slider-smile, "custom-0" for a person's own first slider, else null. */
  function sliderKey(range) {
    const block = sliderBlock(range);
    if (!block) return null;
    if (block.id.startsWith("slider-")) return block.id.slice("slider-".length);
    return /^custom-\d$/.test(block.id) ? block.id : null;
  }

  /* The request for what the page shows now: every slider away from 0, the face picked. */
  function current() {
    const strengths = {};
    for (const range of document.querySelectorAll("input[type=range]")) {
      const key = sliderKey(range);
      const value = Number(range.value);
      if (key && value && Number.isFinite(value)) strengths[key] = value;
    }
    const picked = document.querySelector("#target input[type=radio]:checked");
    const face = picked ? /^Face (\d+)$/.exec(picked.value) : null;
    return JSON.stringify({token: token(), face: face ? Number(face[1]) : null, strengths});
  }

  document.addEventListener("input", (event) => {
    const range = event.target;
    if (event[REPLAY] || !(range instanceof HTMLInputElement) || range.type !== "range"
        || !sliderKey(range)) return;
    if (!live.enabled || !token()) {
      tellGradio();
      return;
    }
    event.stopImmediatePropagation(); // Gradio's slider hears of it after the fast picture
    showValue(range);
    unheard.add(range);
    if (!deferTimer) deferTimer = setTimeout(tellGradio, MAX_DEFER_MS);
    const job = {body: current(), token: token(), t0: performance.now()};
    if (inFlight) pending = job;
    else send(job);
  }, true);

  /* The number box beside a range learns of a move only from Gradio's event, which the
     fast path holds back until the picture is drawn or the slider let go: write the value
     there now, so the box keeps up with a drag (Gradio's replay then sets the same). */
  function showValue(range) {
    const block = sliderBlock(range);
    const box = block && block.querySelector("input[type=number]");
    if (box && box !== document.activeElement) box.value = range.value;
  }

  /* Replay the moves kept from Gradio's sliders: they take the ranges' values now. */
  function tellGradio() {
    clearTimeout(deferTimer);
    deferTimer = null;
    for (const range of unheard) {
      const replay = new Event("input", {bubbles: true});
      replay[REPLAY] = true;
      range.dispatchEvent(replay);
    }
    unheard.clear();
  }
  // Let go of a slider: Gradio's handler for it ("release") reads the slider's value.
  document.addEventListener("pointerup", tellGradio, true);

  async function send(job) {
    inFlight = live.busy = true;
    live.sent++;
    job.sent = performance.now();
    try {
      const response = await fetch(endpoint(), {
        method: "POST", headers: {"Content-Type": "application/json"}, body: job.body,
        cache: "no-store", credentials: "same-origin"});
      job.answered = performance.now();
      if (response.ok) {
        const blob = await response.blob();
        job.received = performance.now();
        await draw(job, blob, response.headers.get("X-Frame") || "",
                   response.headers.get("Server-Timing") || "");
      } else {
        live.failed++;
        live.lastError = `${response.status} ${await response.text()}`;
      }
    } catch (err) {
      live.failed++;
      live.lastError = String(err);
    }
    inFlight = live.busy = false;
    const next = pending;
    pending = null;
    if (next && live.enabled) send(next);
    else tellGradio();
  }

  const stale = (job) => job.token !== token() || (!pending && job.body !== current());

  async function draw(job, blob, name, timing) {
    if (stale(job)) {
      live.dropped++;
      return;
    }
    const url = URL.createObjectURL(blob);
    const shown = () => frameName((afterImg() || {getAttribute: () => ""}).getAttribute("src")
                                  || "") === name;
    const probe = new Image();
    probe.src = url;
    try {
      await probe.decode(); // off the main thread; the picture then draws at once
    } catch {
      URL.revokeObjectURL(url);
      live.failed++;
      return;
    }
    job.decoded = performance.now();
    const img = afterImg();
    if (!img || stale(job) || !live.enabled) {
      URL.revokeObjectURL(url);
      live.dropped++;
      return;
    }
    if (blobUrl) URL.revokeObjectURL(blobUrl);
    blobUrl = url;
    const lead = !shown(); // else Gradio's event brought this very picture already
    if (lead) {
      owned = {name, body: job.body, token: job.token};
      img.setAttribute("src", url);
      clearTimeout(holdTimer);
      holdTimer = setTimeout(letGo, HOLD_MS);
      live.drawn++;
    } else {
      live.late++;
    }
    requestAnimationFrame(() => requestAnimationFrame(() => {
      const at = (t) => Math.round(t - job.t0);
      live.last = {name, url, first: lead, ms: performance.now() - job.t0, server: timing,
                   strengths: JSON.parse(job.body).strengths,
                   width: probe.naturalWidth,
                   stages: {sent: at(job.sent), answered: at(job.answered),
                            received: at(job.received), decoded: at(job.decoded)}};
      document.dispatchEvent(new CustomEvent("glow-live-drawn", {detail: live.last}));
    }));
  }

  /* The fast picture stops leading: Gradio's newest picture (held back) is shown. */
  function letGo() {
    clearTimeout(holdTimer);
    holdTimer = null;
    if (inFlight || pending) {
      holdTimer = setTimeout(letGo, HOLD_MS);
      return;
    }
    const src = deferred;
    owned = null;
    deferred = null;
    const img = afterImg();
    if (src && img && img.getAttribute("src") === blobUrl) img.setAttribute("src", src);
  }

  /* Gradio set the "after" picture: keep it, or hold it back while the fast path leads. */
  new MutationObserver(() => {
    const img = afterImg();
    const src = img ? img.getAttribute("src") || "" : "";
    if (!owned || !src || src.startsWith("blob:")) return;
    const leads = live.enabled && owned.token === token()
      && (inFlight || pending || owned.body === current());
    if (!leads || frameName(src) === owned.name) { // moved on, or caught up: Gradio's
      clearTimeout(holdTimer);
      holdTimer = null;
      owned = null;
      deferred = null;
      return;
    }
    deferred = src;
    live.held++;
    img.setAttribute("src", blobUrl);
  }).observe(document.documentElement, {subtree: true, attributes: true,
                                       attributeFilter: ["src"]});
})();
