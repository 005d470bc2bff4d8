// What leaders start and close the loop on: idea campaigns, live Q&A; leaderboards and participation insight.

import { api } from "./api.js";
import { show, h, icon, toast, uniqueId } from "./dom.js";
import { fullDate, percent, t, when } from "./i18n.js";
import { personLink, richText, showErrors, timeOf } from "./posts.js";

function field(label, control, hint) {
  control.id = control.id || uniqueId("f");
  return h("div", { class: "field" }, h("label", { for: control.id }, label), hint, control);
}

function localInput(name, hoursAhead) {
  const d = new Date(Date.now() + hoursAhead * 3600 * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  const value = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return h("input", { type: "datetime-local", name, "data-field": name, value, required: true });
}

function audienceSelect(teams) {
  return h("select", { name: "audience", "data-field": "audience" }, h("option", { value: "everyone" }, t("aud_everyone")), teams.map((team) => h("option", { value: team }, t("aud_team", { team }))));
}

const audienceOf = (value) => (value === "everyone" ? { type: "everyone" } : { type: "team", team: value });

function leaderForms(ctx) {
  const campaign = h(
    "form",
    { class: "card" },
    h("h2", null, t("openCampaignTitle")),
    field(t("campaignTitle"), h("input", { type: "text", name: "title", "data-field": "title", required: true, maxlength: "200" })),
    field(t("campaignQuestion"), h("textarea", { name: "question", "data-field": "question", rows: "3", required: true })),
    field(t("closesAt"), localInput("closes_at", 24 * 7)),
    field(t("audience"), audienceSelect(ctx.teams)),
    h("button", { type: "submit", class: "primary" }, t("open")),
  );
  campaign.addEventListener("submit", async (e) => {
    e.preventDefault();
    const els = campaign.elements;
    try {
      const created = await api("/campaigns", {
        method: "POST",
        body: { title: els.title.value, question: els.question.value, closes_at: new Date(els.closes_at.value).toISOString(), audience: audienceOf(els.audience.value) },
      });
      ctx.navigate(`/campaigns/${created.id}`);
    } catch (error) {
      if (!showErrors(campaign, error)) toast(t("failed", { reason: error.message }), { error: true });
    }
  });
  const qna = h(
    "form",
    { class: "card" },
    h("h2", null, t("hostQna")),
    field(t("campaignTitle"), h("input", { type: "text", name: "title", "data-field": "title", required: true, maxlength: "200" })),
    field(t("startsAt"), localInput("starts_at", 0)),
    field(t("endsAt"), localInput("ends_at", 1)),
    field(t("audience"), audienceSelect(ctx.teams)),
    h("button", { type: "submit", class: "primary" }, t("open")),
  );
  qna.addEventListener("submit", async (e) => {
    e.preventDefault();
    const els = qna.elements;
    try {
      const created = await api("/qna", {
        method: "POST",
        body: { title: els.title.value, starts_at: new Date(els.starts_at.value).toISOString(), ends_at: new Date(els.ends_at.value).toISOString(), audience: audienceOf(els.audience.value) },
      });
      ctx.navigate(`/qna/${created.id}`);
    } catch (error) {
      if (!showErrors(qna, error)) toast(t("failed", { reason: error.message }), { error: true });
    }
  });
  return h("div", { class: "leader-forms" }, campaign, qna);
}

export async function campaignsView(_params, ctx) {
  const page = await api("/campaigns", { params: { limit: 50 }, signal: ctx.signal });
  show(ctx.main, 
    h("h1", null, t("campaigns")),
    h("p", null, t("campaignsIntro")),
    h(
      "ul",
      { class: "campaigns" },
      page.items.length
        ? page.items.map((c) =>
            h(
              "li",
              { class: "card campaign" },
              h("h2", null, h("a", { href: `/campaigns/${c.id}` }, c.title)),
              h("p", { class: "muted" }, personLink(c.owner), " · ", c.closed_at ? t("closed", { when: when(c.closed_at) }) : t("closes", { when: fullDate(c.closes_at) }), " · ", t("ideasN", { n: c.idea_count })),
            ),
          )
        : h("li", { class: "muted" }, t("empty")),
    ),
    ctx.teams.includes("leaders") ? leaderForms(ctx) : null,
  );
  return t("campaigns");
}

const STATUSES = ["new", "under_review", "adopted", "declined"];

function ideaItem(item, { owner, rank, reload }) {
  const post = item.post;
  const backButton = h("button", { type: "button", class: "react react-like", "aria-pressed": String(post.liked_by_me) }, icon("heart"), h("span", { class: "label" }, post.liked_by_me ? t("backed") : t("back")));
  backButton.addEventListener("click", async () => {
    const on = !post.liked_by_me;
    post.liked_by_me = on;
    backButton.setAttribute("aria-pressed", String(on));
    backButton.querySelector(".label").textContent = on ? t("backed") : t("back");
    item.backers += on ? 1 : -1;
    backers.textContent = t("backers", { n: item.backers });
    try {
      const reply = await api(`/posts/${post.id}/like`, { method: on ? "PUT" : "DELETE" });
      item.backers = reply.like_count;
    } catch (error) {
      post.liked_by_me = !on;
      item.backers += on ? -1 : 1;
      backButton.setAttribute("aria-pressed", String(!on));
      backButton.querySelector(".label").textContent = !on ? t("backed") : t("back");
      toast(t("failed", { reason: error.message }), { error: true });
    }
    backers.textContent = t("backers", { n: item.backers });
  });
  const backers = h("span", { class: "backers" }, t("backers", { n: item.backers }));
  let statusForm = null;
  if (owner) {
    const statusId = uniqueId("status");
    const reasonId = uniqueId("reason");
    statusForm = h(
      "form",
      { class: "status-form" },
      h("div", { class: "field" }, h("label", { for: statusId }, t("status")), h("select", { id: statusId, name: "status", "data-field": "status" }, STATUSES.map((s) => h("option", { value: s, selected: s === item.status }, t(`status_${s}`))))),
      h("div", { class: "field grow" }, h("label", { for: reasonId }, t("reason")), h("input", { id: reasonId, type: "text", name: "reason", "data-field": "reason", value: item.status_reason || "" })),
      h("button", { type: "submit" }, t("setStatus")),
    );
    statusForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await api(`/ideas/${post.id}/status`, { method: "PUT", body: { status: statusForm.elements.status.value, reason: statusForm.elements.reason.value || null } });
        toast(t("saved"));
        reload();
      } catch (error) {
        if (!showErrors(statusForm, error)) toast(t("failed", { reason: error.message }), { error: true });
      }
    });
  }
  return h(
    "li",
    { class: "card idea", dataset: { ideaId: post.id } },
    h("p", { class: "rank", "aria-label": `${t("rank")} ${rank}` }, `#${rank}`),
    h(
      "article",
      { "aria-label": `${t("kind_idea")} ${rank}` },
      h("p", { class: "muted" }, personLink(post.author), " · ", timeOf(post.created_at), " · ", h("a", { href: `/posts/${post.id}` }, t("comments"))),
      h("div", { class: "post-body" }, richText(post.body, post.mentions)),
      h("p", null, h("span", { class: `badge status-${item.status}` }, t(`status_${item.status}`)), item.status_reason ? ` ${item.status_reason}` : null),
      h("div", { class: "actions" }, backButton, backers),
      statusForm,
    ),
  );
}

export async function campaignView(params, ctx) {
  const campaign = await api(`/campaigns/${params.id}`, { signal: ctx.signal }).catch((error) => {
    if (error.status === 404 || error.status === 422) return null;
    throw error;
  });
  if (!campaign) {
    show(ctx.main, h("h1", null, t("notFound")));
    return t("notFound");
  }
  const owner = campaign.owner.id === ctx.me.id;
  const list = h("ol", { class: "ideas", "aria-labelledby": "ideas-title" });
  const reload = async () => {
    const page = await api(`/campaigns/${campaign.id}/ideas`, { params: { limit: 100 }, signal: ctx.signal });
    list.replaceChildren(...(page.items.length ? page.items.map((item, i) => ideaItem(item, { owner, rank: i + 1, reload })) : [h("li", { class: "muted" }, t("empty"))]));
  };
  const ideaId = uniqueId("idea");
  const ideaForm = campaign.closed_at
    ? null
    : h("form", { class: "card" }, h("label", { for: ideaId }, t("addIdea")), h("textarea", { id: ideaId, name: "body", rows: "3", required: true, "data-field": "body" }), h("button", { type: "submit", class: "primary" }, t("submitIdea")));
  ideaForm?.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api(`/campaigns/${campaign.id}/ideas`, { method: "POST", body: { body: ideaForm.elements.body.value } });
      ideaForm.elements.body.value = "";
      toast(t("published"));
      await reload();
    } catch (error) {
      if (!showErrors(ideaForm, error)) toast(t("failed", { reason: error.message }), { error: true });
    }
  });
  const close =
    owner && !campaign.closed_at
      ? h("button", { type: "button", onclick: async () => { try { await api(`/campaigns/${campaign.id}/close`, { method: "POST" }); campaignView(params, ctx); } catch (error) { toast(t("failed", { reason: error.message }), { error: true }); } } }, t("closeCampaign"))
      : null;
  show(ctx.main, 
    h("h1", null, campaign.title),
    h("p", { class: "muted" }, personLink(campaign.owner), " · ", campaign.closed_at ? t("closed", { when: fullDate(campaign.closed_at) }) : t("closes", { when: fullDate(campaign.closes_at) })),
    h("div", { class: "post-body card" }, richText(campaign.question)),
    close,
    ideaForm,
    h("h2", { id: "ideas-title" }, t("ideas")),
    list,
  );
  await reload();
  return campaign.title;
}

function questionItem(q, { session, host, refresh }) {
  const upvote = h("button", { type: "button", class: "react react-like", "aria-pressed": String(q.upvoted_by_me), disabled: q.mine || session.state !== "open" }, h("span", { class: "label" }, t("upvote")), h("span", { class: "count" }, String(q.upvotes)));
  upvote.addEventListener("click", async () => {
    try {
      const reply = await api(`/qna/${session.id}/questions/${q.id}/upvote`, { method: q.upvoted_by_me ? "DELETE" : "PUT" });
      q.upvoted_by_me = reply.upvoted;
      q.upvotes = reply.upvotes;
      upvote.setAttribute("aria-pressed", String(reply.upvoted));
      upvote.querySelector(".count").textContent = String(reply.upvotes);
    } catch (error) {
      toast(t("failed", { reason: error.message }), { error: true });
    }
  });
  let answerForm = null;
  if (host && !q.answer) {
    const id = uniqueId("answer");
    answerForm = h("form", { class: "answer-form" }, h("label", { for: id }, t("answer")), h("textarea", { id, name: "answer", rows: "2", required: true, "data-field": "answer" }), h("button", { type: "submit", class: "primary" }, t("answer")));
    answerForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await api(`/qna/${session.id}/questions/${q.id}/answer`, { method: "POST", body: { answer: answerForm.elements.answer.value } });
        refresh();
      } catch (error) {
        if (!showErrors(answerForm, error)) toast(t("failed", { reason: error.message }), { error: true });
      }
    });
  }
  return h(
    "li",
    { class: "card question", dataset: { questionId: q.id } },
    h("p", { class: "muted" }, q.asker ? personLink(q.asker) : t("anonymousAsker"), " · ", timeOf(q.created_at)),
    h("div", { class: "post-body" }, richText(q.body)),
    q.answer ? h("div", { class: "answer" }, h("p", { class: "badge badge-accepted" }, t("answered")), richText(q.answer)) : null,
    h("div", { class: "actions" }, upvote),
    answerForm,
  );
}

export async function qnaView(params, ctx) {
  const session = await api(`/qna/${params.id}`, { signal: ctx.signal }).catch((error) => {
    if (error.status === 404 || error.status === 422) return null;
    throw error;
  });
  if (!session) {
    show(ctx.main, h("h1", null, t("notFound")));
    return t("notFound");
  }
  const host = session.host.id === ctx.me.id;
  const openList = h("ol", { class: "questions", "aria-labelledby": "open-q" });
  const answeredList = h("ol", { class: "questions", "aria-labelledby": "answered-q" });
  const refresh = async () => {
    // Live: questions are read again every few seconds; whatever has focus keeps it.
    const focused = document.activeElement;
    const focusedQuestion = focused?.closest?.("[data-question-id]");
    if (focusedQuestion && focused.matches("textarea, input")) return;
    const page = await api(`/qna/${session.id}/questions`, { params: { limit: 100 }, signal: ctx.signal });
    const item = (q) => questionItem(q, { session, host, refresh });
    openList.replaceChildren(...page.items.filter((q) => !q.answer).map(item));
    answeredList.replaceChildren(...page.items.filter((q) => q.answer).map(item));
    if (focusedQuestion) document.querySelector(`[data-question-id="${focusedQuestion.dataset.questionId}"] button`)?.focus();
  };
  const askId = uniqueId("ask");
  const anonId = uniqueId("anon");
  const askForm =
    session.state === "open"
      ? h(
          "form",
          { class: "card" },
          h("label", { for: askId }, t("ask")),
          h("textarea", { id: askId, name: "body", rows: "2", required: true, maxlength: "1000", "data-field": "body" }),
          h("div", { class: "choice" }, h("input", { type: "checkbox", id: anonId, name: "anonymous" }), h("label", { for: anonId }, t("anonymous"))),
          h("button", { type: "submit", class: "primary" }, t("askSend")),
        )
      : null;
  askForm?.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api(`/qna/${session.id}/questions`, { method: "POST", body: { body: askForm.elements.body.value, anonymous: askForm.elements.anonymous.checked } });
      askForm.elements.body.value = "";
      await refresh();
    } catch (error) {
      if (!showErrors(askForm, error)) toast(t("failed", { reason: error.message }), { error: true });
    }
  });
  show(ctx.main, 
    h("h1", null, session.title),
    h("p", { class: "muted" }, t("qna"), " · ", personLink(session.host), " · ", t(`qnaState_${session.state}`), " · ", `${fullDate(session.starts_at)} – ${fullDate(session.ends_at)}`),
    askForm,
    h("h2", { id: "open-q" }, t("openQuestions")),
    openList,
    h("h2", { id: "answered-q" }, t("answeredQuestions")),
    answeredList,
  );
  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), 5000);
  ctx.signal.addEventListener("abort", () => clearInterval(timer));
  return session.title;
}

function thisMonth() {
  return new Date().toISOString().slice(0, 7);
}

export async function leaderboardsView(_params, ctx) {
  const query = new URLSearchParams(location.search);
  const month = query.get("month") || thisMonth();
  const team = query.get("team") || "";
  const boards = await Promise.all(
    ["contributors", "builders"].map((kind) => api("/leaderboards", { params: { kind, month, team, limit: 10 }, signal: ctx.signal })),
  );
  const monthInput = h("input", { type: "month", id: "lb-month", name: "month", value: month });
  const teamSelect = h("select", { id: "lb-team", name: "team" }, h("option", { value: "" }, t("wholeOrg")), ctx.teams.map((x) => h("option", { value: x, selected: x === team }, x)));
  const form = h(
    "form",
    { class: "filters", method: "get", action: "/leaderboards" },
    h("div", { class: "field" }, h("label", { for: "lb-month" }, t("month")), monthInput),
    h("div", { class: "field" }, h("label", { for: "lb-team" }, t("team")), teamSelect),
    h("button", { type: "submit" }, t("show")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    if (monthInput.value) next.set("month", monthInput.value);
    if (teamSelect.value) next.set("team", teamSelect.value);
    ctx.navigate(`/leaderboards?${next}`);
  });
  const table = (board) => {
    const id = `board-${board.kind}`;
    return h(
      "section",
      { class: "card", "aria-labelledby": id },
      h("h2", { id }, t(board.kind)),
      h("p", { class: "muted" }, t("formula", { formula: board.formula })),
      board.items.length
        ? h(
            "table",
            { class: "board" },
            h("thead", null, h("tr", null, h("th", { scope: "col" }, t("rank")), h("th", { scope: "col" }, t("person")), h("th", { scope: "col" }, t("score")))),
            h("tbody", null, board.items.map((entry, i) => h("tr", null, h("td", null, String(i + 1)), h("th", { scope: "row" }, personLink(entry.person)), h("td", null, String(entry.score))))),
          )
        : h("p", null, t("noScores")),
    );
  };
  show(ctx.main, h("h1", null, t("leaderboards")), form, h("div", { class: "boards" }, boards.map(table)));
  return t("leaderboards");
}

export async function insightView(_params, ctx) {
  const query = new URLSearchParams(location.search);
  const teams = ctx.teams.filter((x) => x !== "leaders");
  const team = query.get("team") || teams[0] || ctx.teams[0] || "";
  const month = query.get("month") || thisMonth();
  const teamInput = h("input", { type: "text", id: "in-team", name: "team", value: team, required: true, list: "in-teams" });
  const monthInput = h("input", { type: "month", id: "in-month", name: "month", value: month });
  const form = h(
    "form",
    { class: "filters" },
    h("div", { class: "field" }, h("label", { for: "in-team" }, t("team")), teamInput, h("datalist", { id: "in-teams" }, ctx.teams.map((x) => h("option", { value: x })))),
    h("div", { class: "field" }, h("label", { for: "in-month" }, t("month")), monthInput),
    h("button", { type: "submit" }, t("show")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    ctx.navigate(`/insight?${new URLSearchParams({ team: teamInput.value, month: monthInput.value })}`);
  });
  let body;
  try {
    const p = team ? await api("/insight/participation", { params: { team, month }, signal: ctx.signal }) : null;
    body = p ? participation(p) : null;
  } catch (error) {
    if (error.status !== 403) throw error;
    body = h("p", { class: "error" }, t("forbidden"));
  }
  show(ctx.main, h("h1", null, t("insight")), h("p", null, t("participationIntro")), form, body);
  return t("insight");
}

function participation(p) {
  const share = (label, figure) =>
    h("div", { class: "stat card" }, h("dt", null, label), h("dd", null, figure.share === null ? t("suppressed") : percent(figure.share)));
  const qr = p.question_response;
  const number = (value) => (value === null ? t("suppressed") : String(Math.round(value * 10) / 10));
  return h(
    "section",
    { "aria-label": p.team },
    h("p", null, t("members", { n: p.members })),
    h(
      "dl",
      { class: "stats" },
      share(t("posted"), p.posted),
      share(t("commented"), p.commented),
      share(t("reacted"), p.reacted),
      h("div", { class: "stat card" }, h("dt", null, t("questions")), h("dd", null, number(qr.questions))),
      h("div", { class: "stat card" }, h("dt", null, t("questionsAnswered")), h("dd", null, number(qr.answered))),
      h("div", { class: "stat card" }, h("dt", null, t("medianMinutes")), h("dd", null, number(qr.median_minutes))),
    ),
    h("h2", null, t("trendingIdeas")),
    p.trending_ideas.length
      ? h("ol", null, p.trending_ideas.map((idea) => h("li", null, h("a", { href: `/posts/${idea.post_id}` }, t("kind_idea")), " · ", t("backers", { n: idea.new_backers }))))
      : h("p", { class: "muted" }, t("empty")),
  );
}
