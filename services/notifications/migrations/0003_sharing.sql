-- Notifications of the sharing features: comments, mentions, praise, accepted answers, idea campaigns and
-- live Q&A; and what they need to know to send them only to people who may see what they are about.

ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check CHECK (kind IN (
    'post.liked', 'post.favourited', 'person.followed', 'post.commented', 'thread.commented',
    'person.mentioned', 'praise.received', 'answer.accepted', 'idea.status_changed', 'campaign.closed',
    'qna.answered'));
-- What a title says besides who: an idea's status and reason, a closed campaign's title and its ideas, the
-- Q&A session of an answer.
ALTER TABLE notifications ADD COLUMN detail jsonb;

-- The post replica learns the audience (to tell only people who may see a post), the kind and campaign of
-- ideas, and a moderator's decision: notifications about a hidden post leave the inbox until it is restored.
ALTER TABLE posts ADD COLUMN kind text;
ALTER TABLE posts ADD COLUMN campaign_id uuid;
ALTER TABLE posts ADD COLUMN audience jsonb;
ALTER TABLE posts ADD COLUMN audience_version integer NOT NULL DEFAULT 0;
ALTER TABLE posts ADD COLUMN hidden boolean NOT NULL DEFAULT false;
ALTER TABLE posts ADD COLUMN moderation_version bigint NOT NULL DEFAULT 0;
CREATE INDEX posts_of_campaign ON posts (campaign_id) WHERE campaign_id IS NOT NULL;

-- Who commented where (the comments not deleted): an idea's commenters hear of its status changes.
CREATE TABLE comments (
    id        uuid PRIMARY KEY,
    post_id   uuid NOT NULL,
    author_id text NOT NULL,
    deleted   boolean NOT NULL DEFAULT false,
    version   integer NOT NULL
);
CREATE INDEX comments_of_post ON comments (post_id) WHERE NOT deleted;
