-- The example feature (src/greetings.rs): every greeting, and a count per name that
-- POST /greetings/{name} updates in the same transaction.
CREATE TABLE greetings (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    greeted_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE greeting_counts (
    name TEXT PRIMARY KEY,
    count BIGINT NOT NULL
);
