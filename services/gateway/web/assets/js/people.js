// Profiles: follow, mute, block; one's own completeness bar with the next step and the profile form; praise received.

import { api } from "./api.js";
import { show, h, toast, uniqueId } from "./dom.js";
import { t } from "./i18n.js";
import { initials, postCard, showErrors } from "./posts.js";

const RELATIONS = [
  ["follow", "following", "follow", "following"],
  ["mute", "muted", "mute", "muted"],
  ["block", "blocked", "block", "blocked"],
];

function relationButton(profile, [relation, key, offLabel, onLabel], repaint) {
  const button = h("button", { type: "button", class: relation === "follow" ? "primary relation" : "relation", "aria-pressed": String(profile[key]) }, t(profile[key] ? onLabel : offLabel));
  button.addEventListener("click", async () => {
    const before = profile[key];
    profile[key] = !before;
    button.setAttribute("aria-pressed", String(profile[key]));
    button.textContent = t(profile[key] ? onLabel : offLabel);
    try {
      const reply = await api(`/people/${encodeURIComponent(profile.id)}/${relation}`, { method: profile[key] ? "PUT" : "DELETE" });
      profile[key] = reply[key];
      if (relation === "follow") profile.followers_count += profile[key] === before ? 0 : profile[key] ? 1 : -1;
      if (relation === "block" && profile.blocked) profile.following = false;
    } catch (error) {
      profile[key] = before;
      toast(t("failed", { reason: error.message }), { error: true });
    }
    repaint(relation);
  });
  return button;
}

function fill(percent) {
  const span = h("span");
  span.style.width = `${percent}%`; // CSSOM, which the page's Content-Security-Policy allows (a style attribute it would not)
  return span;
}

function completenessBar(completeness, focusField) {
  const id = uniqueId("complete");
  return h(
    "section",
    { class: "completeness card", "aria-labelledby": id },
    h("h2", { id }, t("completeness", { n: completeness.percent })),
    h("div", { class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(completeness.percent), "aria-labelledby": id }, fill(completeness.percent)),
    completeness.next_step
      ? h("p", null, h("button", { type: "button", class: "link-button", onclick: () => focusField(completeness.next_step.field) }, t("nextStep", { hint: completeness.next_step.hint })))
      : null,
  );
}

const TEXT_FIELDS = ["title", "department", "location", "photo_url"];
const LIST_FIELDS = ["expertise", "languages"];

function profileForm(profile, saved) {
  const controls = {};
  const row = (name, control, hint) => {
    control.id = `profile-${name}`;
    control.name = name;
    control.dataset.field = name;
    controls[name] = control;
    const hintId = hint ? uniqueId("hint") : null;
    if (hintId) control.setAttribute("aria-describedby", hintId);
    return h("div", { class: "field" }, h("label", { for: control.id }, t(name)), hint ? h("p", { id: hintId, class: "hint" }, hint) : null, control);
  };
  const form = h(
    "form",
    { class: "profile-form card", id: "profile-form" },
    h("h2", null, t("editProfile")),
    ...TEXT_FIELDS.map((name) => row(name, h("input", { type: name === "photo_url" ? "url" : "text", value: profile[name] || "" }))),
    row("bio", h("textarea", { rows: "3" }, profile.bio || "")),
    ...LIST_FIELDS.map((name) => row(name, h("input", { type: "text", value: (profile[name] || []).join(", ") }), t("commaSeparated"))),
    h("button", { type: "submit", class: "primary" }, t("save")),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = {};
    for (const name of [...TEXT_FIELDS, "bio"]) body[name] = controls[name].value.trim() || null;
    for (const name of LIST_FIELDS) body[name] = controls[name].value.split(",").map((s) => s.trim()).filter(Boolean);
    try {
      await api("/me", { method: "PATCH", body });
      showErrors(form, null);
      toast(t("saved"));
      saved();
    } catch (error) {
      if (!showErrors(form, error)) toast(t("failed", { reason: error.message }), { error: true });
    }
  });
  return { form, controls };
}

export async function profileView(params, ctx) {
  const own = params.id === ctx.me.id;
  const [profile, me] = await Promise.all([
    api(`/people/${encodeURIComponent(params.id)}`, { signal: ctx.signal }).catch((error) => {
      if (error.status === 404) return null;
      throw error;
    }),
    own ? api("/me", { signal: ctx.signal }) : null,
  ]);
  if (!profile) {
    show(ctx.main, h("h1", null, t("notFound")));
    return t("notFound");
  }
  const counts = h("p", { class: "muted counts" });
  const relations = h("div", { class: "relations" });
  const paint = (focusRelation) => {
    counts.textContent = `${t("followers", { n: profile.followers_count })} · ${t("followingN", { n: profile.following_count })}`;
    relations.replaceChildren(...RELATIONS.map((r) => relationButton(profile, r, paint)));
    if (focusRelation) relations.querySelector(`.relation:nth-child(${RELATIONS.findIndex((r) => r[0] === focusRelation) + 1})`)?.focus();
  };
  paint();
  const tags = (label, list) => (list && list.length ? h("div", null, h("h2", { class: "small-heading" }, label), h("ul", { class: "tags" }, list.map((x) => h("li", null, x)))) : null);
  const photo = profile.photo_url
    ? h("img", { src: profile.photo_url, alt: "", class: "photo", width: "96", height: "96" })
    : h("span", { class: "avatar big", "aria-hidden": "true" }, initials(profile.name));
  let editing = null;
  if (own) {
    editing = profileForm(profile, () => profileView(params, ctx));
  }
  const praise = h("ul", { class: "feed" });
  show(ctx.main, 
    h(
      "section",
      { class: "profile card" },
      photo,
      h(
        "div",
        null,
        h("h1", null, profile.name),
        profile.title || profile.department ? h("p", null, [profile.title, profile.department].filter(Boolean).join(", ")) : null,
        profile.location ? h("p", { class: "muted" }, profile.location) : null,
        counts,
        own ? null : relations,
      ),
    ),
    own && me.completeness
      ? completenessBar(me.completeness, (field) => {
          const control = editing.controls[field];
          if (control) control.focus();
        })
      : null,
    profile.bio ? h("div", { class: "bio" }, profile.bio) : null,
    tags(t("expertise"), profile.expertise),
    tags(t("languages"), profile.languages),
    tags(t("teams"), profile.teams),
    editing ? editing.form : null,
    h("section", { "aria-labelledby": "praise-title" }, h("h2", { id: "praise-title" }, t("praiseReceived")), praise),
  );
  const received = await api(`/people/${encodeURIComponent(profile.id)}/praise`, { params: { limit: 20 }, signal: ctx.signal });
  praise.replaceChildren(...(received.items.length ? received.items.map((p) => h("li", null, postCard(p))) : [h("li", { class: "muted" }, t("noPraise"))]));
  return profile.name;
}
