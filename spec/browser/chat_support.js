// spec/browser/chat_support.js: what the tests of the chat page share
// (spec/browser/chat.test.js, one server; chat_nodes.test.js, two).
//
//   const chat = require("./chat_support");
//   const ada = await chat.join(browser, srv, "ada", "den");
//   await chat.say(ada, "hello");
//   await chat.waitText(bob, "#log li.msg", "ada: hello");
"use strict";

const { openPage, waitFor, waitConnected, text } = require("./support");

const texts = (page, selector) => page.$$eval(selector, (els) => els.map((e) => e.textContent));
const typing = async (page) => (await text(page, "#typing")) || "";

// waitText(page, selector, needle [, what [, timeout]]): until an element
// matching selector has needle in its text.
function waitText(page, selector, needle, what, timeout) {
  return waitFor(async () => (await texts(page, selector)).some((t) => t.includes(needle)),
    what || `${selector} containing ${JSON.stringify(needle)} on ${page.label}'s page`, timeout);
}

// join(browser, srv, name, room [, o]) -> a page of srv's chat, connected
// and in room; o is openPage's (o.init runs before the page's scripts).
async function join(browser, srv, name, room, o) {
  const page = await openPage(browser, srv.http(`/?name=${name}&room=${room}`), o);
  await waitConnected(page);
  await waitFor(async () => ((await text(page, "#room")) || "").trim() === room, `#room "${room}" for ${name}`);
  return page;
}

// say(page, text): type into #text and submit the form with Enter.
async function say(page, line) {
  await page.click("#text");
  await page.keyboard.type(line);
  await page.keyboard.press("Enter");
}

// barrier(page, text): the page says text and waits for it to come back:
// its server sends one connection's messages in order, so whatever that
// server had for this page before is on it by then.
async function barrier(page, line) {
  await say(page, line);
  await waitText(page, "#log li.msg", line);
}

module.exports = { texts, typing, waitText, join, say, barrier };
