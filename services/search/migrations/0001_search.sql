-- The search projection of posts, kept from post.created, post.audience_changed and post.deleted events.
-- Events arrive in any order and more than once, so a row may exist before its post.created (an audience
-- change came first: body and created_at are still NULL) and outlive it as a tombstone (deleted, body
-- cleared), which keeps a late post.created from bringing a deleted post back.
CREATE TABLE posts (
    id               uuid PRIMARY KEY,
    author_id        text NOT NULL,
    body             text,
    created_at       timestamptz,
    audience         jsonb,
    -- The version of the event the audience came from: the highest wins (created is version 1).
    audience_version bigint NOT NULL,
    deleted          boolean NOT NULL DEFAULT false,
    -- The highest version of any event applied to this post.
    version          bigint NOT NULL,
    -- Each post indexed in both languages of the organisation, so that a Norwegian query is stemmed as
    -- Norwegian ("bilene" finds "bil") and an English one as English ("running" finds "run"). Two columns
    -- rather than one combined vector, so a Norwegian query lexeme never matches an English stem.
    norwegian        tsvector GENERATED ALWAYS AS (to_tsvector('norwegian', coalesce(body, ''))) STORED,
    english          tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(body, ''))) STORED
);
CREATE INDEX posts_norwegian ON posts USING gin (norwegian);
CREATE INDEX posts_english ON posts USING gin (english);

-- Headlines are cut from the escaped text, so the only markup in one is the <mark> that ts_headline adds:
-- whatever a body holds, it cannot inject HTML. The text search parser reads each entity as one token, so a
-- headline never cuts one in half.
CREATE FUNCTION escape_html(text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT replace(replace(replace(replace(replace($1, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'),
                   '''', '&#39;')
$$;

-- What people search finds a person by: the name unstemmed (a name is no word to stem, and users type its
-- first letters), expertise and title also stemmed in both languages. Weights rank a name match above
-- an expertise match above a title match. IMMUTABLE is true for text[]: array_to_string is only marked
-- STABLE because other element types have locale-dependent output.
CREATE FUNCTION person_document(name text, title text, expertise text[]) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector('simple', coalesce(name, '')), 'A')
        || setweight(to_tsvector('simple', array_to_string(expertise, ' '))
                     || to_tsvector('norwegian', array_to_string(expertise, ' '))
                     || to_tsvector('english', array_to_string(expertise, ' ')), 'B')
        || setweight(to_tsvector('simple', coalesce(title, ''))
                     || to_tsvector('norwegian', coalesce(title, ''))
                     || to_tsvector('english', coalesce(title, '')), 'C')
$$;

-- People as search shows them, kept from person.updated events; the highest version wins.
CREATE TABLE people (
    id        text PRIMARY KEY,
    name      text NOT NULL,
    title     text,
    expertise text[] NOT NULL DEFAULT '{}',
    version   bigint NOT NULL,
    document  tsvector GENERATED ALWAYS AS (person_document(name, title, expertise)) STORED
);
CREATE INDEX people_document ON people USING gin (document);
