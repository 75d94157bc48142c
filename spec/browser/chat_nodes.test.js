// The chat page across two nodes: two `duplex run scripts/chat.lua`
// processes joined by a real redis-server of this test's own (startRedis).
// Ada's page is served by node A, bob's by node B: they see each other in
// the member list, talk both ways, see each other type; a page in another
// room on B hears nothing of it; a newcomer on B gets the history said on A
// (kept in Redis); and when bob's page closes ada's member list drops him
// at once (a closed WebSocket leaves its presence, it does not expire).
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startServer, startRedis, openBrowser, waitFor, text, shoot, withPages } = require("./support");

// Redis forgets a member whose node stopped refreshing it after
// presence_ttl (15 s by default): a leave seen well before that came from
// the close itself.
const PRESENCE_TTL_MS = 15000;
const LEAVE_TIMEOUT = 10000;

let redis, nodeA, nodeB, browser;
before(async () => {
  redis = await startRedis();
  // Each node keeps its default name (host:pid), as in a deployment.
  nodeA = await startServer("scripts/chat.lua", { args: ["--broker", redis.url] });
  nodeB = await startServer("scripts/chat.lua", { args: ["--broker", redis.url] });
  browser = await openBrowser();
});
after(async () => {
  // Every step runs and every failure is reported: the browser, then both
  // servers at once (each must exit 0 with a clean stderr, Redis still
  // there), then Redis.
  const results = [];
  if (browser) results.push(...await Promise.allSettled([browser.close()]));
  results.push(...await Promise.allSettled([nodeA, nodeB].filter(Boolean).map((srv) => srv.stop())));
  if (redis) results.push(...await Promise.allSettled([redis.stop()]));
  const errors = results.filter((r) => r.status === "rejected").map((r) => r.reason);
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new Error(errors.map((e) => e.message).join("\n---\n"));
});

const chat = require("./chat_support");
const { texts, typing, waitText, say, barrier } = chat;
const join = (srv, name, room) => chat.join(browser, srv, name, room);

// members(page) -> the names in #members, sorted ("2 here: ada, bob";
// "1 here" is the page alone, whose name is in #who).
async function members(page) {
  const shown = ((await text(page, "#members")) || "").trim();
  const m = /^(\d+) here(?:: (.*))?$/.exec(shown);
  if (!m) return null;
  const names = m[2] ? m[2].split(", ") : [((await text(page, "#who")) || "").replace(/^as /, "")];
  assert.equal(names.length, Number(m[1]), `#members counts its names: ${JSON.stringify(shown)}`);
  return names.sort();
}

// waitMembers(page, names [, timeout]): until #members lists exactly names.
async function waitMembers(page, names, timeout) {
  const want = JSON.stringify([...names].sort());
  let shown;
  await waitFor(async () => { shown = await members(page); return JSON.stringify(shown) === want; },
    `${page.label}'s #members to be ${want}`, timeout)
    .catch((err) => { err.message += ` (it shows ${JSON.stringify(shown)})`; throw err; });
}

test("pages on two nodes share a room through Redis: members, messages both ways, history, leave",
  withPages("chat-nodes", async () => {
    const ada = await join(nodeA, "ada", "den");
    const bob = await join(nodeB, "bob", "den");
    const carol = await join(nodeB, "carol", "attic");

    // Each sees the other: bob in his welcome (presence asked of Redis),
    // ada by bob's join, told by node A.
    await waitMembers(bob, ["ada", "bob"]);
    await waitMembers(ada, ["ada", "bob"]);
    await waitText(ada, "#log li.notice", "bob joined");
    // Each page hears its own join too, after its welcome (which clears
    // the log): both are the first of den on their node.
    await waitText(ada, "#log li.notice", "ada joined");
    await waitText(bob, "#log li.notice", "bob joined");

    // A message said on A reaches B, and one said on B reaches A; each
    // speaker gets its own back too.
    await say(ada, "hello from node A");
    await waitText(bob, "#log li.msg", "ada: hello from node A");
    await waitText(ada, "#log li.msg", "ada: hello from node A");
    await say(bob, "hello from node B");
    await waitText(ada, "#log li.msg", "bob: hello from node B");
    await waitText(bob, "#log li.msg", "bob: hello from node B");

    // Typing crosses nodes too (and is not told to the typist).
    await bob.click("#text");
    await bob.keyboard.type("still here", { delay: 20 });
    await waitFor(async () => (await typing(ada)).includes("bob is typing"), "ada (node A) to see bob is typing");
    assert.ok(!(await typing(bob)).includes("bob is typing"), "bob is not told that he types");
    await bob.fill("#text", "");
    await shoot(ada, "chat-nodes-ada");
    await shoot(bob, "chat-nodes-bob");

    // Carol, on node B in another room, heard nothing of den: node B had
    // passed both messages on to bob before her barrier came back.
    await barrier(carol, "anyone up here?");
    const carolLog = await texts(carol, "#log li");
    for (const needle of ["hello from node A", "hello from node B", "ada joined", "bob joined"]) {
      assert.ok(!carolLog.some((t) => t.includes(needle)), `carol's log has no ${JSON.stringify(needle)}: ${JSON.stringify(carolLog)}`);
    }
    assert.ok(!(await typing(carol)).includes("bob"), "carol (attic) sees no typing from den");
    assert.deepEqual(await members(carol), ["carol"]);
    assert.deepEqual(await members(ada), ["ada", "bob"], "ada's den has no carol");
    await shoot(carol, "chat-nodes-carol-elsewhere");

    // A newcomer on node B gets den's history, said on both nodes, from
    // Redis: marked as history, in order, nothing from the attic.
    const dave = await join(nodeB, "dave", "den");
    await waitText(dave, "#log li.msg.history", "bob: hello from node B");
    const history = await texts(dave, "#log li.msg.history");
    const iAda = history.findIndex((t) => t.includes("ada: hello from node A"));
    const iBob = history.findIndex((t) => t.includes("bob: hello from node B"));
    assert.ok(iAda >= 0 && iAda < iBob, `dave's history in order: ${JSON.stringify(history)}`);
    assert.ok(!history.some((t) => t.includes("anyone up here?")), "no history from another room");
    await waitMembers(dave, ["ada", "bob", "dave"]);
    await waitMembers(ada, ["ada", "bob", "dave"]);
    await waitText(ada, "#log li.notice", "dave joined");
    await waitText(dave, "#log li.notice", "dave joined");
    const daveLog = await texts(dave, "#log li");
    assert.ok(daveLog.findIndex((t) => t.includes("dave joined")) > daveLog.findIndex((t) => t.includes("bob: hello from node B")),
      `dave's own join comes after his history: ${JSON.stringify(daveLog)}`);
    await shoot(dave, "chat-nodes-dave-history");

    // Bob's page closes: his WebSocket's close takes him out of den's
    // presence in Redis at once, and node A tells ada. Expiry would take
    // presence_ttl at least, longer than this wait.
    const closedAt = Date.now();
    await bob.context().close();
    await waitText(ada, "#log li.notice", "bob left", "ada to be told bob left", LEAVE_TIMEOUT);
    await waitMembers(ada, ["ada", "dave"], LEAVE_TIMEOUT);
    const took = Date.now() - closedAt;
    assert.ok(took < PRESENCE_TTL_MS, `bob's leave took ${took} ms: by expiry, not by the close`);
    await waitMembers(dave, ["ada", "dave"]);
    await shoot(ada, "chat-nodes-ada-bob-left");

    for (const page of [ada, bob, carol, dave]) assert.deepEqual(page.errors, [], page.label);
  }));
