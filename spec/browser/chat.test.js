// The chat page (scripts/chat/index.html on scripts/chat.lua): pages in
// their own browser contexts talk in a room; a page in another room hears
// nothing of it; a newcomer (and a member who /joins) gets the history; a
// page whose network drops gets what was said meanwhile when it is back.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startServer, openBrowser, waitFor, waitConnected, statusOf, text, value, shoot, withPages } = require("./support");
const chat = require("./chat_support");

let srv, browser;
before(async () => {
  srv = await startServer("scripts/chat.lua");
  browser = await openBrowser();
});
after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
});

const { texts, typing, waitText, say, barrier } = chat;
const join = (name, room) => chat.join(browser, srv, name, room);

test("two pages in a room chat, see each other type, and a newcomer gets the history", withPages("chat", async () => {
  const ada = await join("ada", "den");
  const bob = await join("bob", "den");
  const carol = await join("carol", "attic");

  await waitText(ada, "#log li.notice", "bob joined");

  await say(ada, "hello from ada");
  await waitText(bob, "#log li.msg", "ada: hello from ada");
  assert.equal(await value(ada, "#text"), "", "the input is cleared after a submit");

  // Bob types without sending: ada sees the indicator.
  await bob.click("#text");
  await bob.keyboard.type("hi ada, this is bo", { delay: 20 });
  await waitFor(async () => (await typing(ada)).includes("bob is typing"), "ada to see bob is typing");
  assert.ok(!(await typing(bob)).includes("bob is typing"), "bob is not told that he types");
  await shoot(ada, "chat-ada-typing");

  // Carol, in another room, got neither the message nor the indicator.
  await barrier(carol, "anyone up here?");
  assert.ok(!(await typing(carol)).includes("bob"), "carol (attic) sees no typing from den");
  const carolLog = await texts(carol, "#log li");
  assert.ok(!carolLog.some((t) => t.includes("hello from ada")), `carol's log: ${JSON.stringify(carolLog)}`);
  assert.ok(!carolLog.some((t) => t.includes("bob joined")), `carol's log: ${JSON.stringify(carolLog)}`);

  // Bob sends: ada sees the message, and the indicator goes.
  await bob.keyboard.type("b");
  await bob.keyboard.press("Enter");
  await waitText(ada, "#log li.msg", "bob: hi ada, this is bob");
  await waitFor(async () => !(await typing(ada)).includes("bob"), "ada's typing indicator to clear");
  await shoot(ada, "chat-ada");
  await shoot(bob, "chat-bob");
  await shoot(carol, "chat-carol-elsewhere");

  // A newcomer to den gets the last messages first, marked as history, in order.
  const dave = await join("dave", "den");
  await waitText(dave, "#log li.msg.history", "bob: hi ada, this is bob");
  const history = await texts(dave, "#log li.msg.history");
  const iAda = history.findIndex((t) => t.includes("ada: hello from ada"));
  const iBob = history.findIndex((t) => t.includes("bob: hi ada, this is bob"));
  assert.ok(iAda >= 0 && iAda < iBob, `dave's history in order: ${JSON.stringify(history)}`);
  assert.ok(!history.some((t) => t.includes("anyone up here?")), "no history from another room");
  await waitText(ada, "#log li.notice", "dave joined");
  await shoot(dave, "chat-dave-history");

  // /join moves carol to den: #room follows, and she gets den's history too.
  await say(carol, "/join den");
  await waitFor(async () => ((await text(carol, "#room")) || "").trim() === "den", "carol's #room to be den");
  await waitText(carol, "#log li.msg.history", "ada: hello from ada");
  await waitText(ada, "#log li.notice", "carol joined");
  await shoot(carol, "chat-carol-joined");

  for (const page of [ada, bob, carol, dave]) assert.deepEqual(page.errors, [], page.url());
}));

test("/nick renames, typing shows and fades, and a leave is announced", withPages("chat", async () => {
  const ada = await join("ada", "porch");
  const bob = await join("bob", "porch");
  await waitText(ada, "#log li.notice", "bob joined");

  await say(bob, "/nick robert");
  await say(bob, "renamed");
  await waitText(ada, "#log li.msg", "robert: renamed");

  // Robert types and stops without sending: the indicator (under his new
  // name) goes away by itself after a few seconds.
  await bob.click("#text");
  await bob.keyboard.type("never mind");
  await waitFor(async () => (await typing(ada)).includes("robert is typing"), "ada to see robert is typing");
  await waitFor(async () => !(await typing(ada)).includes("robert"),
    "ada's typing indicator to fade once robert stops", 10000);

  await bob.context().close();
  await waitText(ada, "#log li.notice", "robert left");
  await shoot(ada, "chat-ada-left");
  assert.deepEqual(ada.errors, []);
}));

test("a page whose network drops gets every message said meanwhile, once, in order, when it is back",
  withPages("chat-offline", async () => {
    const ada = await join("ada", "yard");
    const bob = await join("bob", "yard");
    await waitText(ada, "#log li.notice", "bob joined");
    await barrier(ada, "before the drops");
    await waitText(bob, "#log li.msg", "ada: before the drops");
    const said = ["before the drops"];
    for (let round = 1; round <= 3; round++) {
      await bob.context().setOffline(true);
      await waitFor(async () => (await statusOf(bob)) === "reconnecting…", `bob's #status "reconnecting…" (round ${round})`);
      for (let i = 1; i <= 4; i++) {
        const line = `round ${round}, message ${i}`;
        said.push(line);
        await barrier(ada, line);              // said, and back on ada's page: published
      }
      await bob.context().setOffline(false);
      await waitConnected(bob);
      await waitText(bob, "#log li.msg", `ada: round ${round}, message 4`);
    }
    // Bob's log has each line once, in order, none of them shown as old history.
    const got = (await texts(bob, "#log li.msg")).filter((t) => t.includes("ada: "))
      .map((t) => t.slice(t.indexOf("ada: ") + 5));
    assert.deepEqual(got, said);
    assert.deepEqual(await texts(bob, "#log li.msg.history"), []);
    // And bob's page works again: ada hears him.
    await say(bob, "back for good");
    await waitText(ada, "#log li.msg", "bob: back for good");
    await shoot(bob, "chat-offline-bob");
    assert.deepEqual(ada.errors, []);
    assert.deepEqual(bob.errors, []);
  }));

test("a page without WebSocket chats with a WebSocket page over the fallback (events down, POSTs up)",
  withPages("chat-fallback", async () => {
    const sse = await chat.join(browser, srv, "sal", "porch", { init: () => { delete window.WebSocket; } });
    const web = await chat.join(browser, srv, "wes", "porch");
    assert.equal(await sse.evaluate(() => typeof window.WebSocket), "undefined");
    await waitText(sse, "#log li.notice", "wes joined");
    await say(sse, "hello over events and posts");
    await waitText(web, "#log li.msg", "sal: hello over events and posts");
    await say(web, "hello over a websocket");
    await waitText(sse, "#log li.msg", "wes: hello over a websocket");
    await sse.click("#text");
    await sse.keyboard.type("typing over posts", { delay: 20 });
    await waitFor(async () => (await typing(web)).includes("sal is typing"), "wes to see sal type");
    await shoot(sse, "chat-fallback-sal");
    await shoot(web, "chat-fallback-wes");
    assert.deepEqual(sse.errors, []);
    assert.deepEqual(web.errors, []);
  }));
