// The reading page: one trial at a time through the reader's API (or a dry run's twin).
// The server keeps time; this page only shows it. It never preloads the next image: an image's
// URL is set only when its trial starts, because serving it starts the trial's clock.
// Images are shown pixel-true: each image pixel as k × k screen pixels, k a whole number,
// nearest neighbour (CSS image-rendering: pixelated), recomputed when the window or zoom changes.
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
  const stage = document.getElementById("stage");
  const scaleLabel = document.getElementById("scale-label");
  const fullScreenButton = document.getElementById("full-screen-button");
  const announcer = document.getElementById("countdown-announcer");
  const check = document.getElementById("display-check");
  const checkImage = document.getElementById("display-check-image");
  const checkFrame = document.getElementById("display-check-frame");
  const checkQuestion = document.getElementById("display-check-question");
  const checkAdvice = document.getElementById("display-check-advice");
  const checkAdviceText = document.getElementById("display-check-advice-text");
  const adviceTexts = JSON.parse(document.getElementById("display-check-advice-texts").textContent);
  const ANNOUNCED_AT_S = [5, 1]; // a screen reader hears the countdown at these seconds only

  let trial = null; // the state of the trial on screen: {token, phase, ...}
  let nextState = null; // the state a call's answer carried: one request fewer per trial
  let accepting = false; // calls allowed (image shown, clock running)
  let paused = false;
  let interludeTimer = null;
  let clockTimer = null;
  let checking = false; // the display check is on screen
  let scaleFactor = null; // k of the image on screen

  // k = the largest whole number with k × matrix ≤ min(display size × device pixel ratio, the
  // window's size in device pixels); at least 1.
  function pixelTrueScale(matrix) {
    const ratio = window.devicePixelRatio || 1;
    const room = Math.min(config.displaySizePx * ratio, window.innerWidth * ratio, window.innerHeight * ratio);
    return Math.max(1, Math.floor((room + 1e-6) / matrix));
  }

  // Shows an image as k × k screen pixels per image pixel, centred in its frame, its edges on
  // screen pixels. Layout rounds sizes and offsets to 1/64 CSS pixel, which misses the screen's
  // grid at ratios like 1.25 or 1.1 (the browser then blends the edge and resamples unevenly), so
  // the image is laid out at its natural size at the viewport's origin (position: fixed) and
  // placed by a transform alone, whose numbers are not rounded. A frame without a size of its own
  // (the display check's) is given the image's.
  function showPixelTrue(element, frame) {
    const matrix = element.naturalWidth;
    if (!matrix) return null;
    const ratio = window.devicePixelRatio || 1;
    const k = pixelTrueScale(matrix);
    const width = (k * matrix) / ratio;
    const height = (k * element.naturalHeight) / ratio;
    if (frame.dataset.sized === "image") {
      frame.style.width = width + "px";
      frame.style.height = height + "px";
    }
    element.style.width = matrix + "px";
    element.style.height = element.naturalHeight + "px";
    const box = frame.getBoundingClientRect();
    const onGrid = (css) => Math.round(css * ratio) / ratio;
    const left = onGrid(box.left + (box.width - width) / 2);
    const top = onGrid(box.top + (box.height - height) / 2);
    element.style.transform = `translate(${left}px, ${top}px) scale(${k / ratio})`;
    return k;
  }

  function rescale() {
    if (checking) showPixelTrue(checkImage, checkFrame);
    if (!image.hidden && image.naturalWidth) {
      scaleFactor = showPixelTrue(image, stage);
      scaleLabel.textContent = "×" + scaleFactor;
    }
  }

  // Browser zoom changes the device pixel ratio (and fires "resize"); a window moved to another
  // screen changes it without one: a look twice a second catches that (and emulated changes).
  let lastRatio = window.devicePixelRatio;
  setInterval(() => {
    if (window.devicePixelRatio === lastRatio) return;
    lastRatio = window.devicePixelRatio;
    rescale();
  }, 500);
  window.addEventListener("resize", rescale);
  window.addEventListener("scroll", rescale, { passive: true }); // the image is fixed to the viewport
  new ResizeObserver(rescale).observe(document.body); // anything above the frame moved it

  function isFullScreen() {
    return document.fullscreenElement !== null && document.fullscreenElement !== undefined;
  }

  // Full screen takes the whole reading area (black surround); leaving it, by button, F or Esc,
  // changes nothing else: the trial's clock is the server's and runs on.
  function toggleFullScreen() {
    const readingArea = document.querySelector("main");
    if (isFullScreen()) {
      document.exitFullscreen();
    } else if (readingArea.requestFullscreen) {
      readingArea.requestFullscreen().catch(() => setMessage("Full screen is not available here."));
    } else {
      setMessage("This browser has no full screen; its own (F11) does as well.");
    }
  }
  document.addEventListener("fullscreenchange", () => {
    fullScreenButton.setAttribute("aria-pressed", String(isFullScreen()));
    fullScreenButton.lastChild.textContent = isFullScreen() ? " Leave full screen" : " Full screen";
    rescale();
  });
  fullScreenButton.addEventListener("click", toggleFullScreen);

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
    announcer.textContent = "";
    if (remainingS === null || remainingS === undefined) {
      countdown.textContent = "";
      timebarFill.style.width = "0";
      return;
    }
    const endsAt = performance.now() + remainingS * 1000;
    // Only marks still ahead are spoken: a reload at 3 s left does not announce 5.
    const toAnnounce = ANNOUNCED_AT_S.filter((mark) => mark < remainingS);
    const tick = () => {
      const left = Math.max(0, (endsAt - performance.now()) / 1000);
      countdown.textContent = left.toFixed(1) + " s";
      if (toAnnounce.length && left <= toAnnounce[0]) {
        const mark = toAnnounce.shift();
        announcer.textContent = mark === 1 ? "1 second left" : `${mark} seconds left`;
      }
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
    if (state.display_check_needed) {
      showDisplayCheck(state);
      return;
    }
    trial = state;
    phaseLabel.textContent = phaseText(state);
    resetInputs();
    image.onload = () => {
      panel.hidden = true;
      image.hidden = false;
      rescale();
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
    const body = {
      token: trial.token,
      call: call,
      confidence: confidence,
      reason: reason ? reason.value : "",
      scale_factor: scaleFactor, // how the image was on screen at the call
      full_screen: isFullScreen(),
    };
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

  // The display check, once per session before the first image (TG18's idea: can the reader see
  // a dark grey on black and a light grey on white?). Whatever the answer, the reader may go on;
  // the answer and the screen are recorded with the session.
  function showDisplayCheck(state) {
    checking = true;
    stage.hidden = true;
    phaseLabel.textContent = "Display check";
    checkQuestion.hidden = false;
    checkAdvice.hidden = true;
    check.hidden = false;
    const focusFirst = () => {
      showPixelTrue(checkImage, checkFrame);
      check.querySelector("button[data-answer]").focus();
    };
    if (checkImage.complete) focusFirst();
    else checkImage.addEventListener("load", focusFirst, { once: true });
    check.querySelectorAll("button[data-answer]").forEach((button) => {
      button.onclick = () => answerDisplayCheck(button.dataset.answer, state);
    });
  }

  function answerDisplayCheck(answer, state) {
    if (answer === "both_seen") {
      recordDisplayCheck(answer, state);
      return;
    }
    checkQuestion.hidden = true;
    checkAdvice.hidden = false;
    checkAdviceText.textContent = adviceTexts[answer];
    document.getElementById("display-check-again").onclick = () => showDisplayCheck(state);
    const goOn = document.getElementById("display-check-go-on");
    goOn.onclick = () => recordDisplayCheck(answer, state);
    goOn.focus();
  }

  async function recordDisplayCheck(answer, state) {
    const body = {
      screen_width_px: window.screen.width,
      screen_height_px: window.screen.height,
      window_width_px: window.innerWidth,
      window_height_px: window.innerHeight,
      device_pixel_ratio: window.devicePixelRatio || 1,
      display_check: answer,
    };
    const response = await request(config.viewingUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      setMessage("The display check could not be saved: " + (await detail(response)));
      return;
    }
    checking = false;
    check.hidden = true;
    stage.hidden = false;
    nextState = Object.assign({}, state, { display_check_needed: false });
    nextTrial();
  }

  callButtons.forEach((button) => button.addEventListener("click", () => sendCall(button.dataset.call)));

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target === reason && event.key !== "Enter") return;
    const key = event.key.toLowerCase();
    if (key === "f") {
      event.preventDefault();
      toggleFullScreen();
      return;
    }
    if (checking) return; // the check's buttons take Tab, Enter and Space as any button does
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
