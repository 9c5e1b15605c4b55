// The web worker the ALTCHA widget solves the queue's challenge in: the widget's own PBKDF2
// worker (altcha-pbkdf2.js, vendored unchanged), with every try counted and told to the
// page over a BroadcastChannel, at most ten times a second. The widget's worker says nothing
// until it finds the key; the count is what the queue page's progress bar shows.
"use strict";

(() => {
  const channel = new BroadcastChannel("ticketing.altcha-progress");
  const subtle = self.crypto.subtle;
  const derive = subtle.deriveKey.bind(subtle);
  let tries = 0;
  let told = 0;
  subtle.deriveKey = (...args) => {
    tries += 1;
    const now = performance.now();
    if (now - told >= 100) {
      channel.postMessage(tries);
      tries = 0;
      told = now;
    }
    return derive(...args);
  };
})();

importScripts("/static/altcha-pbkdf2.js");
