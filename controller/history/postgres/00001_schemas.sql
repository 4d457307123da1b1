-- One schema per history domain (history.Domains), each with the same
-- records table. Keeping the domains apart lets an operator grant, size,
-- back up or move one domain without touching the others, and keeps each
-- table's indexes small.
--
-- stream and kind use the "C" collation: they are machine names, byte order
-- is what the Go side sorts by (so batches lock rows in the same order the
-- database compares them), and C comparisons are the cheapest.
--
-- There is deliberately no Down section: history cannot be recreated, so
-- rolling this version back is a decision for a person with psql, not for a
-- tool.

-- +goose Up
CREATE SCHEMA IF NOT EXISTS identity;
CREATE SCHEMA IF NOT EXISTS assets;
CREATE SCHEMA IF NOT EXISTS automation;
CREATE SCHEMA IF NOT EXISTS communication;

CREATE TABLE identity.records (
    stream text COLLATE "C" NOT NULL,
    seq    bigint NOT NULL CHECK (seq >= 0),
    time   timestamptz NOT NULL,
    kind   text COLLATE "C" NOT NULL,
    fields jsonb NOT NULL DEFAULT '{}',
    data   bytea,
    PRIMARY KEY (stream, seq)
);
CREATE TABLE assets.records (LIKE identity.records INCLUDING ALL);
CREATE TABLE automation.records (LIKE identity.records INCLUDING ALL);
CREATE TABLE communication.records (LIKE identity.records INCLUDING ALL);
