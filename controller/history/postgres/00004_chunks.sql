-- Records are stored many to a row. Version 3 kept a row per record, and
-- PostgreSQL's cost of a row is mostly fixed: the tuple, its WAL record and
-- an entry in each of four indexes took about 8 µs of server time per
-- record on 2 vCPUs, which bounded 100-byte appends near 100,000
-- records/s whatever the client did. A chunk row holds consecutive
-- records of one stream that share a kind and fields (chunk.go describes
-- the body and the invariants), so those costs are paid once per chunk of
-- up to ~7 KB instead of once per record.
--
--   chunks_pkey        (stream, first_seq): Read, Tail, Each, and the
--                      overlap check that keeps appends idempotent by
--                      (stream, seq) across different chunk splits.
--   chunks_kind_time   (kind, max_time, min_time): Query pages, newest
--                      first; min_time in the key lets the cursor's bound
--                      be checked inside the index.
--   chunks_fields      GIN (jsonb_path_ops) on the chunk's fields.
--   chunks_time_brin   BRIN on max_time for retention, as version 3.
--
-- body is STORAGE EXTERNAL (never compressed) and toast_tuple_target is
-- the largest allowed, so a chunk row under a page stays inline as it is:
-- compressing it or moving it into TOAST rows would bring back a cost per
-- 2 KB.
--
-- Existing rows are moved, each record into a chunk of its own (a body of
-- one record is simple enough to build in SQL); they read like any other
-- chunk and go with retention. Moving rewrites every row while goose holds
-- its transaction, so on a large installation run
-- `operator history migrate` in a quiet moment.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION pg_temp.history_uvarint(l int) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN l < 128 THEN set_byte('\x00'::bytea, 0, l)
        WHEN l < 16384 THEN set_byte(set_byte('\x0000'::bytea, 0, (l & 127) | 128), 1, l >> 7)
        ELSE set_byte(set_byte(set_byte('\x000000'::bytea, 0, (l & 127) | 128), 1, ((l >> 7) & 127) | 128), 2, l >> 14)
    END
$$;
-- +goose StatementEnd

CREATE TABLE identity.chunks (
    stream    text COLLATE "C" NOT NULL,
    first_seq bigint NOT NULL CHECK (first_seq >= 0),
    last_seq  bigint NOT NULL CHECK (last_seq >= first_seq),
    n         int NOT NULL CHECK (n > 0),
    min_time  timestamptz NOT NULL,
    max_time  timestamptz NOT NULL CHECK (max_time >= min_time),
    kind      text COLLATE "C" NOT NULL,
    fields    jsonb NOT NULL DEFAULT '{}',
    body      bytea NOT NULL,
    PRIMARY KEY (stream, first_seq)
) WITH (toast_tuple_target = 8160);
ALTER TABLE identity.chunks ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO identity.chunks (stream, first_seq, last_seq, n, min_time, max_time, kind, fields, body)
SELECT stream, seq, seq, 1, time, time, kind, fields,
    '\x010000'::bytea || pg_temp.history_uvarint(coalesce(octet_length(data), 0)) || coalesce(data, '')
FROM identity.records ORDER BY stream, seq;
DROP TABLE identity.records;
CREATE INDEX chunks_kind_time ON identity.chunks (kind, max_time, min_time);
CREATE INDEX chunks_fields ON identity.chunks USING gin (fields jsonb_path_ops);
CREATE INDEX chunks_time_brin ON identity.chunks USING brin (max_time) WITH (autosummarize = on);

CREATE TABLE assets.chunks (
    stream    text COLLATE "C" NOT NULL,
    first_seq bigint NOT NULL CHECK (first_seq >= 0),
    last_seq  bigint NOT NULL CHECK (last_seq >= first_seq),
    n         int NOT NULL CHECK (n > 0),
    min_time  timestamptz NOT NULL,
    max_time  timestamptz NOT NULL CHECK (max_time >= min_time),
    kind      text COLLATE "C" NOT NULL,
    fields    jsonb NOT NULL DEFAULT '{}',
    body      bytea NOT NULL,
    PRIMARY KEY (stream, first_seq)
) WITH (toast_tuple_target = 8160);
ALTER TABLE assets.chunks ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO assets.chunks (stream, first_seq, last_seq, n, min_time, max_time, kind, fields, body)
SELECT stream, seq, seq, 1, time, time, kind, fields,
    '\x010000'::bytea || pg_temp.history_uvarint(coalesce(octet_length(data), 0)) || coalesce(data, '')
FROM assets.records ORDER BY stream, seq;
DROP TABLE assets.records;
CREATE INDEX chunks_kind_time ON assets.chunks (kind, max_time, min_time);
CREATE INDEX chunks_fields ON assets.chunks USING gin (fields jsonb_path_ops);
CREATE INDEX chunks_time_brin ON assets.chunks USING brin (max_time) WITH (autosummarize = on);

CREATE TABLE automation.chunks (
    stream    text COLLATE "C" NOT NULL,
    first_seq bigint NOT NULL CHECK (first_seq >= 0),
    last_seq  bigint NOT NULL CHECK (last_seq >= first_seq),
    n         int NOT NULL CHECK (n > 0),
    min_time  timestamptz NOT NULL,
    max_time  timestamptz NOT NULL CHECK (max_time >= min_time),
    kind      text COLLATE "C" NOT NULL,
    fields    jsonb NOT NULL DEFAULT '{}',
    body      bytea NOT NULL,
    PRIMARY KEY (stream, first_seq)
) WITH (toast_tuple_target = 8160);
ALTER TABLE automation.chunks ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO automation.chunks (stream, first_seq, last_seq, n, min_time, max_time, kind, fields, body)
SELECT stream, seq, seq, 1, time, time, kind, fields,
    '\x010000'::bytea || pg_temp.history_uvarint(coalesce(octet_length(data), 0)) || coalesce(data, '')
FROM automation.records ORDER BY stream, seq;
DROP TABLE automation.records;
CREATE INDEX chunks_kind_time ON automation.chunks (kind, max_time, min_time);
CREATE INDEX chunks_fields ON automation.chunks USING gin (fields jsonb_path_ops);
CREATE INDEX chunks_time_brin ON automation.chunks USING brin (max_time) WITH (autosummarize = on);

CREATE TABLE communication.chunks (
    stream    text COLLATE "C" NOT NULL,
    first_seq bigint NOT NULL CHECK (first_seq >= 0),
    last_seq  bigint NOT NULL CHECK (last_seq >= first_seq),
    n         int NOT NULL CHECK (n > 0),
    min_time  timestamptz NOT NULL,
    max_time  timestamptz NOT NULL CHECK (max_time >= min_time),
    kind      text COLLATE "C" NOT NULL,
    fields    jsonb NOT NULL DEFAULT '{}',
    body      bytea NOT NULL,
    PRIMARY KEY (stream, first_seq)
) WITH (toast_tuple_target = 8160);
ALTER TABLE communication.chunks ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO communication.chunks (stream, first_seq, last_seq, n, min_time, max_time, kind, fields, body)
SELECT stream, seq, seq, 1, time, time, kind, fields,
    '\x010000'::bytea || pg_temp.history_uvarint(coalesce(octet_length(data), 0)) || coalesce(data, '')
FROM communication.records ORDER BY stream, seq;
DROP TABLE communication.records;
CREATE INDEX chunks_kind_time ON communication.chunks (kind, max_time, min_time);
CREATE INDEX chunks_fields ON communication.chunks USING gin (fields jsonb_path_ops);
CREATE INDEX chunks_time_brin ON communication.chunks USING brin (max_time) WITH (autosummarize = on);

DROP FUNCTION pg_temp.history_uvarint(int);
