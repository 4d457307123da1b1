-- The secondary indexes of every domain's records table:
--
--   records_kind_time  serves Query: equality on kind, then the page order
--                      (time, stream, seq) newest first, so a keyset page is
--                      one index range scan.
--   records_fields     serves Query's fields filter (fields @> '{...}');
--                      jsonb_path_ops is smaller and faster than the default
--                      opclass and @> is the only operator we use.
--   records_time       serves DeleteBefore (retention) and Stats' oldest.
--
-- They are a separate version so that upgrading from version 1 is a real,
-- tested path. The plain CREATE INDEX runs in goose's transaction and blocks
-- writes to the table while it builds; on a large installation run
-- `operator history migrate` in a quiet moment.

-- +goose Up
CREATE INDEX records_kind_time ON identity.records (kind, time DESC, stream DESC, seq DESC);
CREATE INDEX records_fields ON identity.records USING gin (fields jsonb_path_ops);
CREATE INDEX records_time ON identity.records (time);

CREATE INDEX records_kind_time ON assets.records (kind, time DESC, stream DESC, seq DESC);
CREATE INDEX records_fields ON assets.records USING gin (fields jsonb_path_ops);
CREATE INDEX records_time ON assets.records (time);

CREATE INDEX records_kind_time ON automation.records (kind, time DESC, stream DESC, seq DESC);
CREATE INDEX records_fields ON automation.records USING gin (fields jsonb_path_ops);
CREATE INDEX records_time ON automation.records (time);

CREATE INDEX records_kind_time ON communication.records (kind, time DESC, stream DESC, seq DESC);
CREATE INDEX records_fields ON communication.records USING gin (fields jsonb_path_ops);
CREATE INDEX records_time ON communication.records (time);

-- +goose Down
DROP INDEX identity.records_kind_time, identity.records_fields, identity.records_time;
DROP INDEX assets.records_kind_time, assets.records_fields, assets.records_time;
DROP INDEX automation.records_kind_time, automation.records_fields, automation.records_time;
DROP INDEX communication.records_kind_time, communication.records_fields, communication.records_time;
