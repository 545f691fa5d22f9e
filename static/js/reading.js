// The reading page: one trial at a time through the reader's API (or a dry run's twin).
// The server keeps time; this page only shows it. It never preloads the next image: an image's
// URL is set only when its trial starts, because serving it starts the trial's clock.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("reading-config").textContent);
  const INTERLUDE_MS = 700;
  const RETRIES = 6;

  const image = document.getElementById("trial-image");
  const panel = document.getElementById("panel");
  const panelText = document.getElementById("panel-text");
  const panelButton = document.getElementById("panel-button");
  const phaseLabel = document.getElementById("phase-label");
  const countdown = document.getElementById("countdown");
  const timebarFill = document.getElementById("timebar-fill");
  const message = document.getElementById("message");
  const reason = document.getElementById("reason");
  const callButtons = Array.from(document.querySelectorAll("button.call"));

  let trial = null; // the state of the trial on screen: {token, phase, ...}
  let nextState = null; // the state a call's answer carried: one request fewer per trial
  let accepting = false; // calls allowed (image shown, clock running)
  let paused = false;
  let interludeTimer = null;
  let clockTimer = null;

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // Network errors and server errors are retried with the same body: calls are idempotent per
  // trial, so a retry can never record a call twice.
  async function request(url, options) {
    for (let attempt = 0; ; attempt++) {
      try {
        const response = await fetch(url, Object.assign({ credentials: "same-origin", cache: "no-store" }, options));
        if (response.status < 500 || attempt >= RETRIES) return response;
      } catch (error) {
        if (attempt >= RETRIES) throw error;
      }
      setMessage("Connection trouble; trying again…");
      await sleep(Math.min(4000, 250 * 2 ** attempt));
    }
  }

  function setMessage(text) {
    message.textContent = text || "";
  }

  function showPanel(text, buttonLabel, onButton, tone) {
    panel.hidden = false;
    panel.className = "panel" + (tone ? " " + tone : "");
    panelText.textContent = text;
    panelButton.hidden = !buttonLabel;
    panelButton.textContent = buttonLabel || "";
    panelButton.onclick = onButton || null;
    // Space continues; it must not pause (a reader pressing Space to go on would stop instead).
    panelButton.dataset.space = onButton && onButton !== pause ? "yes" : "no";
  }

  function setAccepting(on) {
    accepting = on;
    callButtons.forEach((button) => (button.disabled = !on));
  }

  function hideImage() {
    image.hidden = true;
    image.removeAttribute("src");
  }

  function stopClock() {
    clearInterval(clockTimer);
    clockTimer = null;
  }

  function startClock(remainingS, limitS) {
    stopClock();
    if (remainingS === null || remainingS === undefined) {
      countdown.textContent = "";
      timebarFill.style.width = "0";
      return;
    }
    const endsAt = performance.now() + remainingS * 1000;
    const tick = () => {
      const left = Math.max(0, (endsAt - performance.now()) / 1000);
      countdown.textContent = left.toFixed(1) + " s";
      countdown.classList.toggle("low", left <= 3);
      timebarFill.style.width = (100 * left) / limitS + "%";
      if (left <= 0) timeUp();
    };
    tick();
    clockTimer = setInterval(tick, 100);
  }

  function phaseText(state) {
    const name = state.phase === "training" ? "Practice" : "Image";
    return `${name} ${state.index} of ${state.total}`;
  }

  function resetInputs() {
    document.querySelectorAll('input[name="confidence"]').forEach((input) => (input.checked = false));
    if (reason) reason.value = "";
    setMessage("");
  }

  async function nextTrial() {
    clearTimeout(interludeTimer);
    if (paused) return;
    showPanel("Loading the next image…");
    let state = nextState;
    nextState = null;
    if (!state) {
      const response = await request(config.sessionUrl, { headers: { Accept: "application/json" } });
      if (!response.ok) {
        showPanel("This study cannot be read now. " + (await detail(response)));
        return;
      }
      state = await response.json();
    }
    if (state.phase === "finished") {
      window.location.assign(config.doneUrl);
      return;
    }
    trial = state;
    phaseLabel.textContent = phaseText(state);
    resetInputs();
    image.onload = () => {
      panel.hidden = true;
      image.hidden = false;
      setAccepting(true);
      startClock(state.remaining_s, state.time_limit_s);
    };
    image.onerror = () => {
      // The token died (its time ran out while the page was away): on to the next trial.
      setAccepting(false);
      setTimeout(nextTrial, 300);
    };
    image.src = state.image_url;
  }

  async function detail(response) {
    try {
      return (await response.json()).detail || "";
    } catch (error) {
      return "";
    }
  }

  function timeUp() {
    if (!accepting) return;
    stopClock();
    setAccepting(false);
    hideImage();
    showPanel("Time is up: this image counts as unanswered.");
    // Wait out the server's grace second, so it has recorded the trial expired when we ask.
    interludeTimer = setTimeout(interlude, (config.graceS + 0.3) * 1000);
  }

  function chosenConfidence() {
    const checked = document.querySelector('input[name="confidence"]:checked');
    return checked ? Number(checked.value) : null;
  }

  async function sendCall(call) {
    if (!accepting) return;
    const confidence = chosenConfidence();
    if (config.askConfidence && confidence === null) {
      setMessage("Choose your confidence (1–5) first.");
      return;
    }
    setAccepting(false);
    stopClock();
    hideImage(); // at once: the call is made, the image has done its work
    showPanel("Saving your call…");
    const body = { token: trial.token, call: call, confidence: confidence, reason: reason ? reason.value : "" };
    let response;
    try {
      response = await request(config.callsUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify(body),
      });
    } catch (error) {
      hideImage();
      showPanel("Your call could not be sent; check the connection.", "Try again", () => location.reload());
      return;
    }
    hideImage();
    if (response.status === 200 || response.status === 201) {
      const result = await response.json();
      nextState = result.next || null;
      setMessage("");
      if (result.truth) {
        const right = result.truth === call;
        showPanel(
          (right ? "Correct: " : "Not quite: ") + `this image is ${result.truth}.`,
          "Next (Space)",
          interlude,
          right ? "correct" : "wrong"
        );
      } else {
        interlude();
      }
    } else if (response.status === 400) {
      setMessage("That call was not accepted: " + JSON.stringify(await response.json()));
      setAccepting(true);
    } else {
      const text = await detail(response);
      showPanel(text || "That image is no longer current.");
      interludeTimer = setTimeout(interlude, 1800);
    }
  }

  function interlude() {
    clearTimeout(interludeTimer);
    hideImage();
    if (paused) {
      showPanel("Paused. Take your time; the clock is not running.", "Continue (Space)", resume);
      return;
    }
    showPanel("Next image…", "Pause (P)", pause);
    interludeTimer = setTimeout(nextTrial, INTERLUDE_MS);
  }

  function pause() {
    paused = true;
    clearTimeout(interludeTimer);
    interlude();
  }

  function resume() {
    paused = false;
    nextTrial();
  }

  callButtons.forEach((button) => button.addEventListener("click", () => sendCall(button.dataset.call)));

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target === reason && event.key !== "Enter") return;
    const key = event.key.toLowerCase();
    if (accepting && (key === "r" || key === "s")) {
      event.preventDefault();
      sendCall(key === "r" ? "real" : "synthetic");
    } else if (accepting && "12345".includes(key) && key.length === 1) {
      const input = document.querySelector(`input[name="confidence"][value="${key}"]`);
      if (input) input.checked = true;
    } else if (key === "p" && !accepting && !paused && trial) {
      pause();
    } else if ((key === " " || key === "enter") && !panel.hidden && !panelButton.hidden && panelButton.dataset.space === "yes") {
      event.preventDefault();
      panelButton.onclick();
    }
  });

  nextTrial();
})();
