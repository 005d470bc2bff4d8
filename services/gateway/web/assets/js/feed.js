// Home, team and trending feeds (and one's favourites) with infinite scroll, and the composer above them.

import { api } from "./api.js";
import { show, h } from "./dom.js";
import { t } from "./i18n.js";
import { composer, postCard } from "./posts.js";

const PAGE = 50;

function source(options) {
  switch (options.kind) {
    case "trending":
      return { path: "/feed/trending", title: t("trending") };
    case "favourites":
      return { path: "/me/favourites", title: t("favourites") };
    case "team":
      return { path: `/teams/${encodeURIComponent(options.team)}/feed`, title: t("teamFeed", { team: options.team }) };
    default:
      return { path: "/feed", title: t("feedHome") };
  }
}

function tabs(ctx, options) {
  const tab = (href, label, on) => h("li", null, h("a", { href, "aria-current": on ? "page" : null }, label));
  return h(
    "nav",
    { class: "tabs", "aria-label": t("feeds") },
    h(
      "ul",
      null,
      tab("/", t("home"), options.kind === "home"),
      tab("/trending", t("trending"), options.kind === "trending"),
      ...ctx.teams.map((team) => tab(`/teams/${encodeURIComponent(team)}`, t("teamFeed", { team }), options.kind === "team" && options.team === team)),
      tab("/favourites", t("favourites"), options.kind === "favourites"),
    ),
  );
}

/** A list that loads page after page from `path` as its end scrolls into view (or its button is pressed). */
export function pagedList({ path, params = {}, signal, render, emptyText, label }) {
  const list = h("ul", { class: "feed", "aria-label": label, "aria-busy": "true" });
  const status = h("p", { class: "muted feed-status", role: "status" });
  const more = h("button", { type: "button", class: "load-more", hidden: true }, t("loadMore"));
  let cursor = null;
  let loading = false;
  let done = false;
  const load = async () => {
    if (loading || done) return;
    loading = true;
    list.setAttribute("aria-busy", "true");
    try {
      const page = await api(path, { params: { ...params, limit: PAGE, cursor }, signal });
      const fragment = document.createDocumentFragment();
      for (const item of page.items) fragment.append(h("li", null, render(item)));
      list.append(fragment);
      cursor = page.next_cursor;
      done = !cursor;
      more.hidden = done;
      status.textContent = done ? (list.children.length ? t("noMore") : emptyText) : "";
    } catch (error) {
      if (error.name !== "AbortError") status.textContent = t("error", { reason: error.message });
    } finally {
      loading = false;
      list.setAttribute("aria-busy", "false");
    }
  };
  more.addEventListener("click", load);
  const sentinel = h("div", { class: "sentinel", "aria-hidden": "true" });
  const observer = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && cursor && load(), { rootMargin: "600px" });
  observer.observe(sentinel);
  signal.addEventListener("abort", () => observer.disconnect());
  return { element: h("div", null, list, status, more, sentinel), list, load };
}

export async function feedView(_params, ctx, options) {
  const { path, title } = source(options);
  const isPosts = options.kind === "favourites";
  const feed = pagedList({
    path,
    signal: ctx.signal,
    label: title,
    emptyText: options.kind === "home" ? t("feedEmpty") : t("empty"),
    render: (item) => (isPosts ? postCard(item) : postCard(item.post, { entry: item })),
  });
  const write =
    options.kind === "home" || options.kind === "team"
      ? composer({
          teams: ctx.teams,
          posted: (post) => feed.list.prepend(h("li", null, postCard(post))),
        })
      : null;
  show(ctx.main, h("h1", { class: "page-title" }, title), tabs(ctx, options), write, feed.element);
  await feed.load();
  // Time from navigation to a drawn feed, for docs/web-client.md (tests/browser/test_feed.py reads it).
  if (!performance.getEntriesByName("tillit:feed-rendered").length) performance.mark("tillit:feed-rendered");
  return title;
}
