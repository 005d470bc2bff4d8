// One post with its comments and replies: mentions, accepted answers to questions, likes on comments.

import { api } from "./api.js";
import { show, h, icon, toast, uniqueId } from "./dom.js";
import { t } from "./i18n.js";
import { avatar, mentionArea, personLink, postCard, richText, showErrors, timeOf } from "./posts.js";

function commentForm({ post, parent = null, label, done }) {
  const id = uniqueId("comment");
  const area = mentionArea({ id, name: "body", rows: parent ? "2" : "3", required: true, "data-field": "body", maxlength: "5000" });
  const form = h(
    "form",
    { class: "comment-form" },
    h("label", { for: id }, label),
    area,
    h("div", { class: "composer-row end" }, parent ? h("button", { type: "button", onclick: () => done(null) }, t("cancel")) : null, h("button", { type: "submit", class: "primary" }, t("send"))),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const comment = await api(`/posts/${post.id}/comments`, {
        method: "POST",
        body: { body: form.elements.body.value, ...(parent ? { parent_id: parent.id } : {}) },
      });
      form.elements.body.value = "";
      showErrors(form, null);
      done(comment);
    } catch (error) {
      if (!showErrors(form, error)) toast(t("failed", { reason: error.message }), { error: true });
    }
  });
  return form;
}

function commentLike(comment) {
  const count = h("span", { class: "count" }, String(comment.like_count));
  const button = h("button", { type: "button", class: "react react-like small", "aria-pressed": String(comment.liked_by_me) }, icon("heart"), h("span", { class: "label" }, t("like")), count);
  button.addEventListener("click", async () => {
    const before = { liked: comment.liked_by_me, count: comment.like_count };
    comment.liked_by_me = !before.liked;
    comment.like_count = Math.max(0, before.count + (comment.liked_by_me ? 1 : -1));
    const paint = () => {
      button.setAttribute("aria-pressed", String(comment.liked_by_me));
      count.textContent = String(comment.like_count);
    };
    paint();
    try {
      const reply = await api(`/comments/${comment.id}/like`, { method: comment.liked_by_me ? "PUT" : "DELETE" });
      comment.liked_by_me = reply.liked;
      comment.like_count = reply.like_count;
    } catch (error) {
      comment.liked_by_me = before.liked;
      comment.like_count = before.count;
      toast(t("failed", { reason: error.message }), { error: true });
    }
    paint();
  });
  return button;
}

function commentItem(comment, { post, ctx, reload, isReply }) {
  const replies = h("ul", { class: "replies" });
  const replySlot = h("div");
  const mayAccept = !isReply && post.kind === "question" && post.author.id === ctx.me.id && comment.author.id !== ctx.me.id && !comment.accepted;
  const item = h(
    "li",
    { class: comment.accepted ? "comment accepted" : "comment", id: `comment-${comment.id}` },
    h(
      "article",
      { "aria-label": t("postBy", { name: comment.author.name }) },
      h("header", { class: "post-head" }, avatar(comment.author), h("div", null, h("p", { class: "post-author" }, personLink(comment.author)), timeOf(comment.created_at))),
      comment.accepted ? h("p", { class: "badge badge-accepted" }, t("accepted")) : null,
      h("div", { class: "post-body" }, richText(comment.body, comment.mentions)),
      h(
        "footer",
        { class: "actions" },
        commentLike(comment),
        isReply
          ? null
          : h(
              "button",
              {
                type: "button",
                class: "link-button",
                onclick: () => {
                  const form = commentForm({
                    post,
                    parent: comment,
                    label: t("writeReply", { name: comment.author.name }),
                    done: (reply) => {
                      replySlot.replaceChildren();
                      if (reply) replies.append(commentItem(reply, { post, ctx, reload, isReply: true }));
                    },
                  });
                  replySlot.replaceChildren(form);
                  form.querySelector("textarea").focus();
                },
              },
              t("reply"),
            ),
        mayAccept
          ? h(
              "button",
              {
                type: "button",
                class: "link-button",
                onclick: async () => {
                  try {
                    await api(`/posts/${post.id}/accepted-answer`, { method: "PUT", body: { comment_id: comment.id } });
                    reload();
                  } catch (error) {
                    toast(t("failed", { reason: error.message }), { error: true });
                  }
                },
              },
              t("accept"),
            )
          : null,
      ),
    ),
    isReply ? null : replySlot,
    isReply ? null : replies,
  );
  for (const reply of comment.replies || []) replies.append(commentItem(reply, { post, ctx, reload, isReply: true }));
  return item;
}

export async function postView(params, ctx) {
  const post = await api(`/posts/${params.id}`, { signal: ctx.signal }).catch((error) => {
    if (error.status === 404 || error.status === 422) return null;
    throw error;
  });
  if (!post) {
    show(ctx.main, h("h1", null, t("notFound")), h("p", null, h("a", { href: "/" }, t("home"))));
    return t("notFound");
  }
  const list = h("ul", { class: "comments" });
  const more = h("button", { type: "button", class: "load-more", hidden: true }, t("loadMore"));
  let cursor = null;
  const load = async (reset) => {
    if (reset) {
      cursor = null;
      list.replaceChildren();
    }
    const page = await api(`/posts/${post.id}/comments`, { params: { limit: 50, cursor }, signal: ctx.signal });
    for (const comment of page.items) list.append(commentItem(comment, { post, ctx, reload: () => load(true), isReply: false }));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  };
  more.addEventListener("click", () => load(false));
  const mine = post.author.id === ctx.me.id;
  const remove = mine
    ? h(
        "button",
        {
          type: "button",
          class: "danger",
          onclick: async () => {
            try {
              await api(`/posts/${post.id}`, { method: "DELETE" });
              toast(t("deleted"));
              ctx.navigate("/");
            } catch (error) {
              toast(t("failed", { reason: error.message }), { error: true });
            }
          },
        },
        t("deletePost"),
      )
    : null;
  const title = t("postBy", { name: post.author.name });
  show(ctx.main, 
    h("h1", { class: "page-title" }, title),
    postCard(post, { full: true }),
    remove,
    h(
      "section",
      { id: "comments", "aria-labelledby": "comments-title", class: "comments-section" },
      h("h2", { id: "comments-title" }, t("comments")),
      list,
      more,
      commentForm({ post, label: t("writeComment"), done: (comment) => comment && list.append(commentItem({ ...comment, replies: [] }, { post, ctx, reload: () => load(true), isReply: false })) }),
    ),
  );
  await load(true);
  return title;
}
