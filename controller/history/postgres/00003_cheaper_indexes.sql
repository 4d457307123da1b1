-- Cheaper secondary indexes for the append path. Every index of the
-- records tables costs each appended record an insertion; with COPY on
-- PostgreSQL 15 (2 vCPUs, 100-byte records) the heap and primary key took
-- about 3.5 µs a record and each secondary B-tree another 3-5 µs, so the
-- indexes, not the data, bounded append throughput. Two of them change:
--
--   records_time       (time), which served only DeleteBefore, becomes
--                      records_time_brin, a BRIN index. Records arrive
--                      roughly in time order, so the heap is roughly in
--                      time order too, and a BRIN index (the least and
--                      greatest time of each range of 128 pages) finds the
--                      oldest rows while costing an insertion almost
--                      nothing: it changes only when a row falls outside
--                      its range's bounds. Records that arrive late widen a
--                      range, which costs retention rechecked rows, never a
--                      wrong answer. autosummarize has autovacuum summarize
--                      each range as it fills; a range not yet summarized
--                      is read by every scan. Stats' oldest time comes from
--                      the full scan Stats makes anyway.
--   records_kind_time  loses its stream and seq columns and its DESC:
--                      (kind, time). Query's order (time, stream, seq)
--                      newest first is then a backward scan of it with an
--                      incremental sort of the records that share a time,
--                      and the cursor's row comparison is an index
--                      condition on time (the planner truncates it to
--                      "time <= the cursor's time") plus a filter that only
--                      records sharing the cursor's time reach, so a deep
--                      page still costs what the first one does. Ascending
--                      matters: new records carry the newest times, which
--                      an ascending index puts at the right end of their
--                      kind's range, where B-tree splits leave the left
--                      page full (and the greatest kind takes the rightmost
--                      leaf fast path); descending put them at the left
--                      end, where every split is 50:50 and the index grew
--                      to 1.8 times the size (300,000 rows: 4.2 MB against
--                      2.4 MB). The narrower key is cheaper to compare too.
--
-- records_fields (GIN, fastupdate on by default, so an insertion is an
-- append to the pending list) and the primary key stay as they are.
--
-- Like version 2, CREATE INDEX runs in goose's transaction and blocks
-- writes while it builds; on a large installation run
-- `operator history migrate` in a quiet moment.

-- +goose Up
DROP INDEX identity.records_time, assets.records_time, automation.records_time, communication.records_time;
CREATE INDEX records_time_brin ON identity.records USING brin (time) WITH (autosummarize = on);
CREATE INDEX records_time_brin ON assets.records USING brin (time) WITH (autosummarize = on);
CREATE INDEX records_time_brin ON automation.records USING brin (time) WITH (autosummarize = on);
CREATE INDEX records_time_brin ON communication.records USING brin (time) WITH (autosummarize = on);

DROP INDEX identity.records_kind_time, assets.records_kind_time, automation.records_kind_time, communication.records_kind_time;
CREATE INDEX records_kind_time ON identity.records (kind, time);
CREATE INDEX records_kind_time ON assets.records (kind, time);
CREATE INDEX records_kind_time ON automation.records (kind, time);
CREATE INDEX records_kind_time ON communication.records (kind, time);

-- +goose Down
DROP INDEX identity.records_kind_time, assets.records_kind_time, automation.records_kind_time, communication.records_kind_time;
CREATE INDEX records_kind_time ON identity.records (kind, time DESC, stream DESC, seq DESC);
CREATE INDEX records_kind_time ON assets.records (kind, time DESC, stream DESC, seq DESC);
CREATE INDEX records_kind_time ON automation.records (kind, time DESC, stream DESC, seq DESC);
CREATE INDEX records_kind_time ON communication.records (kind, time DESC, stream DESC, seq DESC);

DROP INDEX identity.records_time_brin, assets.records_time_brin, automation.records_time_brin, communication.records_time_brin;
CREATE INDEX records_time ON identity.records (time);
CREATE INDEX records_time ON assets.records (time);
CREATE INDEX records_time ON automation.records (time);
CREATE INDEX records_time ON communication.records (time);
