// quality review pages (acd/api/qa_pages.py): playback speed, unanswered
// items marked before the form is sent (the server checks again).  Times are
// formatted by the server in the configured zone (statistics.tz), not here.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const audio = document.querySelector("audio");
  const speed = document.querySelector("p.speed");
  if (audio && speed) {
    for (const rate of [1, 1.25, 1.5, 2]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = rate + "×";
      b.addEventListener("click", () => { audio.playbackRate = rate; });
      speed.appendChild(b);
    }
    const back = document.createElement("button");
    back.type = "button";
    back.textContent = "− 5 s";
    back.addEventListener("click", () => { audio.currentTime = Math.max(0, audio.currentTime - 5); });
    speed.appendChild(back);
  }
  const form = document.getElementById("score");
  if (form) {
    form.addEventListener("submit", (ev) => {
      let missing = 0;
      for (const item of form.querySelectorAll(".item")) {
        const answered = item.querySelector("input[type=radio]:checked") !== null;
        item.classList.toggle("unanswered", !answered);
        if (!answered) missing++;
      }
      if (missing > 0 && !confirm(missing + " item(s) not answered: send anyway?")) ev.preventDefault();
    });
  }
});
