// The collaborative editor (scripts/collab/index.html on scripts/collab.lua):
// two pages type into #doc at the same moment at different places; both end
// with the same text holding both edits, and a page opened afterwards gets
// that text as its snapshot; a page whose network drops, an edit of its
// own just made, resumes: it gets the edits made meanwhile and its own
// edit is neither lost nor applied twice.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { startServer, openBrowser, openPage, probeDuplex, probed, waitFor, waitConnected, statusOf, text, value, shoot, withPages } = require("./support");

let srv, browser;
before(async () => {
  srv = await startServer("scripts/collab.lua");
  browser = await openBrowser();
});
after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
});

const doc = (page) => value(page, "#doc");
const number = async (page, selector) => {
  const m = /\d+/.exec((await text(page, selector)) || "");
  return m ? Number(m[0]) : NaN;
};

async function open(name) {
  const page = await openPage(browser, srv.http(`/?name=${name}`));
  await waitConnected(page);
  return page;
}

// placeCaret(page, where): focus #doc with the caret at the start or the end.
function placeCaret(page, where) {
  return page.$eval("#doc", (el, w) => {
    el.focus();
    const at = w === "start" ? 0 : el.value.length;
    el.setSelectionRange(at, at);
  }, where);
}

// settled(pages, text) -> until every page's #doc is `text` and all show the
// same #rev.
async function settled(pages, text) {
  let seen;
  try {
    return await waitFor(async () => {
      const docs = await Promise.all(pages.map(doc));
      const revs = await Promise.all(pages.map((p) => number(p, "#rev")));
      seen = pages.map((p, i) => `${new URL(p.url()).search} rev ${revs[i]}: ${JSON.stringify(docs[i])}`);
      return docs.every((d) => d === text) && revs.every((r) => r === revs[0]) && revs[0];
    }, `every page to hold ${JSON.stringify(text)} at one revision`);
  } catch (err) {
    err.message += `\n  ${(seen || []).join("\n  ")}`;
    throw err;
  }
}

test("concurrent edits at both ends converge on every page, and a late joiner gets the snapshot", withPages("collab", async () => {
  const ada = await open("ada");
  const bob = await open("bob");
  for (const page of [ada, bob]) {
    await waitFor(async () => (await number(page, "#peers")) === 2, `#peers 2 on ${page.url()}`);
  }

  // Ada writes the first line; bob's page receives it.
  await placeCaret(ada, "end");
  await ada.keyboard.type("the middle");
  const rev0 = await settled([ada, bob], "the middle");

  // Both type at once, several keys each, ada at the start, bob at the end:
  // their operations cross on the wire and the server transforms them.
  await Promise.all([placeCaret(ada, "start"), placeCaret(bob, "end")]);
  await Promise.all([
    ada.keyboard.type("ada was here, ", { delay: 15 }),
    bob.keyboard.type(", bob too", { delay: 15 }),
  ]);
  const expected = "ada was here, the middle, bob too";
  const rev = await settled([ada, bob], expected);
  assert.ok(rev > rev0, `the revision grows with the edits (${rev0} -> ${rev})`);
  await shoot(ada, "collab-ada");
  await shoot(bob, "collab-bob");

  // A third page opened afterwards starts from the same snapshot.
  const carol = await open("carol");
  await settled([ada, bob, carol], expected);
  assert.equal(await number(carol, "#rev"), rev);
  for (const page of [ada, bob, carol]) {
    await waitFor(async () => (await number(page, "#peers")) === 3, `#peers 3 on ${page.url()}`);
  }
  await shoot(carol, "collab-carol-late");

  // Deleting converges too: carol removes "ada was here, " with backspaces
  // while bob types in the middle.
  await placeCaret(carol, "start");
  await carol.$eval("#doc", (el) => el.setSelectionRange(14, 14));
  await bob.$eval("#doc", (el) => { el.focus(); const at = el.value.indexOf(", bob"); el.setSelectionRange(at, at); });
  await Promise.all([
    (async () => { for (let i = 0; i < 14; i++) await carol.keyboard.press("Backspace", { delay: 10 }); })(),
    bob.keyboard.type(" part", { delay: 15 }),
  ]);
  await settled([ada, bob, carol], "the middle part, bob too");
  await shoot(carol, "collab-carol");

  for (const page of [ada, bob, carol]) assert.deepEqual(page.errors, [], page.url());
}));

test("a page whose network drops resumes: the edits made meanwhile arrive, its own is kept once",
  withPages("collab-offline", async () => {
    const ada = await openPage(browser, srv.http("/?name=ada"), { init: probeDuplex });
    await waitConnected(ada);
    const bob = await open("bob");
    await placeCaret(bob, "end");
    await bob.keyboard.type("base");
    let expected = (await doc(bob));            // whatever an earlier test left, and "base"
    assert.ok(expected.endsWith("base"));
    await settled([ada, bob], expected);
    for (let round = 1; round <= 3; round++) {
      // Ada types and her network goes at once: her edit may be in flight,
      // committed or not even sent; bob writes while she is away.
      await placeCaret(ada, "start");
      await ada.keyboard.type(`a${round} `);
      await ada.context().setOffline(true);
      await waitFor(async () => (await statusOf(ada)) === "reconnecting…", `ada's #status "reconnecting…" (round ${round})`);
      await placeCaret(bob, "end");
      await bob.keyboard.type(` b${round}`);
      await ada.context().setOffline(false);
      await waitConnected(ada);
      expected = `a${round} ` + expected + ` b${round}`;
      await settled([ada, bob], expected);
    }
    assert.equal(((await text(ada, "#note")) || "").trim(), "", "nothing was dropped, no snapshot reload");
    const kinds = (await probed(ada)).messages.map((m) => JSON.parse(m).type)
      .filter((k) => k === "snapshot" || k === "resumed");
    assert.deepEqual(kinds, ["snapshot", "resumed", "resumed", "resumed"], "one snapshot, then a resume after each drop");
    assert.equal(await ada.$eval("#doc", (el) => el.readOnly), false, "ada may type again");
    await shoot(ada, "collab-offline-ada");
    for (const page of [ada, bob]) assert.deepEqual(page.errors, [], page.url());
  }));
