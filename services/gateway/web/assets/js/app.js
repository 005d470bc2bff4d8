// Boot, the header and the router: History API routes drawn into <main>; the gateway serves index.html for each.

import { api, claims, devSignIn, devUsers, setToken, token, whenUnauthorised } from "./api.js";
import { show, h, icon, toast } from "./dom.js";
import { chooseLanguage, t } from "./i18n.js";
import { Inbox, notificationsView, settingsView } from "./inbox.js";
import { feedView } from "./feed.js";
import { postView } from "./post.js";
import { profileView } from "./people.js";
import { campaignsView, campaignView, insightView, leaderboardsView, qnaView } from "./leaders.js";

const ROUTES = [
  [/^\/$/, (p, ctx) => feedView(p, ctx, { kind: "home" })],
  [/^\/trending$/, (p, ctx) => feedView(p, ctx, { kind: "trending" })],
  [/^\/favourites$/, (p, ctx) => feedView(p, ctx, { kind: "favourites" })],
  [/^\/teams\/(?<team>[^/]+)$/, (p, ctx) => feedView(p, ctx, { kind: "team", team: p.team })],
  [/^\/posts\/(?<id>[^/]+)$/, postView],
  [/^\/people\/(?<id>[^/]+)$/, profileView],
  [/^\/campaigns$/, campaignsView],
  [/^\/campaigns\/(?<id>[^/]+)$/, campaignView],
  [/^\/qna\/(?<id>[^/]+)$/, qnaView],
  [/^\/notifications$/, notificationsView],
  [/^\/settings\/notifications$/, settingsView],
  [/^\/leaderboards$/, leaderboardsView],
  [/^\/insight$/, insightView],
];

const main = document.getElementById("main");
const top = document.getElementById("top");
const ctx = { me: null, profile: null, teams: [], inbox: null, navigate, signal: null };
let controller = null;
let firstRender = true;
// The page last drawn: drawing the same page again (once /api/me has answered, say) must not move focus.
let lastPath = null;

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render();
}

/** Links inside the app navigate without reloading; a link to a notification's absolute URL too. */
document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const link = e.target.closest("a[href]");
  if (!link || link.target || link.hasAttribute("download")) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || /^\/(api|docs|openapi\.json|asyncapi|assets)\b/.test(url.pathname)) return;
  if (url.pathname === location.pathname && url.hash) return;
  e.preventDefault();
  navigate(url.pathname + url.search + url.hash);
});
// A skip link or any #fragment adds a history entry too: only a different page is drawn again.
window.addEventListener("popstate", () => {
  if (location.pathname + location.search !== lastPath) render();
});

function setTitle(title) {
  document.title = title ? `${title} · Tillit` : "Tillit";
}

async function render() {
  if (controller) controller.abort();
  controller = new AbortController();
  ctx.signal = controller.signal;
  if (!token()) return signInView();
  const path = location.pathname.replace(/\/+$/, "") || "/";
  paintNav(path);
  for (const [pattern, view] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    const params = Object.fromEntries(Object.entries(match.groups || {}).map(([k, v]) => [k, decodeURIComponent(v)]));
    const started = performance.now();
    try {
      const title = await view(params, { ...ctx, main, setTitle });
      if (!ctx.signal.aborted && title !== undefined) setTitle(title);
    } catch (error) {
      if (error.name === "AbortError") return;
      show(main, h("h1", { tabindex: "-1" }, t("error", { reason: "" })), h("p", { class: "error" }, error.message));
    }
    if (ctx.signal.aborted) return;
    performance.measure(`tillit:render ${path}`, { start: started });
    afterRender();
    return;
  }
  show(main, h("h1", { tabindex: "-1" }, t("notFound")), h("p", null, h("a", { href: "/" }, t("home"))));
  afterRender();
}

function afterRender() {
  // Focus the new page's heading so a screen reader says where we are; not on the first load, and not
  // when the same page is only drawn again (the reader may have moved focus meanwhile: the skip link).
  const path = location.pathname + location.search;
  const navigated = path !== lastPath;
  lastPath = path;
  if (!firstRender && navigated) {
    const heading = main.querySelector("h1");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: true });
    }
    if (!location.hash) window.scrollTo(0, 0);
  }
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
  firstRender = false;
  document.body.dataset.ready = "true";
}

function navLink(href, label, path, extra) {
  const current = href === "/" ? ["/", "/trending", "/favourites"].includes(path) || path.startsWith("/teams/") : path.startsWith(href);
  return h("li", null, h("a", { href, "aria-current": current ? "page" : null, ...extra }, label));
}

function paintNav(path) {
  top.hidden = false;
  const leader = ctx.teams.includes("leaders");
  const bell = h(
    "a",
    { href: "/notifications", class: "bell", id: "bell", "aria-current": path === "/notifications" ? "page" : null },
    icon("bell"),
    h("span", { class: "visually-hidden", id: "bell-label" }, t("notifications")),
    h("span", { class: "bell-count", id: "bell-count", "aria-hidden": "true", hidden: true }),
  );
  top.replaceChildren(
    h("a", { href: "/", class: "brand" }, "Tillit"),
    h(
      "nav",
      { "aria-label": t("nav") },
      h(
        "ul",
        { class: "nav" },
        navLink("/", t("home"), path),
        navLink("/campaigns", t("campaigns"), path),
        navLink("/leaderboards", t("leaderboards"), path),
        leader ? navLink("/insight", t("insight"), path) : null,
        navLink(`/people/${encodeURIComponent(ctx.me.id)}`, t("profile"), path),
        navLink("/settings/notifications", t("settings"), path, { class: "nav-settings" }),
      ),
    ),
    h("div", { class: "top-tools" }, bell, h("button", { type: "button", class: "link-button sign-out", onclick: signOut }, t("signOut"))),
  );
  ctx.inbox.paintBell();
}

function signOut() {
  ctx.inbox?.close();
  setToken(null);
  location.assign("/");
}

async function signInView() {
  chooseLanguage(null);
  top.hidden = true;
  setTitle(t("signIn"));
  const users = await devUsers().catch(() => null);
  const tokenField = h("input", { id: "token", type: "password", autocomplete: "off", required: true });
  show(main, 
    h(
      "section",
      { class: "sign-in card" },
      h("h1", { tabindex: "-1" }, t("signInTitle")),
      users
        ? [
            h("h2", null, t("devSignIn")),
            h("p", null, t("devSignInNote")),
            h(
              "ul",
              { class: "dev-users" },
              users.map((u) =>
                h("li", null, h("button", { type: "button", class: "primary", onclick: () => signInAs(u.id) }, t("signInAs", { name: u.name }))),
              ),
            ),
          ]
        : h("p", null, t("noSignIn")),
      h(
        "form",
        {
          class: "token-form",
          onsubmit: (e) => {
            e.preventDefault();
            setToken(tokenField.value.trim());
            start();
          },
        },
        h("label", { for: "token" }, t("tokenLabel")),
        tokenField,
        h("button", { type: "submit" }, t("useToken")),
      ),
    ),
  );
  document.body.dataset.ready = "true";
}

async function signInAs(userId) {
  try {
    const reply = await devSignIn(userId);
    setToken(reply.access_token);
    if (location.pathname === "/sign-in") history.replaceState(null, "", "/");
    await start();
  } catch (error) {
    toast(t("failed", { reason: error.message }), { error: true });
  }
}

whenUnauthorised(() => {
  ctx.inbox?.close();
  setToken(null);
  toast(t("sessionEnded"), { error: true });
  render();
});

async function start() {
  // An intranet that signs people in may open Tillit with #access_token=... (kept out of history).
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("access_token")) {
    setToken(fragment.get("access_token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  if (!token()) return render();
  const meClaims = claims();
  const checked = api("/me");
  try {
    // With the token's claims the first page is drawn while /api/me answers; without, it waits for it.
    const me = meClaims && meClaims.sub && meClaims.locale ? { id: meClaims.sub, name: meClaims.name, locale: meClaims.locale } : await checked;
    chooseLanguage(me.locale);
    ctx.me = me;
    ctx.teams = meClaims && Array.isArray(meClaims.groups) ? meClaims.groups : [];
    ctx.inbox?.close();
    ctx.inbox = new Inbox();
    document.querySelector(".skip-link").textContent = t("skip");
  } catch (error) {
    if (error.status !== 401) show(main, h("h1", null, t("error", { reason: "" })), h("p", { class: "error" }, error.message));
    return;
  }
  checked.then((me) => Object.assign(ctx.me, me)).catch(() => {});
  const drawn = render();
  // The inbox and its event stream start once the first page is on its way, so they do not hold it up.
  setTimeout(() => ctx.inbox.start(), 0);
  await drawn;
}

start();
