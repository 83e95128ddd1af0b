// Headless Chromium for the app's end-to-end tests: Debian's /usr/bin/chromium (CHROMIUM
// overrides it) driven by playwright-core, with the flags every test uses.
import { chromium } from "playwright-core";

/** Launches headless Chromium (no sandbox, no GPU, no background network). */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--no-first-run"],
  });
}
