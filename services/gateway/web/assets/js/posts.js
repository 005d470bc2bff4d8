// A post as a card (like, favourite, who liked), people suggestions for mentions and praise, and the composer.

import { api, ApiError } from "./api.js";
import { h, icon, toast, uniqueId } from "./dom.js";
import { fullDate, names, t, when } from "./i18n.js";

export function personLink(person) {
  return h("a", { href: `/people/${encodeURIComponent(person.id)}`, class: "person" }, person.name);
}

export function initials(name) {
  return (name || "?")
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((w) => w[0].toUpperCase())
    .join("");
}

export function avatar(person) {
  return h("span", { class: "avatar", "aria-hidden": "true" }, initials(person.name));
}

export function timeOf(iso) {
  return h("time", { datetime: iso, title: fullDate(iso) }, when(iso));
}

/** Text with line breaks as paragraphs and @person-id mentions as links to who was mentioned. */
export function richText(text, mentions = []) {
  const byId = new Map(mentions.map((p) => [p.id, p]));
  return text.split(/\n{2,}/).map((para) => {
    const p = h("p");
    const pattern = /(?<![\w@])@([A-Za-z0-9._-]{1,200})/g;
    let last = 0;
    for (const match of para.matchAll(pattern)) {
      let id = match[1];
      while (id && !byId.has(id) && /[._-]$/.test(id)) id = id.slice(0, -1);
      const person = byId.get(id);
      if (!person) continue;
      lines(p, para.slice(last, match.index));
      p.append(h("a", { href: `/people/${encodeURIComponent(id)}`, class: "mention" }, "@" + person.name));
      last = match.index + 1 + id.length;
    }
    lines(p, para.slice(last));
    return p;
  });
}

function lines(p, text) {
  text.split("\n").forEach((line, i) => {
    if (i) p.append(h("br"));
    if (line) p.append(line);
  });
}

export const KINDS = ["post", "question", "idea", "praise"];

/** One-click like or favourite: shown at once, sent, then the exact count from the reply; rolled back on error. */
function reactionButton(post, what) {
  const onKey = what === "like" ? "liked_by_me" : "favourited_by_me";
  const countKey = what === "like" ? "like_count" : "favourite_count";
  const label = h("span", { class: "label" });
  const count = h("span", { class: "count" });
  const button = h("button", { type: "button", class: `react react-${what}` }, icon(what === "like" ? "heart" : "star"), label, count);
  let latest = 0;
  const paint = () => {
    button.setAttribute("aria-pressed", String(Boolean(post[onKey])));
    label.textContent = t(what);
    count.textContent = String(post[countKey]);
    button.dispatchEvent(new CustomEvent("reaction-painted", { bubbles: true }));
  };
  button.addEventListener("click", async () => {
    const before = { on: post[onKey], count: post[countKey] };
    post[onKey] = !before.on;
    post[countKey] = Math.max(0, before.count + (post[onKey] ? 1 : -1));
    paint();
    const mine = ++latest;
    try {
      const reply = await api(`/posts/${post.id}/${what}`, { method: post[onKey] ? "PUT" : "DELETE" });
      if (mine !== latest) return;
      post[onKey] = what === "like" ? reply.liked : reply.favourited;
      post[countKey] = reply[countKey];
    } catch (error) {
      if (mine !== latest) return;
      post[onKey] = before.on;
      post[countKey] = before.count;
      toast(t("failed", { reason: error.message }), { error: true });
    }
    paint();
  });
  paint();
  return button;
}

function whoLiked(post) {
  const listId = uniqueId("likers");
  const list = h("div", { id: listId, class: "likers", hidden: true });
  const button = h("button", { type: "button", class: "link-button", "aria-expanded": "false", "aria-controls": listId }, t("whoLiked"));
  button.addEventListener("click", async () => {
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    list.hidden = !open;
    if (!open) return;
    list.replaceChildren(h("p", { class: "muted" }, t("loading")));
    try {
      const page = await api(`/posts/${post.id}/likes`, { params: { limit: 50 } });
      list.replaceChildren(
        page.items.length
          ? h("p", null, t("likedBy") + ": ", ...page.items.flatMap((p, i) => [i ? ", " : "", personLink(p)]))
          : h("p", { class: "muted" }, t("empty")),
      );
    } catch (error) {
      list.replaceChildren(h("p", { class: "error" }, error.message));
    }
  });
  return { button, list };
}

function reasonLine(entry) {
  if (!entry) return null;
  if (entry.reason === "liked_by_followed") {
    const shown = entry.actors.slice(0, 2);
    const rest = entry.actor_count - shown.length;
    const who = rest > 0 ? t("andOthers", { first: shown.map((p) => p.name).join(", "), n: rest }) : names(shown);
    return h("p", { class: "reason" }, icon("heart"), " ", t("likedThis", { names: who }));
  }
  if (entry.reason === "trending") return h("p", { class: "reason" }, t("backedBy", { n: entry.actor_count }));
  return null;
}

/** A post as an <article>; `entry` is the feed entry it came in (why it is in the feed). */
export function postCard(post, { entry = null, full = false } = {}) {
  const headingId = uniqueId("post");
  const permalink = `/posts/${post.id}`;
  const kindBadge = post.kind !== "post" ? h("span", { class: `badge badge-${post.kind}` }, t(`kind_${post.kind}`)) : null;
  const { button: likersButton, list: likers } = whoLiked(post);
  const comments = post.comment_count === 1 ? t("comment1") : t("commentsN", { n: post.comment_count });
  const article = h(
    "article",
    { class: "post", "aria-labelledby": headingId, dataset: { postId: post.id } },
    reasonLine(entry),
    h(
      "header",
      { class: "post-head" },
      avatar(post.author),
      h("div", null,
        h("h3", { id: headingId, class: "post-author" }, personLink(post.author), kindBadge ? " " : null, kindBadge),
        h("a", { href: permalink, class: "post-time" }, timeOf(post.created_at)),
      ),
    ),
    post.recipients && post.recipients.length
      ? h("p", { class: "praise-for" }, t("praiseFor", { names: "" }), ...post.recipients.flatMap((p, i) => [i ? ", " : "", personLink(p)]))
      : null,
    h("div", { class: "post-body" }, richText(post.body, post.mentions)),
    post.kind === "campaign" ? h("p", null, h("a", { href: `/campaigns/${post.id}` }, t("openCampaign"))) : null,
    post.campaign_id ? h("p", null, h("a", { href: `/campaigns/${post.campaign_id}` }, t("openCampaign"))) : null,
    post.hidden_reason ? h("p", { class: "error" }, post.hidden_reason) : null,
    h(
      "footer",
      { class: "actions" },
      reactionButton(post, "like"),
      reactionButton(post, "favourite"),
      full ? null : h("a", { href: permalink + "#comments", class: "comments-link" }, icon("comment"), " ", comments),
      likersButton,
    ),
    likers,
  );
  return article;
}

/**
 * People suggestions under a text field (a combobox with a listbox): `query(field)` says what to look up (or
 * null), `choose(person)` takes the pick. Arrow keys move, Enter picks, Escape closes.
 */
export function suggestPeople(field, { query, choose }) {
  const listId = uniqueId("suggest");
  const list = h("ul", { id: listId, role: "listbox", class: "suggest", hidden: true, "aria-label": t("suggestions") });
  field.setAttribute("role", "combobox");
  field.setAttribute("aria-autocomplete", "list");
  field.setAttribute("aria-expanded", "false");
  field.setAttribute("aria-controls", listId);
  let people = [];
  let active = -1;
  let timer = null;
  let asked = 0;

  const close = () => {
    people = [];
    active = -1;
    list.hidden = true;
    list.replaceChildren();
    field.setAttribute("aria-expanded", "false");
    field.removeAttribute("aria-activedescendant");
  };
  const paint = () => {
    list.replaceChildren(
      ...people.map((hit, i) =>
        h(
          "li",
          {
            id: `${listId}-${i}`,
            role: "option",
            "aria-selected": String(i === active),
            class: i === active ? "active" : null,
            onmousedown: (e) => {
              e.preventDefault();
              pick(i);
            },
          },
          h("span", { class: "name" }, hit.person.name),
          hit.title ? h("span", { class: "muted" }, " · " + hit.title) : null,
        ),
      ),
    );
    list.hidden = people.length === 0;
    field.setAttribute("aria-expanded", String(people.length > 0));
    if (active >= 0) field.setAttribute("aria-activedescendant", `${listId}-${active}`);
    else field.removeAttribute("aria-activedescendant");
  };
  const pick = (i) => {
    const hit = people[i];
    close();
    if (hit) choose(hit.person);
  };
  field.addEventListener("input", () => {
    const q = query(field);
    clearTimeout(timer);
    if (!q) return close();
    timer = setTimeout(async () => {
      const mine = ++asked;
      try {
        const page = await api("/search", { params: { q, type: "people", limit: 6 } });
        if (mine !== asked) return;
        people = page.items;
        active = people.length ? 0 : -1;
        paint();
      } catch {
        close();
      }
    }, 120);
  });
  field.addEventListener("keydown", (e) => {
    if (list.hidden) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      active = (active + (e.key === "ArrowDown" ? 1 : -1) + people.length) % people.length;
      paint();
    } else if (e.key === "Enter" && active >= 0) {
      e.preventDefault();
      pick(active);
    } else if (e.key === "Escape") {
      e.preventDefault();
      close();
    }
  });
  field.addEventListener("blur", () => setTimeout(close, 150));
  return list;
}

/** A textarea that completes @mentions from GET /api/search?type=people; it inserts `@person-id `. */
export function mentionArea(attrs) {
  const area = h("textarea", attrs);
  let start = -1;
  const list = suggestPeople(area, {
    query: (field) => {
      const before = field.value.slice(0, field.selectionStart);
      const match = before.match(/(?:^|[^\w@])@([\p{L}\p{N}._-]{1,40})$/u);
      if (!match) return null;
      start = before.length - match[1].length - 1;
      return match[1];
    },
    choose: (person) => {
      const caret = area.selectionStart;
      const inserted = `@${person.id} `;
      area.value = area.value.slice(0, start) + inserted + area.value.slice(caret);
      const at = start + inserted.length;
      area.setSelectionRange(at, at);
      area.focus();
    },
  });
  return h("div", { class: "suggest-wrap" }, area, list);
}

/** Show a 422's field messages next to the fields; returns whether any was shown. */
export function showErrors(form, error) {
  for (const old of form.querySelectorAll(".field-error")) old.remove();
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  if (!(error instanceof ApiError) || !error.problem.errors) return false;
  let shown = false;
  for (const e of error.problem.errors) {
    const name = e.field.split(".").slice(1).join(".") || e.field;
    const field = form.querySelector(`[data-field="${name.split(".")[0]}"]`);
    if (!field) continue;
    const id = uniqueId("err");
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", [field.getAttribute("aria-describedby"), id].filter(Boolean).join(" "));
    field.insertAdjacentElement("afterend", h("p", { id, class: "field-error" }, e.message));
    shown = true;
  }
  return shown;
}

function labelled(labelText, control, hint) {
  const id = control.id || uniqueId("f");
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, labelText), hint, control);
}

/** The composer: every kind a person writes, an audience, recipients for praise. Calls `posted(post)`. */
export function composer({ teams, posted }) {
  const formId = uniqueId("composer");
  const bodyId = uniqueId("body");
  const hintId = uniqueId("hint");
  const body = mentionArea({ id: bodyId, name: "body", rows: "3", required: true, "data-field": "body", "aria-describedby": hintId, maxlength: "10000" });
  const kinds = h(
    "fieldset",
    { class: "kinds", "data-field": "kind" },
    h("legend", null, t("kind")),
    ...KINDS.map((kind, i) => {
      const id = `${formId}-kind-${kind}`;
      return h("span", { class: "choice" }, h("input", { type: "radio", name: "kind", value: kind, id, checked: i === 0 }), h("label", { for: id }, t(`kind_${kind}`)));
    }),
  );
  const audience = h(
    "select",
    { name: "audience", "data-field": "audience" },
    h("option", { value: "everyone" }, t("aud_everyone")),
    h("option", { value: "followers" }, t("aud_followers")),
    ...teams.map((team) => h("option", { value: `team:${team}` }, t("aud_team", { team }))),
    h("option", { value: "private" }, t("aud_private")),
  );
  const chosen = new Map();
  const chips = h("ul", { class: "chips", "aria-live": "polite" });
  const recipientInput = h("input", { type: "text", autocomplete: "off", "data-field": "recipients" });
  const paintChips = () =>
    chips.replaceChildren(
      ...[...chosen.values()].map((p) =>
        h("li", { class: "chip" }, p.name, " ", h("button", { type: "button", class: "chip-remove", "aria-label": t("remove", { name: p.name }), onclick: () => { chosen.delete(p.id); paintChips(); recipientInput.focus(); } }, "×")),
      ),
    );
  const suggestions = suggestPeople(recipientInput, {
    query: (field) => (field.value.trim().length >= 1 ? field.value.trim() : null),
    choose: (person) => {
      chosen.set(person.id, person);
      recipientInput.value = "";
      paintChips();
    },
  });
  const recipientHint = uniqueId("hint");
  recipientInput.setAttribute("aria-describedby", recipientHint);
  const recipients = h(
    "div",
    { class: "recipients", hidden: true },
    labelled(t("recipients"), recipientInput, h("p", { id: recipientHint, class: "hint" }, t("recipientsHint"))),
    h("div", { class: "suggest-wrap" }, suggestions),
    chips,
  );
  const submit = h("button", { type: "submit", class: "primary" }, t("publish"));
  const form = h(
    "form",
    { class: "composer card", id: formId, "aria-labelledby": `${formId}-title` },
    h("h2", { id: `${formId}-title`, class: "composer-title" }, t("compose")),
    h("label", { for: bodyId, class: "visually-hidden" }, t("composeLabel")),
    body,
    h("p", { id: hintId, class: "hint" }, t("mentionHint")),
    h("div", { class: "composer-row" }, kinds, labelled(t("audience"), audience)),
    recipients,
    h("div", { class: "composer-row end" }, submit),
  );
  body.querySelector("textarea").placeholder = t("composeLabel");
  form.addEventListener("change", () => {
    recipients.hidden = form.elements.kind.value !== "praise";
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const kind = form.elements.kind.value;
    const [type, team] = audience.value.split(":");
    const payload = { body: form.elements.body.value, kind, audience: team ? { type, team } : { type } };
    if (kind === "praise") payload.recipients = [...chosen.keys()];
    submit.disabled = true;
    try {
      const post = await api("/posts", { method: "POST", body: payload });
      showErrors(form, null);
      form.elements.body.value = "";
      chosen.clear();
      paintChips();
      toast(t("published"));
      posted(post);
    } catch (error) {
      if (!showErrors(form, error)) toast(t("failed", { reason: error.message }), { error: true });
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
