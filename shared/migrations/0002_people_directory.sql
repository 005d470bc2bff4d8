-- Names, emails and locales of people, kept current from person.updated events in every service that
-- shows people. Version 0 marks a name seen in a token, until the people service's versioned event.
CREATE TABLE people_directory (
    id      text PRIMARY KEY,
    name    text NOT NULL,
    email   text,
    locale  text,
    version bigint NOT NULL
);
