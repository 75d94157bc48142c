// scripts/collab/ot.js: operational transformation for plain text, the page's
// twin of scripts/collab/ot.lua (same operations, same transform, same
// tie-break; spec/collab_spec.lua checks that both give the same answers).
//
// Positions and counts are Unicode code points. JS strings are UTF-16, so
// every position is converted at the edge (cpToIndex / cpLength) and no
// edit ever splits a surrogate pair.
//
// An operation is a list of components applied in order:
//   { pos: P, insert: "text" }   insert text before code point P (0-based)
//   { pos: P, delete: N }        delete N code points starting at P
// transform(a, b): b's inserts go first at a tie (b is the op the server
// committed first).
//
// Loaded by scripts/collab/index.html as a plain script (window.OT) and by
// Node with require() (module.exports).
(function (root) {
  "use strict";

  // Number of code points in s.
  function cpLength(s) {
    let n = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 0xdc00 || c > 0xdfff || i === 0 || !isHigh(s.charCodeAt(i - 1))) n++;
    }
    return n;
  }

  function isHigh(c) { return c >= 0xd800 && c <= 0xdbff; }
  function isLow(c) { return c >= 0xdc00 && c <= 0xdfff; }

  // The UTF-16 index at which code point number cp starts (s.length at the end).
  function cpToIndex(s, cp) {
    let i = 0;
    while (cp > 0 && i < s.length) {
      i += isHigh(s.charCodeAt(i)) && i + 1 < s.length && isLow(s.charCodeAt(i + 1)) ? 2 : 1;
      cp--;
    }
    return i;
  }

  // The code point position of UTF-16 index i.
  function indexToCp(s, i) { return cpLength(s.slice(0, i)); }

  function ins(pos, text) { return { pos: pos, insert: text }; }
  function del(pos, count) { return { pos: pos, delete: count }; }
  function isInsert(c) { return typeof c.insert === "string"; }

  function pastDelete(x, d) {
    if (x <= d.pos) return x;
    if (x >= d.pos + d.delete) return x - d.delete;
    return d.pos;
  }

  // Single components a and b made on the same text -> [a', b'] (lists).
  function transformOne(a, b) {
    if (isInsert(a)) {
      const la = cpLength(a.insert);
      if (isInsert(b)) {
        if (a.pos < b.pos) return [[a], [ins(b.pos + la, b.insert)]];
        return [[ins(a.pos + cpLength(b.insert), a.insert)], [b]];
      }
      const bEnd = b.pos + b.delete;
      if (a.pos <= b.pos) return [[a], [del(b.pos + la, b.delete)]];
      if (a.pos >= bEnd) return [[ins(a.pos - b.delete, a.insert)], [b]];
      return [[ins(b.pos, a.insert)], [del(b.pos, a.pos - b.pos), del(b.pos + la, bEnd - a.pos)]];
    }
    if (isInsert(b)) {
      const r = transformOne(b, a);
      return [r[1], r[0]];
    }
    const aEnd = a.pos + a.delete, bEnd = b.pos + b.delete;
    const lo = Math.max(a.pos, b.pos), hi = Math.min(aEnd, bEnd);
    const overlap = hi > lo ? hi - lo : 0;
    const a2 = [], b2 = [];
    if (a.delete > overlap) a2.push(del(pastDelete(a.pos, b), a.delete - overlap));
    if (b.delete > overlap) b2.push(del(pastDelete(b.pos, a), b.delete - overlap));
    return [a2, b2];
  }

  // The pieces one component has become, past one component b (which may
  // itself split) -> [a' pieces, b' pieces].
  function piecesPast(pieces, b) {
    if (pieces.length === 0) return [pieces, [b]];
    if (pieces.length === 1) return transformOne(pieces[0], b);
    const [head, b1] = transformOne(pieces[0], b);
    let tail = pieces.slice(1);
    const outB = [];
    for (const bb of b1) {
      const r = piecesPast(tail, bb);
      tail = r[0];
      outB.push(...r[1]);
    }
    return [head.concat(tail), outB];
  }

  // transform(a, b) -> [a', b']: a' applies after b, b' after a; same text
  // either way. Arguments are not modified. Component by component (a grid
  // of |a| x |b| pairs), as in ot.lua.
  function transform(a, b) {
    const out = [];
    for (const c of a) {
      let pieces = [c];
      const bNext = [];
      for (const bj of b) {
        const r = piecesPast(pieces, bj);
        pieces = r[0];
        bNext.push(...r[1]);
      }
      out.push(...pieces);
      b = bNext;
    }
    return [out, b];
  }

  // apply(text, op) -> text with op applied.
  function apply(text, op) {
    for (const c of op) {
      const at = cpToIndex(text, c.pos);
      if (isInsert(c)) {
        text = text.slice(0, at) + c.insert + text.slice(at);
      } else {
        const stop = at + cpToIndex(text.slice(at), c.delete);
        text = text.slice(0, at) + text.slice(stop);
      }
    }
    return text;
  }

  // diff(before, after) -> op turning before into after: one contiguous
  // change (delete, then insert), found by the common prefix and suffix,
  // never splitting a surrogate pair. [] when equal.
  function diff(before, after) {
    if (before === after) return [];
    const max = Math.min(before.length, after.length);
    let pre = 0;
    while (pre < max && before.charCodeAt(pre) === after.charCodeAt(pre)) pre++;
    if (pre > 0 && isHigh(before.charCodeAt(pre - 1))) pre--;
    let suf = 0;
    while (suf < max - pre &&
           before.charCodeAt(before.length - 1 - suf) === after.charCodeAt(after.length - 1 - suf)) suf++;
    if (suf > 0 && isLow(before.charCodeAt(before.length - suf))) suf--;
    const removed = before.slice(pre, before.length - suf);
    const added = after.slice(pre, after.length - suf);
    const pos = cpLength(before.slice(0, pre));
    const op = [];
    if (removed.length) op.push(del(pos, cpLength(removed)));
    if (added.length) op.push(ins(pos, added));
    return op;
  }

  // compose(a, b) -> one op doing a then b (for the client's buffer): the
  // lists joined, with the last component of a and the first of b merged
  // when they continue each other (typing, backspacing, forward deleting).
  function compose(a, b) {
    const out = a.slice();
    for (const c of b) {
      const last = out[out.length - 1];
      if (last && isInsert(last) && isInsert(c) &&
          c.pos >= last.pos && c.pos <= last.pos + cpLength(last.insert)) {
        const at = cpToIndex(last.insert, c.pos - last.pos);
        out[out.length - 1] = ins(last.pos, last.insert.slice(0, at) + c.insert + last.insert.slice(at));
      } else if (last && isInsert(last) && !isInsert(c) &&
                 c.pos >= last.pos && c.pos + c.delete <= last.pos + cpLength(last.insert)) {
        const from = cpToIndex(last.insert, c.pos - last.pos);
        const to = cpToIndex(last.insert, c.pos - last.pos + c.delete);
        const text = last.insert.slice(0, from) + last.insert.slice(to);
        if (text) out[out.length - 1] = ins(last.pos, text); else out.pop();
      } else if (last && !isInsert(last) && !isInsert(c) && c.pos + c.delete === last.pos) {
        out[out.length - 1] = del(c.pos, c.delete + last.delete);      // backspace
      } else if (last && !isInsert(last) && !isInsert(c) && c.pos === last.pos) {
        out[out.length - 1] = del(c.pos, c.delete + last.delete);      // forward delete
      } else {
        out.push(c);
      }
    }
    return out;
  }

  // transformIndex(text, index, op) -> the code point position at which a
  // caret at UTF-16 `index` of text lands once op (someone else's) is
  // applied; an insert at the caret pushes it right.
  function transformIndex(text, index, op) {
    let cp = indexToCp(text, index);
    for (const c of op) {
      if (isInsert(c)) {
        if (c.pos <= cp) cp += cpLength(c.insert);
      } else if (cp > c.pos) {
        cp = cp >= c.pos + c.delete ? cp - c.delete : c.pos;
      }
    }
    return cp;
  }

  const OT = { cpLength, cpToIndex, indexToCp, transform, apply, diff, compose, transformIndex };
  if (typeof module === "object" && module.exports) module.exports = OT;
  else root.OT = OT;
})(typeof self !== "undefined" ? self : this);
