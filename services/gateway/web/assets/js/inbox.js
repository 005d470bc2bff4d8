// Notifications: the inbox kept live over Server-Sent Events (docs/streaming.md), the bell, the inbox page and
// the notification settings page.

import { api, token } from "./api.js";
import { show, h, toast, uniqueId } from "./dom.js";
import { t, when, fullDate } from "./i18n.js";
import { showErrors } from "./posts.js";

export class Inbox {
  constructor() {
    this.items = [];
    this.next = null;
    this.unread = 0;
    this.seq = 0;
    this.listeners = new Set();
    this.stream = null;
    this.closed = false;
  }

  async start() {
    try {
      await this.reload();
    } catch {
      return;
    }
    this.open(this.seq);
  }

  async reload() {
    const page = await api("/notifications", { params: { limit: 30 } });
    this.items = page.items;
    this.next = page.next_cursor;
    this.unread = page.unread;
    this.seq = page.seq;
    this.changed();
  }

  open(lastEventId) {
    if (this.closed || !token()) return;
    const params = new URLSearchParams({ access_token: token(), last_event_id: String(lastEventId) });
    const stream = new EventSource(`/api/stream?${params}`);
    this.stream = stream;
    stream.addEventListener("unread", (e) => {
      const { seq, unread } = JSON.parse(e.data);
      this.seq = Math.max(this.seq, seq);
      this.unread = unread;
      this.changed();
    });
    stream.addEventListener("notifications", (e) => {
      const change = JSON.parse(e.data);
      if (change.seq <= this.seq) return;
      this.seq = change.seq;
      const known = new Set(this.items.map((n) => n.id));
      this.upsert(change.items);
      this.items = this.items.filter((n) => !change.removed.includes(n.id));
      this.unread = change.unread;
      this.changed();
      for (const n of change.items) if (!n.read && !known.has(n.id)) toast(n.title);
    });
    stream.addEventListener("reset", () => this.reload().catch(() => {}));
    stream.addEventListener("error", () => {
      // CONNECTING: the browser retries with Last-Event-ID by itself. CLOSED: it gave up (an expired token):
      // the next API call says so and sends the person to sign in again.
      if (stream.readyState === EventSource.CLOSED && !this.closed) {
        setTimeout(() => api("/me").then(() => this.open(this.seq)).catch(() => {}), 3000);
      }
    });
  }

  upsert(items) {
    const byId = new Map(this.items.map((n) => [n.id, n]));
    for (const n of items) byId.set(n.id, n);
    this.items = [...byId.values()].sort((a, b) => b.updated_at.localeCompare(a.updated_at));
  }

  close() {
    this.closed = true;
    this.stream?.close();
  }

  onChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  changed() {
    this.paintBell();
    for (const listener of this.listeners) listener();
  }

  paintBell() {
    const count = document.getElementById("bell-count");
    const label = document.getElementById("bell-label");
    if (!count || !label) return;
    count.textContent = this.unread > 99 ? "99+" : String(this.unread);
    count.hidden = this.unread === 0;
    label.textContent = this.unread ? t("notificationsUnread", { n: this.unread }) : t("notifications");
    document.getElementById("bell").dataset.unread = String(this.unread);
  }

  async markRead(ids) {
    const before = this.items.map((n) => ({ ...n }));
    for (const n of this.items) if (ids === "all" || ids.includes(n.id)) n.read = true;
    this.changed();
    try {
      await api("/notifications/read", { method: "POST", body: ids === "all" ? { all: true } : { ids } });
    } catch (error) {
      this.items = before;
      this.changed();
      toast(t("failed", { reason: error.message }), { error: true });
    }
  }

  async more() {
    if (!this.next) return;
    const page = await api("/notifications", { params: { limit: 30, cursor: this.next } });
    this.next = page.next_cursor;
    this.upsert(page.items);
    this.changed();
  }
}

/** Where a notification leads, inside the app (its URL is absolute, with the deployment's public address). */
export function localPath(url) {
  try {
    const parsed = new URL(url, location.origin);
    return parsed.pathname + parsed.search + parsed.hash;
  } catch {
    return "/notifications";
  }
}

export async function notificationsView(_params, ctx) {
  const inbox = ctx.inbox;
  const list = h("ol", { class: "notifications", "aria-labelledby": "notifications-title" });
  const moreButton = h("button", { type: "button", class: "load-more" }, t("loadMore"));
  const markAll = h("button", { type: "button", onclick: () => inbox.markRead("all") }, t("markAllRead"));
  moreButton.addEventListener("click", () => inbox.more());
  const paint = () => {
    const focusedId = document.activeElement?.closest?.("[data-notification]")?.dataset.notification;
    list.replaceChildren(
      ...(inbox.items.length
        ? inbox.items.map((n) =>
            h(
              "li",
              { class: n.read ? "notification" : "notification unread", dataset: { notification: n.id } },
              h(
                "a",
                { href: localPath(n.url), onclick: () => !n.read && inbox.markRead([n.id]) },
                n.read ? null : h("span", { class: "visually-hidden" }, t("unread") + ": "),
                n.title,
              ),
              " ",
              h("time", { datetime: n.updated_at, title: fullDate(n.updated_at) }, when(n.updated_at)),
            ),
          )
        : [h("li", { class: "muted" }, t("noNotifications"))]),
    );
    if (focusedId) list.querySelector(`[data-notification="${focusedId}"] a`)?.focus();
    moreButton.hidden = !inbox.next;
    markAll.disabled = inbox.unread === 0;
  };
  const stop = inbox.onChange(paint);
  ctx.signal.addEventListener("abort", stop);
  show(ctx.main, 
    h("div", { class: "page-head" }, h("h1", { id: "notifications-title" }, t("notifications")), markAll),
    list,
    moreButton,
    h("p", null, h("a", { href: "/settings/notifications" }, t("settings"))),
  );
  paint();
  return t("notifications");
}

const SETTING_KINDS = ["like", "favourite", "comment", "mention", "follow", "praise", "campaign_update"];
const CHANNELS = ["in_app", "email_now", "email_digest", "off"];

function select(name, options, value, attrs = {}) {
  return h(
    "select",
    { name, id: uniqueId(name), "data-field": name, ...attrs },
    options.map(([v, label]) => h("option", { value: v, selected: String(v) === String(value) }, label)),
  );
}

function field(label, control) {
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control);
}

export async function settingsView(_params, ctx) {
  const settings = await api("/me/notification-settings", { signal: ctx.signal });
  const channels = SETTING_KINDS.map((kind) =>
    field(t(`set_${kind}`), select(`channel-${kind}`, CHANNELS.map((c) => [c, t(`ch_${c}`)]), settings.channels[kind])),
  );
  const weekdays = t("weekdays").split(",");
  const hours = Array.from({ length: 24 }, (_, i) => [i, `${String(i).padStart(2, "0")}:00`]);
  const quietOn = h("input", { type: "checkbox", id: uniqueId("quiet"), checked: Boolean(settings.quiet_hours) });
  const quietStart = h("input", { type: "time", id: uniqueId("qs"), name: "quiet_start", "data-field": "quiet_hours", value: settings.quiet_hours?.start || "22:00" });
  const quietEnd = h("input", { type: "time", id: uniqueId("qe"), name: "quiet_end", value: settings.quiet_hours?.end || "07:00" });
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const zoneList = h("datalist", { id: "time-zones" }, zones.map((z) => h("option", { value: z })));
  const zone = h("input", { type: "text", id: uniqueId("tz"), name: "time_zone", "data-field": "time_zone", list: "time-zones", value: settings.time_zone, autocomplete: "off" });
  const form = h(
    "form",
    { class: "settings card" },
    h("fieldset", null, h("legend", null, t("notifications")), channels),
    h(
      "fieldset",
      null,
      h("legend", null, t("digest")),
      field(t("digestHow"), select("digest", ["daily", "weekly"].map((d) => [d, t(`digest_${d}`)]), settings.digest)),
      field(t("digestHour"), select("digest_hour", hours, settings.digest_hour)),
      field(t("digestWeekday"), select("digest_weekday", weekdays.map((d, i) => [i + 1, d]), settings.digest_weekday)),
      field(t("timeZone"), zone),
      zoneList,
    ),
    h(
      "fieldset",
      null,
      h("legend", null, t("quietHours")),
      h("div", { class: "choice" }, quietOn, h("label", { for: quietOn.id }, t("quietOn"))),
      field(t("quietFrom"), quietStart),
      field(t("quietTo"), quietEnd),
    ),
    field(t("language"), select("locale", [["", t("lang_auto")], ["nb", "Norsk (bokmål)"], ["en", "English"]], settings.locale || "")),
    h("button", { type: "submit", class: "primary" }, t("save")),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const els = form.elements;
    const body = {
      channels: Object.fromEntries(SETTING_KINDS.map((kind) => [kind, els[`channel-${kind}`].value])),
      digest: els.digest.value,
      digest_hour: Number(els.digest_hour.value),
      digest_weekday: Number(els.digest_weekday.value),
      time_zone: zone.value.trim(),
      quiet_hours: quietOn.checked ? { start: quietStart.value, end: quietEnd.value } : null,
      locale: els.locale.value || null,
    };
    try {
      await api("/me/notification-settings", { method: "PUT", body });
      showErrors(form, null);
      toast(t("saved"));
    } catch (error) {
      if (!showErrors(form, error)) toast(t("failed", { reason: error.message }), { error: true });
    }
  });
  show(ctx.main, h("h1", null, t("settings")), h("p", null, t("settingsIntro")), form);
  return t("settings");
}
