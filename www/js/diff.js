// Text diffs in UTF-16 code units (a textarea's positions), never splitting a surrogate pair.

const isHigh = (c) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c) => c >= 0xdc00 && c <= 0xdfff;

/** The one splice `{ pos, del, ins }` that turns `before` into `after`. */
export function splice(before, after) {
  const max = Math.min(before.length, after.length);
  let p = 0;
  while (p < max && before.charCodeAt(p) === after.charCodeAt(p)) p++;
  if (p > 0 && isHigh(before.charCodeAt(p - 1))) p--;
  let s = 0;
  while (s < max - p && before.charCodeAt(before.length - 1 - s) === after.charCodeAt(after.length - 1 - s)) s++;
  if (s > 0 && isLow(before.charCodeAt(before.length - s))) s--;
  return { pos: p, del: before.length - p - s, ins: after.slice(p, after.length - s) };
}

export const applySplice = (s, { pos, del, ins }) => s.slice(0, pos) + ins + s.slice(pos + del);

export const isEmpty = (edit) => edit.del === 0 && edit.ins === '';
